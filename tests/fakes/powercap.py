"""A fake Linux powercap tree (stand-in for /sys/class/powercap) in a temporary folder.

Zones are laid out like sysfs: top-level intel-rapl:N folders, subzones nested
inside them and also linked at the top level, plus the "intel-rapl" control
folder. Counter files are rewritten in place (same inode, fixed width), like
sysfs values that a reader keeps open.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

COUNTER_WIDTH = 15


class FakePowercap:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "intel-rapl").mkdir(exist_ok=True)  # the control type, not a zone
        (self.root / "intel-rapl" / "enabled").write_text("1\n")
        self.max_range_uj: dict[str, int] = {}
        self.paths: dict[str, Path] = {}

    def add_zone(self, zone_id: str, name: str, max_range_uj: int, energy_uj: int = 0) -> Path:
        """zone_id like "intel-rapl:0" (top level) or "intel-rapl:0:2" (inside intel-rapl:0)."""
        parts = zone_id.split(":")
        if len(parts) == 3:
            folder = self.paths[":".join(parts[:2])] / zone_id
            folder.mkdir()
            os.symlink(folder, self.root / zone_id)  # sysfs lists subzones at the top level too
        else:
            folder = self.root / zone_id
            folder.mkdir()
        (folder / "name").write_text(name + "\n")
        (folder / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        self.paths[zone_id] = folder
        self.max_range_uj[zone_id] = max_range_uj
        self.set_energy(zone_id, energy_uj)
        return folder

    def energy_file(self, zone_id: str) -> Path:
        return self.paths[zone_id] / "energy_uj"

    def set_energy(self, zone_id: str, total_uj: int) -> None:
        """Write a total energy as the hardware would show it: modulo the counter range."""
        raw = total_uj % self.max_range_uj[zone_id]
        path = self.energy_file(zone_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, f"{raw:0{COUNTER_WIDTH}d}\n".encode(), 0)
        finally:
            os.close(fd)

    @classmethod
    def two_packages(cls, root: Path, max_range_uj: int, start_uj: dict[str, int] | None = None) -> "FakePowercap":
        """Two packages with core and dram subzones, and a psys zone (which must never be summed)."""
        start_uj = start_uj or {}
        fake = cls(root)
        layout = [
            ("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "core"), ("intel-rapl:0:1", "dram"),
            ("intel-rapl:1", "package-1"), ("intel-rapl:1:0", "core"), ("intel-rapl:1:1", "dram"),
            ("intel-rapl:2", "psys"),
        ]
        for zone_id, name in layout:
            fake.add_zone(zone_id, name, max_range_uj, start_uj.get(zone_id, 0))
        return fake


class PowercapDriver:
    """Advances counters at constant watts from a background thread, like the RAPL hardware.

    The total energy of each zone is a function of elapsed time, so a stalled
    thread never loses energy; stop() writes the final totals and returns them.
    """

    def __init__(self, fake: FakePowercap, watts: dict[str, float], start_uj: dict[str, int],
                 period_s: float = 0.001):
        self.fake = fake
        self.watts = watts
        self.totals_uj = {zone: start_uj.get(zone, 0) for zone in watts}
        self.period_s = period_s
        self._start_uj = dict(self.totals_uj)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-powercap-driver", daemon=True)
        self._fds = {zone: os.open(fake.energy_file(zone), os.O_WRONLY) for zone in watts}
        self._t0 = 0

    def start(self) -> None:
        self._t0 = time.monotonic_ns()
        self._thread.start()

    def _write_all(self) -> None:
        elapsed_s = (time.monotonic_ns() - self._t0) / 1e9
        for zone, fd in self._fds.items():
            self.totals_uj[zone] = self._start_uj[zone] + int(self.watts[zone] * elapsed_s * 1e6)
            raw = self.totals_uj[zone] % self.fake.max_range_uj[zone]
            os.pwrite(fd, f"{raw:0{COUNTER_WIDTH}d}\n".encode(), 0)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._write_all()

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        self._write_all()
        for fd in self._fds.values():
            os.close(fd)
        return dict(self.totals_uj)
