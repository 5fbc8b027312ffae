"""NVIDIA GPU energy and power through NVML (pynvml from the nvidia-ml-py package).

pynvml is imported lazily and is optional. The module object can be injected
(`nvml=`) so tests run against a stand-in. Only nvmlDeviceGet* queries are
made: GPU settings are never changed here.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from typing import Any, Callable

from .base import COUNTER, INTEGRATED, Sample, Unavailable

# Before any counter change is observed, assume this refresh period. Reports range
# from ~10 ms to ~100 ms depending on GPU and driver; the larger value flags more
# windows as short rather than reporting an unresolved value.
DEFAULT_NVML_UPDATE_PERIOD_S = 0.1
DEFAULT_EXTRA_PERIOD_S = 0.1  # utilisation/clock/temperature/memory: 10 Hz is plenty for charts
_MIN_CHANGES_FOR_OBSERVED_PERIOD = 5


def load_nvml(nvml: Any = None) -> Any | Unavailable:
    """The given module, else `import pynvml`, else an Unavailable record with the remedy."""
    if nvml is not None:
        return nvml
    try:
        with warnings.catch_warnings():
            # The old "pynvml" distribution warns on import; the module API is the same as nvidia-ml-py's.
            warnings.simplefilter("ignore", FutureWarning)
            import pynvml  # noqa: PLC0415 - optional, only needed with an NVIDIA GPU
    except ImportError:
        return Unavailable("nvml", "pynvml is not installed", "pip install nvidia-ml-py")
    return pynvml


def _is_not_supported(nvml: Any, error: Exception) -> bool:
    return getattr(error, "value", None) == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", 3)


def _init_failure(error: Exception) -> Unavailable:
    return Unavailable(
        "nvml",
        f"NVML could not start: {error}",
        "install or load the NVIDIA driver (nvidia-smi must work); no NVIDIA GPU means no NVML",
    )


class NvmlSource:
    """One GPU: total-energy counter when supported (Volta+), else integrated power."""

    poll_interval_s = 0.0

    def __init__(self, nvml: Any, index: int, handle: Any, gpu_name: str, has_energy_counter: bool,
                 opened_at_ns: int, extra_period_s: float):
        self._nvml = nvml
        self._handle = handle
        self.index = index
        self.gpu_name = gpu_name
        self.name = f"nvml-gpu{index}"
        self.device = f"gpu{index}"
        self.devices = (self.device,)
        self.has_energy_counter = has_energy_counter
        self.source = COUNTER if has_energy_counter else INTEGRATED
        if has_energy_counter:
            self.method = f"counter: NVML total energy (mJ) of GPU {index} '{gpu_name}'"
            self._energy_origin_mj = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        else:
            self.method = (f"integrated: NVML power (mW) of GPU {index} '{gpu_name}' integrated over time "
                           "(this GPU/driver has no total-energy counter)")
            self._energy_origin_mj = None
        self._extra_period_ns = int(extra_period_s * 1e9)
        self._next_extra_ns = opened_at_ns
        self._unsupported: set[str] = set()
        self._power_supported = True
        self._last_value: float | None = None
        self._last_change_ns: int | None = None
        self._change_gaps_ns: deque[int] = deque(maxlen=64)
        self._closed = False

    @classmethod
    def probe(cls, index: int = 0, *, nvml: Any = None, extra_period_s: float = DEFAULT_EXTRA_PERIOD_S,
              t_ns: int | None = None) -> "NvmlSource | Unavailable":
        """Open GPU `index`. Holds one nvmlInit reference until close()."""
        module = load_nvml(nvml)
        if isinstance(module, Unavailable):
            return module
        try:
            module.nvmlInit()
        except module.NVMLError as error:
            return _init_failure(error)
        try:
            handle = module.nvmlDeviceGetHandleByIndex(index)
            gpu_name = module.nvmlDeviceGetName(handle)
            gpu_name = gpu_name.decode() if isinstance(gpu_name, bytes) else str(gpu_name)
            has_counter = cls._supports_energy_counter(module, handle)
            if not has_counter:
                module.nvmlDeviceGetPowerUsage(handle)  # raises if power is not readable either
            opened_at = time.monotonic_ns() if t_ns is None else t_ns
            return cls(module, index, handle, gpu_name, has_counter, opened_at, extra_period_s)
        except module.NVMLError as error:
            module.nvmlShutdown()
            reason = "neither total energy nor power is readable" if _is_not_supported(module, error) else str(error)
            return Unavailable(f"nvml-gpu{index}", reason, "")

    @classmethod
    def probe_all(cls, *, nvml: Any = None, extra_period_s: float = DEFAULT_EXTRA_PERIOD_S
                  ) -> tuple[list["NvmlSource"], list[Unavailable]]:
        """One source per visible GPU, and the GPUs (or NVML itself) that could not be opened."""
        module = load_nvml(nvml)
        if isinstance(module, Unavailable):
            return [], [module]
        try:
            module.nvmlInit()
        except module.NVMLError as error:
            return [], [_init_failure(error)]
        try:
            count = module.nvmlDeviceGetCount()
        finally:
            module.nvmlShutdown()
        if count == 0:
            return [], [Unavailable("nvml", "NVML reports no NVIDIA GPU", "")]
        sources: list[NvmlSource] = []
        unavailable: list[Unavailable] = []
        for index in range(count):
            opened = cls.probe(index, nvml=module, extra_period_s=extra_period_s)
            if isinstance(opened, Unavailable):
                unavailable.append(opened)
            else:
                sources.append(opened)
        return sources, unavailable

    @staticmethod
    def _supports_energy_counter(nvml: Any, handle: Any) -> bool:
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return True
        except nvml.NVMLError as error:
            if _is_not_supported(nvml, error):
                return False
            raise

    @property
    def update_period_s(self) -> float:
        """Shortest observed gap between value changes, once a few were seen; else the default."""
        if len(self._change_gaps_ns) >= _MIN_CHANGES_FOR_OBSERVED_PERIOD:
            return min(self._change_gaps_ns) / 1e9
        return DEFAULT_NVML_UPDATE_PERIOD_S

    def read(self, t_ns: int) -> list[Sample]:
        nvml, handle = self._nvml, self._handle
        power_w = self._read_power_w()
        if self.has_energy_counter:
            energy_mj = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            energy_j = (energy_mj - self._energy_origin_mj) / 1000.0
            self._note_value(t_ns, energy_mj)
        else:
            if power_w is None:
                raise RuntimeError(f"GPU {self.index}: power reading stopped being supported")
            energy_j = None
            self._note_value(t_ns, power_w)
        extra = None
        if t_ns >= self._next_extra_ns:
            extra = self._read_extra()
            self._next_extra_ns = t_ns + self._extra_period_ns
        return [Sample(t_ns, self.device, self.source, power_w, energy_j, extra)]

    def _read_power_w(self) -> float | None:
        if not self._power_supported:
            return None
        try:
            return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except self._nvml.NVMLError as error:
            if not _is_not_supported(self._nvml, error):
                raise
            self._power_supported = False
            return None

    def _note_value(self, t_ns: int, value: float) -> None:
        if value != self._last_value:
            if self._last_change_ns is not None and self._last_value is not None:
                self._change_gaps_ns.append(t_ns - self._last_change_ns)
            self._last_value = value
            self._last_change_ns = t_ns

    def _read_extra(self) -> dict:
        nvml, handle = self._nvml, self._handle
        queries = {
            "util_gpu_pct": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
            "sm_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
            "temperature_c": lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
            "memory_used_mb": lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
        }
        extra = {}
        for field, query in queries.items():
            if field in self._unsupported:
                continue
            try:
                extra[field] = query()
            except nvml.NVMLError as error:
                if _is_not_supported(nvml, error):
                    self._unsupported.add(field)  # never ask again
        return extra

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._nvml.nvmlShutdown()



def _read_gpus(nvml: Any, read: Callable[[Any, list], Any], without: Any) -> Any:
    """`read(module, handles)` of the visible NVIDIA GPUs inside one NVML session; `without` when NVML is
    missing or fails."""
    module = load_nvml(nvml)
    if isinstance(module, Unavailable):
        return without
    try:
        module.nvmlInit()
    except module.NVMLError:
        return without
    try:
        return read(module, [module.nvmlDeviceGetHandleByIndex(i) for i in range(module.nvmlDeviceGetCount())])
    except module.NVMLError:
        return without
    finally:
        module.nvmlShutdown()


def gpu_memory_gb(nvml: Any = None) -> float | None:
    """Total memory of the visible NVIDIA GPUs in GiB (llama.cpp splits layers across them), None without NVML."""
    def total(module, handles: list) -> float | None:
        return round(sum(module.nvmlDeviceGetMemoryInfo(h).total for h in handles) / 2**30, 2) if handles else None

    return _read_gpus(nvml, total, None)


def describe_gpus(nvml: Any = None) -> tuple[str | None, str | None]:
    """("name, name", driver version) of the visible NVIDIA GPUs, or (None, None) without NVML."""
    def names_and_driver(module, handles: list) -> tuple[str | None, str]:
        text = [_text(module.nvmlDeviceGetName(h)) for h in handles]
        return (", ".join(text) or None), _text(module.nvmlSystemGetDriverVersion())

    return _read_gpus(nvml, names_and_driver, (None, None))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
