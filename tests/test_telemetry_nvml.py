"""The NVML source against a stand-in pynvml module replaying tests/fakes/nvml_trace.json."""

import sys

import pytest

from energytui.engine.telemetry import (
    COUNTER, INTEGRATED, NvmlSource, TrialWindows, Unavailable, attribute, update_periods,
)

from fakes.nvml_replay import NvmlReplay

MS = 1_000_000


def replay_reads(replay, sources, until_ms=2000, every_ms=10):
    samples = []
    for now_ms in range(0, until_ms + 1, every_ms):
        replay.time_ms = now_ms
        for source in sources:
            samples += source.read(now_ms * MS)
    return samples


def test_counter_gpu_and_power_only_gpu_are_tagged_and_attributed():
    replay = NvmlReplay()
    sources, unavailable = NvmlSource.probe_all(nvml=replay)
    assert unavailable == []
    gpu0, gpu1 = sources
    assert (gpu0.device, gpu0.source) == ("gpu0", COUNTER) and "total energy" in gpu0.method
    assert (gpu1.device, gpu1.source) == ("gpu1", INTEGRATED) and "no total-energy counter" in gpu1.method
    samples = replay_reads(replay, sources)
    windows = TrialWindows(100 * MS, 500 * MS, 600 * MS, 1500 * MS, 1900 * MS)
    result = attribute(samples, windows, gen_tokens=20, update_period_s=update_periods(sources))
    counter, integrated = result.devices["gpu0"], result.devices["gpu1"]
    # The counter steps every 50 ms and the edges sit on steps: exact trace differences.
    assert counter.gross_j == pytest.approx(250.0 * 1.0)
    assert counter.idle_power_w == pytest.approx(60.0)
    assert counter.net_j == pytest.approx((250.0 - 60.0) * 1.0)
    # Power reported from 550 ms (30 -> 120 W ramps between the 540 and 550 ms reads) until the end.
    assert integrated.gross_j == pytest.approx(30.0 * 0.04 + 75.0 * 0.01 + 120.0 * 0.95)
    assert integrated.peak_power_w == pytest.approx(120.0)
    assert result.source == INTEGRATED
    for source in sources:
        source.close()
    assert replay.init_count == 0 and replay.forbidden_calls == []


def test_extras_are_recorded_at_their_own_rate():
    replay = NvmlReplay()
    source = NvmlSource.probe(0, nvml=replay, extra_period_s=0.1, t_ns=0)
    samples = replay_reads(replay, [source], until_ms=990)
    with_extra = [s for s in samples if s.extra]
    assert len(with_extra) == 10  # 10 Hz out of 100 Hz reads
    loaded = next(s.extra for s in with_extra if s.t_ns >= 700 * MS)
    assert loaded == {"util_gpu_pct": 97, "sm_clock_mhz": 1980, "temperature_c": 48, "memory_used_mb": 2048.0}
    source.close()


def test_update_period_is_learned_from_counter_changes():
    replay = NvmlReplay()
    source = NvmlSource.probe(0, nvml=replay)
    assert source.update_period_s == pytest.approx(0.1)  # the conservative default before any change
    replay_reads(replay, [source], until_ms=1000)
    assert source.update_period_s == pytest.approx(0.05)
    source.close()


def test_driver_not_loaded_is_unavailable_with_remedy():
    sources, unavailable = NvmlSource.probe_all(nvml=NvmlReplay(driver_loaded=False))
    assert sources == [] and "NVIDIA driver" in unavailable[0].remedy


def test_missing_pynvml_names_the_package_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail for this test only
    result = NvmlSource.probe(0)
    assert isinstance(result, Unavailable) and result.remedy == "pip install nvidia-ml-py"


def test_gpus_are_described_for_the_host_row():
    from energytui.engine.telemetry.nvml import describe_gpus

    replay = NvmlReplay()
    assert describe_gpus(replay) == ("Stand-in GPU A (energy counter), Stand-in GPU B (no energy counter)",
                                     "000.00 (stand-in)")
    assert replay.init_count == 0
    assert describe_gpus(NvmlReplay(driver_loaded=False)) == (None, None)


def test_gpu_memory_is_the_total_of_the_visible_gpus():
    from energytui.engine.telemetry.nvml import gpu_memory_gb

    replay = NvmlReplay()
    assert gpu_memory_gb(replay) == 16.0 and replay.init_count == 0  # two stand-in GPUs of 8 GiB, NVML shut down
    assert gpu_memory_gb(NvmlReplay(driver_loaded=False)) is None
