"""Power telemetry: RAPL, NVML, a declared CPU estimate, external meters and batteries, on one clock.

Every timestamp is time.monotonic_ns() (int ns), the clock of the token timestamps.

Public API
----------
Samples and sources
    Sample(t_ns, device, source, power_w, energy_j, extra=None)
        device: "cpu-pkg0", "dram0", "gpu0", "cpu", "wall", "battery"; source: "counter" |
        "integrated" | "estimated"; energy_j: cumulative since the source opened (counter
        sources, and the CPU estimate's: each interval at its ticks' power); power_w:
        instantaneous or last-interval watts. A device whose samples all carry energy_j
        gets a window's energy as the difference of its readings at the window's edges.
    Unavailable(name, reason, remedy)         a source that cannot be opened, and the fix
    TelemetrySource                           protocol: name, devices, source, method,
                                              update_period_s, poll_interval_s, read(t_ns), close()
    weakest_source(tags)                      estimated < integrated < counter
    is_slow(update_period_s)                  updates less often than SLOW_UPDATE_PERIOD_S (0.1 s)
    StoppingSource                            protocol: stop_note(start_ns, end_ns), a source that stops for good
                                              when its readings would be wrong (a battery put on mains power)
    EdgeSource                                protocol: read_edge(t_ns), a cumulative source cheap and safe to
                                              read from the runner's thread at every window's edge
    is_cumulative(samples)                    every sample carries energy_j: windows are counter differences
    discover(powercap_root="/sys/class/powercap", nvml=None, use_nvml=True, cpu_estimate=None,
             cpu_tdp_w=None, cpu_threads=None, cpu_static_share=None, cpu_poll_interval_s=0.1, tdp_table=None,
             power_command=None, power_command_interval_s=1.0, power_supply_root="/sys/class/power_supply")
             -> (sources, unavailable)
        cpu_estimate=None opens the estimate only when RAPL is unavailable (no double count).

Sources (each has a classmethod probe(...) -> source | Unavailable)
    RaplSource.probe(root="/sys/class/powercap")   package + dram of every package, wrap-corrected
    NvmlSource.probe(index, nvml=None) / NvmlSource.probe_all(nvml=None)
                                              per GPU: energy counter, else integrated power
    CpuEstimateSource.probe(cpu_tdp_w=None, cpu_threads=None, tdp_table=None, cpu_static_share=None,
                            poll_interval_s=0.1)
                                              static + busy threads x dynamic per thread, from TDP and a
                                              static share; see .method, .assumption (parse_method reads
                                              .method back)
    ExternalMeterSource.probe(command, interval_s=1.0)   a command printing watts; device "wall"
    BatterySource.probe(root="/sys/class/power_supply")  the batteries' discharge rate, only while they
                                              discharge; device "battery", updates assumed every 5 s

Sampling
    Sampler(sources, rate_hz=100, on_batch=None, flush_interval_s=1.0)
        .start(), .stop(), context manager; .stats() -> {name: SourceStats(achieved_hz, ...)};
        .take_samples() when on_batch is None. on_batch runs on the sampler thread.

Attribution (pure)
    TrialWindows(t_idle_start, t_start, t_first_token, t_last_token, t_idle_end)
    attribute(samples, windows, gen_tokens, update_period_s=None, idle_power_w=None, expected_devices=())
        -> TrialEnergy
        TrialEnergy.devices[device] / .total: DeviceEnergy with windows (idle_before,
        prefill, decode, idle_after, trial -> WindowEnergy(energy_j, avg_power_w,
        short_window, reason, samples_inside)), idle_power_w, gross_j, net_j, net_below_zero,
        prefill_j, decode_j, j_per_token, net_j_per_token, decode_j_per_token,
        avg_power_w, peak_power_w, edp_js, source, notes; .source is the weakest tag.
        total = a whole-machine device ("wall", else "battery") if present, else the sum of all devices;
        net is not clamped.
    update_periods(sources) -> {device: seconds}   feed to attribute()

Typical use
    sources, unavailable = discover(cpu_tdp_w=args.cpu_tdp)
    sampler = Sampler(sources, on_batch=store.insert_samples); sampler.start()
    ... idle, run the trial, record token times (time.monotonic_ns()), idle again ...
    sampler.stop()            # or keep it running across trials and read samples from the store
    result = attribute(samples_of_the_trial, TrialWindows(...), gen_tokens,
                       update_period_s=update_periods(sources))
    for source in sources: source.close()
"""

from .attribution import (
    DeviceEnergy,
    TrialEnergy,
    TrialWindows,
    WindowEnergy,
    attribute,
    update_periods,
    window_energy,
)
from .base import (
    COUNTER, ESTIMATED, INTEGRATED, SOURCE_TAGS, EdgeSource, Sample, StoppingSource, TelemetrySource, Unavailable,
    is_cumulative, is_slow, weakest_source,
)
from .battery import BatterySource
from .cpu_estimate import CpuEstimateSource, CpuPowerModel, load_tdp_table
from .discovery import discover
from .external import ExternalMeterError, ExternalMeterSource
from .nvml import NvmlSource
from .rapl import RaplSource, permission_remedy, unwrap_delta
from .sampler import Sampler, SourceStats

__all__ = [
    "COUNTER", "ESTIMATED", "INTEGRATED", "SOURCE_TAGS",
    "Sample", "Unavailable", "TelemetrySource", "StoppingSource", "EdgeSource", "weakest_source", "is_cumulative",
    "is_slow", "discover",
    "RaplSource", "permission_remedy", "unwrap_delta",
    "NvmlSource", "CpuEstimateSource", "CpuPowerModel", "load_tdp_table",
    "ExternalMeterSource", "ExternalMeterError", "BatterySource",
    "Sampler", "SourceStats",
    "TrialWindows", "WindowEnergy", "DeviceEnergy", "TrialEnergy", "attribute", "update_periods", "window_energy",
]
