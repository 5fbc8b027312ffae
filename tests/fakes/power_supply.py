"""A fake Linux power_supply tree (stand-in for /sys/class/power_supply) in a temporary folder.

This machine has no battery. The fake lays batteries out like sysfs (BAT0/type, status, power_now or
current_now and voltage_now, in µW, µA and µV) next to a mains adapter (AC/type Mains, online), and
BatteryDriver rewrites them from a thread like a laptop's fuel gauge. A value is replaced whole
(written aside, then renamed over the file), so a reader sees the old value or the new one.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

VOLTS = 11.4  # a 3-cell lithium-ion pack


class FakePowerSupply:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "AC").mkdir(parents=True, exist_ok=True)
        _write(self.root / "AC" / "type", "Mains")
        self.current_voltage: dict[str, bool] = {}

    def add_battery(self, name: str = "BAT0", status: str = "Discharging", watts: float | None = 15.0,
                    current_voltage: bool = False, negative: bool = False) -> Path:
        """A battery reporting power_now, or current_now × voltage_now (current_voltage=True; negative=True: the
        discharge as a negative current, as some drivers report it); watts=None: no rate at all."""
        folder = self.root / name
        folder.mkdir()
        _write(folder / "type", "Battery")
        self.current_voltage[name] = current_voltage
        self._negative = negative
        self.set(name, status, watts)
        return folder

    def set(self, name: str, status: str | None = None, watts: float | None = None) -> None:
        """The status first, then the rate, as a charger that takes over and then changes the current."""
        folder = self.root / name
        if status is not None:
            _write(folder / "status", status)
            _write(self.root / "AC" / "online", "0" if status == "Discharging" else "1")
        if watts is None:
            return
        if self.current_voltage[name]:
            microamps = round(watts / VOLTS * 1e6) * (-1 if self._negative else 1)
            _write(folder / "current_now", str(microamps))
            _write(folder / "voltage_now", str(round(VOLTS * 1e6)))
        else:
            _write(folder / "power_now", str(round(watts * 1e6)))


class BatteryDriver:
    """Rewrites a battery's rate every period_s from watts_at(seconds since start), and its status from
    status_at(seconds since start), from a background thread."""

    def __init__(self, fake: FakePowerSupply, name: str = "BAT0", watts_at: Callable[[float], float] = lambda t: 15.0,
                 status_at: Callable[[float], str] = lambda t: "Discharging", period_s: float = 0.02):
        self.fake, self.name, self.watts_at, self.status_at, self.period_s = fake, name, watts_at, status_at, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-battery-driver", daemon=True)
        self._t0 = 0.0

    def start(self) -> "BatteryDriver":
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            elapsed = time.monotonic() - self._t0
            self.fake.set(self.name, self.status_at(elapsed), self.watts_at(elapsed))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _write(path: Path, text: str) -> None:
    aside = path.with_name(f".{path.name}.new")
    aside.write_text(text + "\n")
    os.replace(aside, path)
