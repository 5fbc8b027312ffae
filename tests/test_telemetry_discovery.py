"""discover(): what this machine offers, and the choices between overlapping sources."""

import shlex
import sys
import time

from energytui.engine.telemetry import (
    COUNTER, ESTIMATED, CpuEstimateSource, RaplSource, Sampler, TrialWindows, attribute, discover, update_periods,
)

from fakes.nvml_replay import NvmlReplay
from fakes.powercap import FakePowercap


def close_all(sources):
    for source in sources:
        source.close()


def test_this_vm_gets_the_labelled_cpu_estimate_and_says_why_the_rest_is_missing(tmp_path):
    sources, unavailable = discover(powercap_root=tmp_path / "no-powercap", nvml=NvmlReplay(driver_loaded=False),
                                    power_supply_root=tmp_path / "no-battery")
    assert [type(s) for s in sources] == [CpuEstimateSource]
    missing = {u.name: u for u in unavailable}
    assert missing["rapl"].remedy and missing["nvml"].remedy and "no battery" in missing["battery"].reason
    assert sources[0].source == ESTIMATED and " W static (" in sources[0].method and " W TDP" in sources[0].method
    close_all(sources)


def test_the_static_share_reaches_the_estimate(tmp_path):
    sources, _ = discover(powercap_root=tmp_path / "no-powercap", use_nvml=False, cpu_static_share=0.4)
    assert sources[0].model.static_share == 0.4 and "static share: user-given --cpu-static-share" in sources[0].method
    close_all(sources)


def test_rapl_replaces_the_estimate_and_gpus_and_wall_meter_are_added(tmp_path):
    FakePowercap.two_packages(tmp_path, 10**9)
    meter = f"{shlex.quote(sys.executable)} -c 'print(55)'"
    sources, unavailable = discover(powercap_root=tmp_path, nvml=NvmlReplay(), power_command=meter,
                                    power_supply_root=tmp_path / "no-battery")
    assert [s.name for s in sources] == ["rapl", "nvml-gpu0", "nvml-gpu1", "external"]
    assert any(u.name == "cpu-estimate" and "RAPL" in u.reason for u in unavailable)
    forced, _ = discover(powercap_root=tmp_path, use_nvml=False, cpu_estimate=True,
                         power_supply_root=tmp_path / "no-battery")
    assert [s.name for s in forced] == ["rapl", "cpu-estimate"]
    close_all(sources + forced)


def test_sampler_and_attribution_end_to_end_on_fake_counters(tmp_path):
    fake = FakePowercap.two_packages(tmp_path, 10**12)
    sources, _ = discover(powercap_root=tmp_path, use_nvml=False, power_supply_root=tmp_path / "no-battery")
    (rapl,) = sources
    assert isinstance(rapl, RaplSource)
    sampler = Sampler(sources, rate_hz=100)
    sampler.start()
    edges = [time.monotonic_ns()]
    for step in range(1, 5):  # package 0 gains 1 J per 50 ms step: ~20 W
        time.sleep(0.05)
        fake.set_energy("intel-rapl:0", step * 1_000_000)
        edges.append(time.monotonic_ns())
    time.sleep(0.03)
    sampler.stop()
    windows = TrialWindows(edges[0] + 10**7, edges[1], edges[2], edges[3], edges[4])
    result = attribute(sampler.take_samples(), windows, gen_tokens=10, update_period_s=update_periods(sources))
    assert result.source == COUNTER and result.total_devices == ("cpu-pkg0", "cpu-pkg1", "dram0", "dram1")
    assert 1.0 <= result.total.gross_j <= 3.0  # 2 J written inside the trial, +-1 J of sampling lag at the edges
    close_all(sources)
