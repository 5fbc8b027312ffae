"""A fake slow wall meter, a stand-in for a smart plug this machine lacks: a thread writes the watts it
"measures" into a file once per period, and `energytui run --power-command "cat FILE"` reads them.

Its watts follow the machine's CPU busy time (static + per busy CPU, from /proc/stat), averaged over each
period as a real meter's display is. It also keeps the truth at a fine step, so a test can integrate the
exact power over any span of the monotonic clock (the tokens' clock, shared by every process).
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path


def _cpu_times() -> tuple[int, int]:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, idle, iowait, irq, softirq = (int(v) for v in fields[1:8])
    steal = int(fields[8]) if len(fields) > 8 else 0
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait + steal


class BusyFollowingMeter:
    """watts = static_w + per_cpu_w × busy CPUs, shown as its mean over the last `period_s`."""

    def __init__(self, path: Path, static_w: float, per_cpu_w: float, period_s: float = 1.0,
                 step_s: float = 0.02):
        self.path, self.static_w, self.per_cpu_w = path, static_w, per_cpu_w
        self.period_s, self.step_s = period_s, step_s
        self.cpus = os.cpu_count() or 1
        self.times: list[int] = []  # the end of each fine step
        self.watts: list[float] = []  # the true power over the step ending there
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "BusyFollowingMeter":
        self._show(self.static_w)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        busy0, total0 = _cpu_times()
        shown_at = time.monotonic_ns()
        while not self._stop.wait(self.step_s):
            busy, total = _cpu_times()
            if total > total0:
                self.times.append(time.monotonic_ns())
                self.watts.append(self.static_w + self.per_cpu_w * self.cpus * (busy - busy0) / (total - total0))
                busy0, total0 = busy, total
            if self.times and self.times[-1] - shown_at >= self.period_s * 1e9:
                self._show(self.energy(shown_at, self.times[-1]) / ((self.times[-1] - shown_at) / 1e9))
                shown_at = self.times[-1]

    def _show(self, watts: float) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(f"{watts:.3f}\n")
        temporary.replace(self.path)

    def energy(self, start_ns: int, end_ns: int) -> float:
        """The true joules over [start_ns, end_ns]: each fine step's power over its overlap with the span."""
        first = bisect.bisect_right(self.times, start_ns)
        joules = 0.0
        for index in range(first, len(self.times)):
            step_start = self.times[index - 1] if index else self.times[index] - int(self.step_s * 1e9)
            overlap = min(self.times[index], end_ns) - max(step_start, start_ns)
            if overlap > 0:
                joules += self.watts[index] * overlap / 1e9
            if step_start >= end_ns:
                break
        return joules


def constant_meter(path: Path, watts: float) -> str:
    """A meter that always reads `watts`: the command for --power-command."""
    path.write_text(f"{watts}\n")
    return f"cat {path}"
