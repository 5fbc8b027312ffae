"""A fake slow wall meter, a stand-in for a smart plug this machine lacks: a thread writes the watts it
"measures" into a file once per period, and `energytui run --power-command "cat FILE"` reads them.

Its watts follow CPU busy time (static + per busy CPU), averaged over each period as a real meter's display
is: the whole machine's (/proc/stat), or one process's (a test's own, so that other work on a shared
machine does not move it). It also keeps the truth at a fine step, so a test can integrate the
exact power over any span of the monotonic clock (the tokens' clock, shared by every process).
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path
from typing import Callable


def machine_cpu_seconds() -> float:
    """Busy CPU-seconds of the whole machine so far (/proc/stat's aggregate line)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class BusyFollowingMeter:
    """watts = static_w + per_cpu_w × busy CPUs, shown as its mean over the last `period_s`."""

    def __init__(self, path: Path, static_w: float, per_cpu_w: float, period_s: float = 1.0,
                 step_s: float = 0.02, cpu_seconds: Callable[[], float] = machine_cpu_seconds):
        self.path, self.static_w, self.per_cpu_w = path, static_w, per_cpu_w
        self.period_s, self.step_s, self.cpu_seconds = period_s, step_s, cpu_seconds
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
        busy0, t0 = self.cpu_seconds(), time.monotonic_ns()
        shown_at = t0
        while not self._stop.wait(self.step_s):
            busy, now = self.cpu_seconds(), time.monotonic_ns()
            self.times.append(now)
            self.watts.append(self.static_w + self.per_cpu_w * (busy - busy0) / ((now - t0) / 1e9))
            busy0, t0 = busy, now
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
