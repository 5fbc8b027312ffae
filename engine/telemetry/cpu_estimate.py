"""A declared CPU power estimate for machines without readable RAPL counters.

Model: watts = busy_threads x (TDP / hardware threads), where busy_threads is
the busy fraction of the visible CPUs (from /proc/stat) times their count.
TDP and thread count come from config/cpu_tdp.yaml (matched against
/proc/cpuinfo "model name"), or from the user (--cpu-tdp), or from a generic
default of GENERIC_WATTS_PER_THREAD that the source states in `assumption`.
Idle power is zero in this model, so its net energy equals its gross energy.

Known limitation: in a virtual machine /proc/stat counts this VM's vCPUs only;
the host's power (other tenants, uncore, fans) is unknowable from inside.
Every sample is tagged "estimated".
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from .base import ESTIMATED, Sample, Unavailable

DEFAULT_PROC_STAT = "/proc/stat"
DEFAULT_CPUINFO = "/proc/cpuinfo"
# Between laptop parts (~2-3 W per thread at TDP) and desktop parts (~4-8 W);
# server parts are lower (~1.5-3 W). Off by 2x is plausible, hence always stated.
GENERIC_WATTS_PER_THREAD = 5.0
TABLE_LABEL = "config/cpu_tdp.yaml"
_READ_BYTES = 512  # the aggregate "cpu" line is first and far shorter than this


@dataclass(frozen=True)
class TdpEntry:
    pattern: re.Pattern
    name: str
    tdp_w: float
    threads: int


@dataclass(frozen=True)
class CpuPowerModel:
    tdp_w: float
    threads: int
    origin: str  # where tdp_w and threads came from, for people

    @property
    def watts_per_thread(self) -> float:
        return self.tdp_w / self.threads


def default_tdp_table_path() -> Path:
    """config/cpu_tdp.yaml: the installed package data, else the source checkout."""
    try:
        installed = resources.files("energytui.config").joinpath("cpu_tdp.yaml")
        if installed.is_file():
            return Path(str(installed))
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "config" / "cpu_tdp.yaml"


@functools.lru_cache(maxsize=8)
def load_tdp_table(path: str | Path | None = None) -> tuple[TdpEntry, ...]:
    """Entries of the TDP table, validated; raises ValueError naming the file on bad content."""
    path = Path(path) if path is not None else default_tdp_table_path()
    document = yaml.safe_load(path.read_text()) or {}
    entries = []
    for position, row in enumerate(document.get("cpus") or []):
        try:
            entry = TdpEntry(re.compile(row["match"], re.IGNORECASE), str(row["name"]),
                             float(row["tdp_w"]), int(row["threads"]))
        except (KeyError, TypeError, ValueError, re.error) as error:
            raise ValueError(f"{path}: entry {position + 1} is invalid ({error!r}); "
                             "each needs match, name, tdp_w, threads") from error
        if entry.tdp_w <= 0 or entry.threads <= 0:
            raise ValueError(f"{path}: entry {position + 1} ({entry.name}) needs tdp_w > 0 and threads > 0")
        entries.append(entry)
    return tuple(entries)


def match_cpu(model_name: str | None, table: tuple[TdpEntry, ...]) -> TdpEntry | None:
    if not model_name:
        return None
    return next((entry for entry in table if entry.pattern.search(model_name)), None)


def read_cpuinfo(path: str | Path = DEFAULT_CPUINFO) -> tuple[str | None, bool]:
    """(model name of the first processor, whether the "hypervisor" flag says we are in a VM)."""
    model_name, in_vm = None, False
    try:
        text = Path(path).read_text()
    except OSError:
        return None, False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model_name is None:
            model_name = value.strip()
        elif key == "flags" and "hypervisor" in value.split():
            in_vm = True
    return model_name, in_vm


def choose_power_model(model_name: str | None, table: tuple[TdpEntry, ...], visible_cpus: int,
                       cpu_tdp_w: float | None = None, cpu_threads: int | None = None) -> CpuPowerModel:
    """User TDP beats the table, the table beats the generic default; threads likewise."""
    entry = match_cpu(model_name, table)
    if cpu_tdp_w is not None:
        if cpu_tdp_w <= 0:
            raise ValueError(f"--cpu-tdp must be positive watts, got {cpu_tdp_w}")
        if cpu_threads:
            threads, threads_origin = cpu_threads, "threads given"
        elif entry is not None:
            threads, threads_origin = entry.threads, f"threads of {entry.name} from {TABLE_LABEL}"
        else:
            threads, threads_origin = visible_cpus, f"assuming the {visible_cpus} visible CPUs are the whole processor"
        return CpuPowerModel(cpu_tdp_w, threads, f"user-given --cpu-tdp; {threads_origin}")
    if entry is not None:
        return CpuPowerModel(entry.tdp_w, cpu_threads or entry.threads, f"{entry.name}, {TABLE_LABEL}")
    threads = cpu_threads or visible_cpus
    return CpuPowerModel(
        GENERIC_WATTS_PER_THREAD * threads, threads,
        f"generic default {GENERIC_WATTS_PER_THREAD:g} W per hardware thread; "
        f"{model_name or 'this CPU'!r} is not in {TABLE_LABEL} and no --cpu-tdp was given",
    )


def parse_cpu_times(proc_stat: bytes) -> tuple[int, int]:
    """(busy, total) jiffies from the aggregate "cpu" line of /proc/stat.

    busy = user + nice + system + irq + softirq; total adds idle, iowait and
    steal (time the hypervisor ran something else: not our power). guest and
    guest_nice are already inside user and nice, so they are not added again.
    """
    fields = proc_stat.split(b"\n", 1)[0].split()
    if not fields or fields[0] != b"cpu":
        raise ValueError(f"/proc/stat does not start with the aggregate cpu line: {proc_stat[:80]!r}")
    user, nice, system, idle, iowait, irq, softirq = (int(v) for v in fields[1:8])
    steal = int(fields[8]) if len(fields) > 8 else 0
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait + steal


def count_visible_cpus(proc_stat: bytes) -> int:
    return sum(1 for line in proc_stat.splitlines() if re.match(rb"cpu\d+ ", line))


class CpuEstimateSource:
    """CPU power estimated from utilisation x a TDP-per-thread model (device "cpu")."""

    name = "cpu-estimate"
    devices = ("cpu",)
    source = ESTIMATED

    def __init__(self, proc_stat_path: str, model: CpuPowerModel, visible_cpus: int, in_vm: bool,
                 poll_interval_s: float = 0.0):
        self.proc_stat_path = proc_stat_path
        self.poll_interval_s = poll_interval_s
        self.model = model
        self.visible_cpus = visible_cpus
        self.update_period_s = 1.0 / os.sysconf("SC_CLK_TCK")  # /proc/stat counts in clock ticks
        self._fd = os.open(proc_stat_path, os.O_RDONLY)
        self._last_busy, self._last_total = parse_cpu_times(os.pread(self._fd, _READ_BYTES, 0))
        self._last_power_w: float | None = None
        self._watts_per_busy_cpu = model.watts_per_thread
        self.method = (f"estimated: CPU utilisation × {model.tdp_w:g} W / {model.threads} threads "
                       f"({model.origin})")
        notes = [f"power = (busy share of the {visible_cpus} visible CPUs) × {visible_cpus} × "
                 f"{model.watts_per_thread:.3g} W per thread; idle power counts as 0 W"]
        if model.origin.startswith("generic default"):
            notes.append(f"{model.origin}; pass --cpu-tdp or add the CPU to {TABLE_LABEL} for a better estimate")
        if in_vm:
            notes.append("running in a virtual machine: utilisation is of this VM's vCPUs only, "
                         "host power is unknowable from inside")
        self.assumption = "; ".join(notes)

    @classmethod
    def probe(cls, *, proc_stat: str = DEFAULT_PROC_STAT, cpuinfo: str = DEFAULT_CPUINFO,
              cpu_tdp_w: float | None = None, cpu_threads: int | None = None,
              tdp_table: str | Path | None = None,
              poll_interval_s: float = 0.0) -> "CpuEstimateSource | Unavailable":
        """Open the estimate; an unreadable /proc/stat or a bad table gives Unavailable.

        poll_interval_s > 0 reads /proc/stat less often than the sampler's rate, on its
        own thread (each read costs ~20-80 us here; 0.04 s still sees 4 ticks per CPU).
        """
        try:
            snapshot = Path(proc_stat).read_bytes()
            parse_cpu_times(snapshot)
            visible_cpus = count_visible_cpus(snapshot) or os.cpu_count() or 1
            model_name, in_vm = read_cpuinfo(cpuinfo)
            model = choose_power_model(model_name, load_tdp_table(tdp_table), visible_cpus, cpu_tdp_w, cpu_threads)
            return cls(proc_stat, model, visible_cpus, in_vm, poll_interval_s)
        except (OSError, ValueError) as error:
            return Unavailable("cpu-estimate", str(error), "check --cpu-tdp and config/cpu_tdp.yaml")

    def read(self, t_ns: int) -> list[Sample]:
        busy, total = parse_cpu_times(os.pread(self._fd, _READ_BYTES, 0))
        busy_delta, total_delta = busy - self._last_busy, total - self._last_total
        if total_delta > 0:
            self._last_busy, self._last_total = busy, total
            busy_cpus = busy_delta / total_delta * self.visible_cpus
            self._last_power_w = busy_cpus * self._watts_per_busy_cpu
        elif self._last_power_w is None:
            return []  # no clock tick since opening: nothing to say yet
        # No tick since the last read: the last interval's power still stands.
        return [Sample(t_ns, "cpu", ESTIMATED, self._last_power_w, None)]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
