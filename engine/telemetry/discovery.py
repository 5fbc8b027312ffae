"""Find every power source on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .base import TelemetrySource, Unavailable
from .battery import DEFAULT_POWER_SUPPLY_ROOT, BatterySource
from .cpu_estimate import CHART_INTERVAL_S, DEFAULT_CPUINFO, DEFAULT_PROC_STAT, CpuEstimateSource
from .external import DEFAULT_INTERVAL_S, ExternalMeterSource
from .nvml import NvmlSource
from .rapl import DEFAULT_POWERCAP_ROOT, RaplSource


def discover(
    *,
    powercap_root: str | Path = DEFAULT_POWERCAP_ROOT,
    nvml: Any = None,
    use_nvml: bool = True,
    cpu_estimate: bool | None = None,
    cpu_tdp_w: float | None = None,
    cpu_threads: int | None = None,
    cpu_static_share: float | None = None,
    cpu_poll_interval_s: float = CHART_INTERVAL_S,
    tdp_table: str | Path | None = None,
    proc_stat: str = DEFAULT_PROC_STAT,
    cpuinfo: str = DEFAULT_CPUINFO,
    power_command: str | None = None,
    power_command_interval_s: float = DEFAULT_INTERVAL_S,
    power_supply_root: str | Path = DEFAULT_POWER_SUPPLY_ROOT,
) -> tuple[list[TelemetrySource], list[Unavailable]]:
    """(opened sources, Unavailable records) for RAPL, NVML GPUs, the CPU estimate, an external meter and a
    laptop's batteries.

    cpu_estimate: None (default) opens the estimate only when RAPL is unavailable,
    because both describe the CPU and would be double counted; True/False force it.
    cpu_static_share: the estimate's static share of TDP (None: config/cpu_tdp.yaml's).
    cpu_poll_interval_s: the estimate's periodic readings' interval (0: every sampler tick); the meter also
        reads it at every window's edge.
    nvml: an injected pynvml-like module (tests); use_nvml=False skips GPUs.
    power_command: an external meter command printing watts (device "wall").
    power_supply_root: where the batteries are (device "battery", opened only while they discharge).
    The caller owns the sources and must close() them.
    """
    sources: list[TelemetrySource] = []
    unavailable: list[Unavailable] = []

    def keep(opened: TelemetrySource | Unavailable) -> None:
        if isinstance(opened, Unavailable):
            unavailable.append(opened)
        else:
            sources.append(opened)

    rapl = _guarded("rapl", lambda: RaplSource.probe(powercap_root))
    keep(rapl)
    if use_nvml:
        try:
            gpus, missing = NvmlSource.probe_all(nvml=nvml)
        except Exception as error:  # a broken driver must not stop CPU measurements
            gpus, missing = [], [Unavailable("nvml", f"unexpected NVML error: {error}")]
        sources.extend(gpus)
        unavailable.extend(missing)
    want_estimate = isinstance(rapl, Unavailable) if cpu_estimate is None else cpu_estimate
    if want_estimate:
        keep(_guarded("cpu-estimate", lambda: CpuEstimateSource.probe(
            proc_stat=proc_stat, cpuinfo=cpuinfo, cpu_tdp_w=cpu_tdp_w, cpu_threads=cpu_threads,
            tdp_table=tdp_table, cpu_static_share=cpu_static_share, poll_interval_s=cpu_poll_interval_s)))
    else:
        unavailable.append(Unavailable("cpu-estimate", "not used: RAPL counters measure the CPU packages"))
    if power_command:
        keep(_guarded("external", lambda: ExternalMeterSource.probe(
            power_command, interval_s=power_command_interval_s)))
    keep(_guarded("battery", lambda: BatterySource.probe(power_supply_root)))
    return sources, unavailable


def _guarded(name: str, probe: Callable[[], TelemetrySource | Unavailable]) -> TelemetrySource | Unavailable:
    try:
        return probe()
    except Exception as error:  # probes handle expected failures; anything else is reported, not raised
        return Unavailable(name, f"unexpected error while probing: {type(error).__name__}: {error}")
