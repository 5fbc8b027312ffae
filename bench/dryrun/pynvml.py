"""NVML STAND-IN for `bench/device_check.sh --dry-run` (on PYTHONPATH ahead of any real pynvml).

Not NVIDIA's module and not a GPU: tests/fakes/nvml_replay.py's replay of the synthetic trace
tests/fakes/nvml_trace.json, driven by the wall clock (time.monotonic) instead of a test's hand,
and looped; the energy counter keeps counting across loops, as a real one does. Its GPUs are named
"Stand-in GPU A/B", so nothing measured through it can pass for a GPU reading. Any nvml*Set* call
(a change of GPU settings, which energytui must never make) raises and says so on stderr.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from fakes.nvml_replay import NVMLError, NvmlReplay  # noqa: E402

_ = NVMLError  # re-exported: energytui catches pynvml.NVMLError


class _ClockedReplay(NvmlReplay):
    """The trace's row at the time since import, looped; energy continues across loops."""

    def __init__(self):
        super().__init__()
        self._t0 = time.monotonic()
        self._energy = self.columns.index("energy_mj")

    def _row(self, handle: int) -> dict:
        records = self.gpus[handle]["records"]
        elapsed_ms = int((time.monotonic() - self._t0) * 1000)
        loop, within = divmod(elapsed_ms, len(records) * self.step_ms)
        row = dict(zip(self.columns, records[within // self.step_ms]))
        if row["energy_mj"] is not None:
            first, before_last, last = (records[i][self._energy] for i in (0, -2, -1))
            row["energy_mj"] += loop * (last - first + last - before_last)
        return row

    def __getattr__(self, name: str):
        if name.startswith("nvml") and "Set" in name:
            def forbidden(*args, **kwargs):
                print(f"FORBIDDEN NVML CALL {name}: energytui must never change GPU settings", file=sys.stderr)
                raise RuntimeError(f"{name} called on the NVML stand-in")
            return forbidden
        raise AttributeError(name)


_replay = _ClockedReplay()


def __getattr__(name: str):
    return getattr(_replay, name)
