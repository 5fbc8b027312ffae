"""Whole-machine power from a laptop's battery discharge rate, through Linux's power_supply class.

Read for every battery (<root>/BAT*, e.g. /sys/class/power_supply/BAT0):

    status        "Discharging" | "Charging" | "Full" | "Not charging" | "Unknown"
    power_now     µW; where absent, current_now (µA) × voltage_now (µV)

Some drivers report a discharge as a negative number; its magnitude is used. The batteries'
discharge rates, summed, are the whole machine's power only while it runs on them (device
"battery", source "integrated", like the external wall meter: never added to the CPU or GPU
figures). On mains power a battery measures its charge current or nothing, so probe() refuses,
and a source that sees its batteries leave "Discharging" during a run stops for good: it gives
no more samples and says why (stop_note). It does not resume when unplugged again, because
windows across the span without valid readings would be interpolated over it.

Update period: the kernel's ACPI battery driver re-reads the firmware's battery state at most
once a second (drivers/acpi/battery.c, module parameter cache_time = 1000 ms), and the embedded
controller behind it refreshes the rate less often, by its own firmware's rule: some report an
average over the last minute (ThinkWiki, "How to measure power consumption"). No standard says
how often, so BATTERY_UPDATE_PERIOD_S assumes a few seconds: windows shorter than that are
flagged, never integrated from a stale value.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from .base import BATTERY_DEVICE, INTEGRATED, Sample, Unavailable

DEFAULT_POWER_SUPPLY_ROOT = "/sys/class/power_supply"
BATTERY_UPDATE_PERIOD_S = 5.0  # assumed, see the module docstring; windows shorter than this are flagged
BATTERY_POLL_INTERVAL_S = 0.25  # its own sampler thread: a firmware read can take milliseconds
DISCHARGING = "Discharging"
ON_MAINS = ("Charging", "Full", "Not charging")  # a charger is connected
UNPLUG = "unplug the charger before the run and keep it unplugged until the run ends"
NO_RATE_REMEDY = "use a wall meter (--power-command) instead: this battery's firmware reports no discharge rate"


@dataclass(frozen=True)
class BatteryReading:
    name: str  # "BAT0"
    status: str
    power_w: float | None  # None: the battery reports no discharge rate
    how: str  # "power_now" or "current_now × voltage_now"


@dataclass(frozen=True)
class BatteryState:
    """Every battery at one moment, and what that means for measuring the machine."""

    readings: tuple[BatteryReading, ...]

    @property
    def discharging(self) -> list[BatteryReading]:
        return [r for r in self.readings if r.status == DISCHARGING]

    def describe(self) -> str:
        """e.g. 'BAT0 Discharging at 12.3 W, BAT1 Unknown'."""
        return ", ".join(f"{r.name} {r.status}" + (f" at {r.power_w:.1f} W" if r.status == DISCHARGING and r.power_w
                                                    else "") for r in self.readings)

    def invalid_reason(self) -> str | None:
        """Why the discharge rate is not the machine's power now; None when it is. A battery neither charging nor
        discharging ("Unknown", an idle second battery) adds nothing while another one discharges."""
        mains = [r for r in self.readings if r.status in ON_MAINS]
        if mains:
            return f"on mains power ({self.describe()})"
        if not self.discharging:
            return f"no battery is discharging ({self.describe()})"
        silent = [r.name for r in self.discharging if r.power_w is None]
        if silent:
            return (f"{', '.join(silent)} reports no discharge rate (neither power_now nor current_now and "
                    "voltage_now)")
        if not self.power_w:
            return f"the batteries report 0 W while discharging ({self.describe()})"
        return None

    def remedy(self) -> str:
        """What makes the discharge rate usable, for the reason invalid_reason() gives."""
        if self.discharging and not any(r.status in ON_MAINS for r in self.readings):
            return NO_RATE_REMEDY
        return f"{UNPLUG}: a battery measures the machine only while it discharges"

    @property
    def power_w(self) -> float:
        return sum(r.power_w or 0.0 for r in self.discharging)


def find_batteries(root: str | Path = DEFAULT_POWER_SUPPLY_ROOT) -> list[Path]:
    """The BAT* supplies under root that are batteries (a `type` file, where present, says "Battery")."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [path for path in sorted(root.glob("BAT*"))
            if path.is_dir() and _text(path / "type", "Battery") == "Battery"]


