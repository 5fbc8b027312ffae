"""A stand-in for the pynvml module that replays tests/fakes/nvml_trace.json.

Not NVIDIA code and not a simulator: each query returns the trace row in force
at the stand-in's clock (`time_ms`, set by the test), the way a GPU shows a
value from one update until the next. Any nvml*Set* call is recorded in
`forbidden_calls` so tests can assert that nothing changes GPU settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

TRACE_PATH = Path(__file__).with_name("nvml_trace.json")


class NVMLError(Exception):
    def __init__(self, value: int):
        super().__init__(f"NVML error {value}")
        self.value = value


class NvmlReplay:
    NVMLError = NVMLError
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, trace_path: Path = TRACE_PATH, *, driver_loaded: bool = True):
        trace = json.loads(Path(trace_path).read_text())
        self.step_ms = trace["step_ms"]
        self.columns = trace["columns"]
        self.gpus = trace["gpus"]
        self.driver_loaded = driver_loaded
        self.time_ms = 0
        self.init_count = 0  # nvmlInit minus nvmlShutdown calls
        self.forbidden_calls: list[str] = []

    def __getattr__(self, name: str):
        if name.startswith("nvml") and "Set" in name:
            def record_forbidden(*args, **kwargs):
                self.forbidden_calls.append(name)
            return record_forbidden
        raise AttributeError(name)

    def _row(self, handle: int) -> dict:
        records = self.gpus[handle]["records"]
        step = min(self.time_ms // self.step_ms, len(records) - 1)
        return dict(zip(self.columns, records[step]))

    def nvmlInit(self) -> None:
        if not self.driver_loaded:
            raise NVMLError(self.NVML_ERROR_DRIVER_NOT_LOADED)
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self.init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "000.00 (stand-in)"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.gpus[handle]["name"]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if not self.gpus[handle]["energy_counter"]:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return self._row(handle)["energy_mj"]

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._row(handle)["power_mw"]

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._row(handle)["util_gpu_pct"], memory=0)

    def nvmlDeviceGetClockInfo(self, handle: int, clock_type: int) -> int:
        assert clock_type == self.NVML_CLOCK_SM
        return self._row(handle)["sm_clock_mhz"]

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._row(handle)["temperature_c"]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        used = self._row(handle)["memory_used_mb"] * 2**20
        return SimpleNamespace(used=used, total=8 * 2**30, free=8 * 2**30 - used)
