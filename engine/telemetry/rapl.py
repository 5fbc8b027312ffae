"""CPU package and DRAM energy from Intel/AMD RAPL counters through Linux powercap.

Layout read (the AMD driver registers under the same intel-rapl names):

    <root>/intel-rapl:0/name              package-0  -> device "cpu-pkg0"
    <root>/intel-rapl:0/intel-rapl:0:2/   dram       -> device "dram0"
    <root>/intel-rapl:0/intel-rapl:0:0/   core, uncore -> skipped (already inside the package)
    <root>/intel-rapl:1/name              psys       -> skipped (whole platform, overlaps the packages)

Each domain's energy_uj is a wrapping counter (modulus max_energy_range_uj,
which differs from the true modulus by one energy unit, ~61 uJ, per wrap).
File descriptors are opened once and re-read with os.pread at offset 0, which
makes sysfs regenerate the value, so a tick costs one syscall per domain.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from .base import COUNTER, Sample, Unavailable

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
# The hardware refreshes the energy status about every millisecond (Intel SDM: ~976 us).
RAPL_UPDATE_PERIOD_S = 0.001
# When the last power is unknown, more than one wrap is only ruled out for reads
# closer than a wrap period at this (implausibly high) per-domain power.
PLAUSIBLE_MAX_DOMAIN_POWER_W = 1000.0
# Wraps are inferred from the power over at least this trailing window, not over the last interval:
# a sampler preempted between its timestamp and its pread skews one short interval's power many-fold,
# and the long interval that follows such a stall would turn that skew into whole phantom wraps.
POWER_REFERENCE_WINDOW_NS = 1_000_000_000

_ZONE_NAME = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")
_PACKAGE_NAME = re.compile(r"^package-(\d+)(?:-die-(\d+))?$")


def permission_remedy(root: str = DEFAULT_POWERCAP_ROOT) -> str:
    """The exact commands that make RAPL energy_uj readable without root."""
    return (
        f"for this boot: sudo chmod o+r {root}/intel-rapl:*/energy_uj ; "
        "permanently, put this line in /etc/udev/rules.d/90-energytui-rapl.rules: "
        'ACTION=="add", SUBSYSTEM=="powercap", KERNEL=="intel-rapl:*", '
        'RUN+="/bin/chmod o+r /sys%p/energy_uj" ; '
        "to limit access to a group instead, use chgrp <group> and chmod g+r in the same places. "
        "Readable counters re-open the power side channel that CVE-2020-8694 closed; "
        "do this on machines you do not share"
    )


class Unwrapped(NamedTuple):
    delta_uj: int
    wraps: int  # how many times the counter wrapped between the two reads
    inferred: bool  # True when the wrap count came from elapsed time x last power


def unwrap_delta(
    raw_before: int,
    raw_now: int,
    max_range_uj: int,
    elapsed_s: float,
    last_power_w: float | None,
) -> Unwrapped:
    """Energy between two counter reads, correcting wrap-arounds.

    Assumption: the average power between the reads is close to the recent
    power `last_power_w` (RaplSource's is over a trailing window of about a
    second). If the energy expected at that power is under half the counter
    range, at most one wrap can have happened
    (even at twice that power) and the modulo difference is exact. Otherwise
    the number of wraps is inferred from expected energy and flagged. With no
    known power, one wrap is assumed and flagged as inferred when the reads are
    further apart than a wrap period at PLAUSIBLE_MAX_DOMAIN_POWER_W.
    """
    raw_step = raw_now - raw_before
    delta = raw_step % max_range_uj
    inferred = False
    if last_power_w is None or last_power_w <= 0:
        inferred = elapsed_s > max_range_uj / (PLAUSIBLE_MAX_DOMAIN_POWER_W * 1e6)
    else:
        expected_uj = last_power_w * elapsed_s * 1e6
        if expected_uj >= max_range_uj / 2:
            delta += max(0, round((expected_uj - delta) / max_range_uj)) * max_range_uj
            inferred = True
    return Unwrapped(delta, (delta - raw_step) // max_range_uj, inferred)


@dataclass
class _Domain:
    device: str
    zone_path: Path
    max_range_uj: int
    fd: int
    last_raw_uj: int
    last_t_ns: int
    total_uj: int = 0
    last_power_w: float | None = None  # over the trailing reference window, for wrap inference
    history: deque[tuple[int, int]] = field(default_factory=deque)  # (t_ns, total_uj) in the window

    def __post_init__(self) -> None:
        self.history.append((self.last_t_ns, self.total_uj))

    def remember(self, t_ns: int) -> None:
        """Record the total at t_ns and update the reference power over the trailing window."""
        history = self.history
        history.append((t_ns, self.total_uj))
        while len(history) > 2 and t_ns - history[1][0] >= POWER_REFERENCE_WINDOW_NS:
            history.popleft()
        oldest_t_ns, oldest_uj = history[0]
        if t_ns > oldest_t_ns:
            self.last_power_w = (self.total_uj - oldest_uj) * 1e3 / (t_ns - oldest_t_ns)


def _read_text(path: Path) -> str:
    return path.read_text().strip()


def find_rapl_zones(root: str | Path = DEFAULT_POWERCAP_ROOT) -> tuple[list[tuple[str, Path]], list[str]]:
    """(device name, zone folder) for every package and dram domain, and the skipped domains with why."""
    root = Path(root)
    if not root.is_dir():
        return [], []
    zones: dict[tuple[int, ...], Path] = {}
    for entry in sorted(root.iterdir()):
        match = _ZONE_NAME.match(entry.name)
        if not match:
            continue  # "intel-rapl" (the control type) and intel-rapl-mmio (an alias of the package)
        zones.setdefault(_zone_key(match), entry)
        if match.group(2) is None and entry.is_dir():
            for child in sorted(entry.iterdir()):
                child_match = _ZONE_NAME.match(child.name)
                if child_match and child_match.group(2) is not None:
                    zones.setdefault(_zone_key(child_match), child)

    found: list[tuple[str, Path]] = []
    skipped: list[str] = []
    package_suffix: dict[int, str] = {}  # top-level zone index -> "0" or "0-die1"
    for key in sorted(k for k in zones if len(k) == 1):
        name = _read_text(zones[key] / "name")
        package = _PACKAGE_NAME.match(name)
        if package:
            suffix = package.group(1) + (f"-die{package.group(2)}" if package.group(2) else "")
            package_suffix[key[0]] = suffix
            found.append((f"cpu-pkg{suffix}", zones[key]))
        elif name == "psys":
            skipped.append("psys (whole platform; overlaps the packages, never summed with them)")
        else:
            skipped.append(f"{name} (unknown top-level domain)")
    for sub_key in sorted(k for k in zones if len(k) == 2):
        name = _read_text(zones[sub_key] / "name")
        parent = package_suffix.get(sub_key[0])
        if name == "dram" and parent is not None:
            found.append((f"dram{parent}", zones[sub_key]))
        elif name in ("core", "uncore"):
            skipped.append(f"{name} of package {parent} (inside the package domain)")
        else:
            skipped.append(f"{name} under intel-rapl:{sub_key[0]} (not used)")
    return found, skipped


def _zone_key(match: re.Match) -> tuple[int, ...]:
    return (int(match.group(1)),) if match.group(2) is None else (int(match.group(1)), int(match.group(2)))


def _open_readonly(path: str) -> int:
    return os.open(path, os.O_RDONLY)


class RaplSource:
    """Package and DRAM energy counters of every CPU package (source tag "counter")."""

    source = COUNTER
    update_period_s = RAPL_UPDATE_PERIOD_S
    poll_interval_s = 0.0

    def __init__(self, domains: list[_Domain], root: Path, skipped: list[str]):
        self.name = "rapl"
        self._domains = domains
        self.root = root
        self.skipped = skipped
        self.devices = tuple(d.device for d in domains)
        self.inferred_wrap_reads = 0  # reads whose wrap count was inferred, not certain
        used = ", ".join(self.devices)
        not_summed = f"; skipped: {'; '.join(skipped)}" if skipped else ""
        self.method = f"counter: RAPL energy_uj via powercap {root} ({used}){not_summed}"

    @classmethod
    def probe(
        cls,
        root: str | Path = DEFAULT_POWERCAP_ROOT,
        *,
        opener: Callable[[str], int] = _open_readonly,
        t_ns: int | None = None,
    ) -> "RaplSource | Unavailable":
        """Open every package and dram counter under `root`; `t_ns` is the opening time (default now)."""
        root = Path(root)
        try:
            zones, skipped = find_rapl_zones(root)
        except OSError as error:
            return Unavailable("rapl", f"cannot list RAPL domains under {root}: {error}")
        if not zones:
            reason = f"no RAPL package domains under {root}"
            if skipped:
                reason += f" (only {', '.join(skipped)})"
            return Unavailable(
                "rapl",
                reason + "; virtual machines and non-x86 machines usually have none",
                "on bare-metal x86 Linux: sudo modprobe intel_rapl_msr; "
                "otherwise use the CPU estimate or an external power meter command",
            )
        opened_at = time.monotonic_ns() if t_ns is None else t_ns
        domains: list[_Domain] = []
        try:
            for device, zone_path in zones:
                max_range = int(_read_text(zone_path / "max_energy_range_uj"))
                fd = opener(str(zone_path / "energy_uj"))
                domains.append(_Domain(device, zone_path, max_range, fd, int(os.pread(fd, 32, 0)), opened_at))
        except PermissionError as error:
            _close_fds(domains)
            return Unavailable(
                "rapl",
                f"{error.filename or zone_path / 'energy_uj'} is readable by root only "
                "(the default on most distributions since the CVE-2020-8694 fix)",
                permission_remedy(str(root)),
            )
        except (OSError, ValueError) as error:
            _close_fds(domains)
            return Unavailable("rapl", f"cannot read {zone_path}: {error}")
        return cls(domains, root, skipped)

    def read(self, t_ns: int) -> list[Sample]:
        samples = []
        for domain in self._domains:
            raw = int(os.pread(domain.fd, 32, 0))
            elapsed_ns = t_ns - domain.last_t_ns
            step = unwrap_delta(domain.last_raw_uj, raw, domain.max_range_uj, elapsed_ns / 1e9, domain.last_power_w)
            power_w = step.delta_uj * 1e3 / elapsed_ns if elapsed_ns > 0 else None
            domain.total_uj += step.delta_uj
            domain.last_raw_uj = raw
            domain.last_t_ns = t_ns
            domain.remember(t_ns)
            extra = None
            if step.inferred:
                self.inferred_wrap_reads += 1
                extra = {"wraps_inferred": step.wraps}
            samples.append(Sample(t_ns, domain.device, COUNTER, power_w, domain.total_uj / 1e6, extra))
        return samples

    def close(self) -> None:
        _close_fds(self._domains)
        self._domains = []


def _close_fds(domains: list[_Domain]) -> None:
    for domain in domains:
        try:
            os.close(domain.fd)
        except OSError:
            pass