def read_state(paths: list[Path]) -> BatteryState:
    """Every battery's status and discharge rate; OSError or ValueError when a file cannot be read or parsed."""
    return BatteryState(tuple(_reading(path) for path in paths))


def _reading(path: Path) -> BatteryReading:
    power_w, how = _rate(path)
    # The status after the rate: a rate read across a switch to mains power is then dropped with it.
    return BatteryReading(path.name, _text(path / "status", "Unknown"), power_w, how)


def _rate(path: Path) -> tuple[float | None, str]:
    if (path / "power_now").exists():
        return abs(_micro(path / "power_now")) / 1e6, "power_now"
    if (path / "current_now").exists() and (path / "voltage_now").exists():
        return abs(_micro(path / "current_now")) * abs(_micro(path / "voltage_now")) / 1e12, "current_now × voltage_now"
    return None, "nothing"


def _micro(path: Path) -> int:
    """A value in µW, µA or µV."""
    text = _text(path)
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{path} holds {text!r}, not a whole number") from None


def _text(path: Path, default: str | None = None) -> str:
    if default is not None and not path.exists():
        return default
    return path.read_text().strip()


class BatterySource:
    """The discharge rate of every battery, summed: the whole machine's power while on battery."""

    name = "battery"
    devices = (BATTERY_DEVICE,)
    source = INTEGRATED
    poll_interval_s = BATTERY_POLL_INTERVAL_S

    def __init__(self, paths: list[Path], root: Path, first: BatteryState, update_period_s: float):
        self._paths = paths
        self.update_period_s = update_period_s
        self.state = first.describe()  # as last read; for `energytui doctor`
        self._stopped: tuple[int, str] | None = None  # (when, why) the readings stopped being valid
        self._lock = threading.Lock()
        how = "; ".join(f"{r.name} {r.how}" for r in first.readings if r.status == DISCHARGING)
        self.method = (f"integrated: battery discharge rate under {root} ({how}), read every "
                       f"{self.poll_interval_s:g} s and integrated over time: the whole machine's power while it "
                       f"runs on battery; its value is assumed to change every {update_period_s:g} s (firmware "
                       "decides; Linux re-reads it at most once a second)")

    @classmethod
    def probe(cls, root: str | Path = DEFAULT_POWER_SUPPLY_ROOT, *,
              update_period_s: float = BATTERY_UPDATE_PERIOD_S) -> "BatterySource | Unavailable":
        """Open the batteries under root; Unavailable on a machine without one, or while on mains power."""
        root = Path(root)
        paths = find_batteries(root)
        if not paths:
            return Unavailable("battery", f"no battery under {root} (desktops and virtual machines have none)")
        try:
            state = read_state(paths)
        except (OSError, ValueError) as error:
            return Unavailable("battery", f"cannot read the batteries under {root}: {error}")
        reason = state.invalid_reason()
        if reason is not None:
            return Unavailable("battery", reason, state.remedy())
        return cls(paths, root, state, update_period_s)

    def read(self, t_ns: int) -> list[Sample]:
        with self._lock:
            if self._stopped is not None:
                return []
        try:
            state = read_state(self._paths)
            reason = state.invalid_reason()
        except (OSError, ValueError) as error:
            reason = f"the batteries could not be read ({error})"
        if reason is not None:
            with self._lock:
                self._stopped = (t_ns, reason)
            self.state = f"stopped: {reason}"
            return []
        self.state = state.describe()
        return [Sample(t_ns, BATTERY_DEVICE, INTEGRATED, state.power_w, None)]

    def stop_note(self, start_ns: int, end_ns: int) -> str | None:
        """Why there are no battery readings from some point of [start_ns, end_ns] (a trial's or a steady
        window's) on; None if it had not stopped by end_ns."""
        with self._lock:
            stopped = self._stopped
        if stopped is None or stopped[0] > end_ns:
            return None
        return (f"battery: readings stopped: {stopped[1]}; no battery figures from then on "
                f"(to measure from the battery, {UNPLUG} and run it again)")

    def close(self) -> None:
        pass
