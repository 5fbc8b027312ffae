"""What every telemetry source produces and promises: samples, tags, the source interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, runtime_checkable

COUNTER = "counter"  # a hardware energy counter (RAPL energy_uj, NVML total energy)
INTEGRATED = "integrated"  # energy integrated from measured power samples
ESTIMATED = "estimated"  # a declared model, e.g. CPU utilisation x TDP

# A source whose value changes less often than this cannot resolve a small model's prefill or decode window
# (0.1-0.4 s each): its energy comes from steady-state windows over back-to-back requests (engine/steady.py).
SLOW_UPDATE_PERIOD_S = 0.1

# Devices that measure the whole machine, so each already includes every component: a trial's total is one of
# them alone (the first present, in this order: a meter the user named before the battery), never a sum with the
# CPU or GPU devices.
WALL_DEVICE = "wall"  # an external meter command (external.py)
BATTERY_DEVICE = "battery"  # a laptop's batteries while they discharge (battery.py)
WHOLE_MACHINE_DEVICES = (WALL_DEVICE, BATTERY_DEVICE)

UNKNOWN = "unknown"  # imported energy whose method the log's map declared unknown (never a live source)

# Weakest first: a total is only as trustworthy as its weakest part.
SOURCE_TAGS = (ESTIMATED, INTEGRATED, COUNTER)
_STRENGTH = {tag: rank for rank, tag in enumerate((UNKNOWN, *SOURCE_TAGS))}


def weakest_source(tags: Iterable[str]) -> str | None:
    """The weakest of the given source tags (estimated < integrated < counter); None if empty."""
    ranked = [(_STRENGTH[tag], tag) for tag in tags]
    return min(ranked)[1] if ranked else None


def is_cumulative(samples: Iterable["Sample"]) -> bool:
    """Every sample carries a cumulative energy (a counter, or the CPU estimate's): a window's energy is then the
    difference of the readings at its edges, not an integral of power."""
    samples = list(samples)
    return bool(samples) and all(sample.energy_j is not None for sample in samples)


def is_slow(update_period_s: float) -> bool:
    return update_period_s > SLOW_UPDATE_PERIOD_S


@dataclass(slots=True)
class Sample:
    """One reading of one device, on the time.monotonic_ns() clock.

    energy_j is cumulative since the source was opened: a counter's (wrap-corrected), or
    the CPU estimate's, each interval between readings at its own ticks' power (tagged estimated); None
    for sources that only give power. power_w is the instantaneous or last-interval power.
    extra holds optional per-device details (GPU utilisation, clocks, ...).
    """

    t_ns: int
    device: str
    source: str
    power_w: float | None
    energy_j: float | None
    extra: dict | None = None


@dataclass(frozen=True)
class Unavailable:
    """A source that could not be opened here, why, and what the user can do about it."""

    name: str
    reason: str
    remedy: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}" + (f" (fix: {self.remedy})" if self.remedy else "")


@runtime_checkable
class TelemetrySource(Protocol):
    """The interface the sampler and discover() rely on.

    Each concrete source also has a classmethod `probe(...)` returning either an
    opened source or an Unavailable record; probe never raises for expected
    conditions (missing hardware, permissions, missing packages).
    """

    # Read-only properties: callers only read them, and a source may compute one (NvmlSource.update_period_s)
    # or hold a tuple of fixed length for `devices`; plain attributes satisfy them as well.

    @property
    def name(self) -> str: ...  # e.g. "rapl", "nvml-gpu0", "cpu-estimate", "external"

    @property
    def devices(self) -> tuple[str, ...]: ...  # e.g. ("cpu-pkg0", "dram0")

    @property
    def source(self) -> str: ...  # one of SOURCE_TAGS

    @property
    def method(self) -> str: ...  # one human-readable line on how the numbers are obtained

    @property
    def update_period_s(self) -> float: ...  # how often the underlying value changes

    @property
    def poll_interval_s(self) -> float: ...  # the sampler polls no faster than this; > 0 gets its own thread

    def read(self, t_ns: int) -> list[Sample]: ...

    def close(self) -> None: ...


@runtime_checkable
class StoppingSource(TelemetrySource, Protocol):
    """A source that stops giving samples for good once its readings would be wrong (a battery put on mains
    power), and says so: the note lands on every trial whose span reaches past the stop, never a silent gap."""

    def stop_note(self, start_ns: int, end_ns: int) -> str | None: ...  # None: it had not stopped by end_ns


@runtime_checkable
class EdgeSource(TelemetrySource, Protocol):
    """A cumulative source cheap and safe to read from the runner's thread, beside the sampler's: the meter reads
    it at every window's edge, so its windows are exact differences and its periodic rate can be low (the
    periodic readings then draw only the live chart and the peak)."""

    def read_edge(self, t_ns: int) -> list[Sample]: ...
