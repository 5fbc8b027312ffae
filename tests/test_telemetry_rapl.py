"""The RAPL source against fake powercap trees (tests/fakes/powercap.py)."""

import time

import pytest

from energytui.engine.telemetry import COUNTER, RaplSource, Unavailable, unwrap_delta
from energytui.engine.telemetry.rapl import find_rapl_zones

from fakes.powercap import FakePowercap, PowercapDriver

MS = 1_000_000


def test_packages_and_dram_are_used_psys_core_uncore_never(tmp_path):
    fake = FakePowercap.two_packages(tmp_path, max_range_uj=10**9)
    fake.add_zone("intel-rapl:0:2", "uncore", 10**9)
    zones, skipped = find_rapl_zones(tmp_path)
    assert [device for device, _ in zones] == ["cpu-pkg0", "cpu-pkg1", "dram0", "dram1"]
    assert any(s.startswith("psys") for s in skipped)
    assert sum(s.startswith("core") for s in skipped) == 2 and any(s.startswith("uncore") for s in skipped)
    source = RaplSource.probe(tmp_path)
    assert source.devices == ("cpu-pkg0", "cpu-pkg1", "dram0", "dram1") and source.source == COUNTER
    assert "psys" in source.method
    source.close()


REAL_RANGE_UJ = 262_143_328_850  # a common max_energy_range_uj: 2^32 units of 61 uJ


def test_unwrap_without_wrap_and_with_one_wrap_is_exact():
    assert unwrap_delta(100, 400, REAL_RANGE_UJ, 0.01, None) == (300, 0, False)
    assert unwrap_delta(REAL_RANGE_UJ - 100, 200, REAL_RANGE_UJ, 0.01, None) == (300, 1, False)
    assert unwrap_delta(REAL_RANGE_UJ - 100, 200, REAL_RANGE_UJ, 0.01, 20.0) == (300, 1, False)


def test_several_wraps_are_inferred_from_elapsed_time_and_last_power():
    # 1 J range; last power 100 W over 0.034 s -> ~3.4 J expected, counter shows +0.4 J net of wraps
    step = unwrap_delta(raw_before=100_000, raw_now=500_000, max_range_uj=1_000_000, elapsed_s=0.034,
                        last_power_w=100.0)
    assert step == (3_400_000, 3, True)


def test_unknown_power_and_long_gap_is_flagged_ambiguous():
    long_gap = unwrap_delta(500, 400, 1_000_000, elapsed_s=10.0, last_power_w=None)
    assert long_gap.delta_uj == 999_900 and long_gap.inferred
    assert not unwrap_delta(500, 400, 1_000_000, elapsed_s=0.0001, last_power_w=None).inferred


def test_reads_accumulate_across_wraps_and_flag_inferred_ones(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_zone("intel-rapl:0", "package-0", max_range_uj=1_000_000, energy_uj=990_000)
    source = RaplSource.probe(tmp_path, t_ns=0)
    fake.set_energy("intel-rapl:0", 990_000 + 20_000)  # 20 W for 1 ms, across the wrap
    first = source.read(1 * MS)[0]
    assert first.energy_j == pytest.approx(0.02) and first.power_w == pytest.approx(20.0) and first.extra is None
    fake.set_energy("intel-rapl:0", 990_000 + 20_000 + 2_600_000)  # 20 W for 130 ms: 2.6 J over a 1 J range
    second = source.read(131 * MS)[0]
    assert second.energy_j == pytest.approx(2.62) and second.extra == {"wraps_inferred": 2}
    assert source.inferred_wrap_reads == 1
    source.close()


def test_counters_written_by_a_background_thread_match_exactly(tmp_path):
    """Two packages wrap several times while being read; psys (120 W) must not show up anywhere."""
    max_range = 5_000_000  # 5 J: package 0 at 40 W wraps every 125 ms
    start = {"intel-rapl:0": 4_990_000, "intel-rapl:0:1": 100, "intel-rapl:1": 2_500_000,
             "intel-rapl:1:1": 0, "intel-rapl:2": 7, "intel-rapl:0:0": 0}
    fake = FakePowercap.two_packages(tmp_path, max_range, start)
    source = RaplSource.probe(tmp_path)
    watts = {"intel-rapl:0": 40.0, "intel-rapl:0:1": 3.0, "intel-rapl:1": 25.0, "intel-rapl:1:1": 2.0,
             "intel-rapl:2": 120.0, "intel-rapl:0:0": 30.0}
    driver = PowercapDriver(fake, watts, start)
    driver.start()
    previous = {device: 0.0 for device in source.devices}
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        for sample in source.read(time.monotonic_ns()):
            assert sample.energy_j >= previous[sample.device]  # cumulative never goes back
            previous[sample.device] = sample.energy_j
        time.sleep(0.005)
    totals = driver.stop()
    final = {s.device: s.energy_j for s in source.read(time.monotonic_ns())}
    expected = {"cpu-pkg0": "intel-rapl:0", "dram0": "intel-rapl:0:1", "cpu-pkg1": "intel-rapl:1",
                "dram1": "intel-rapl:1:1"}
    for device, zone in expected.items():
        assert final[device] == pytest.approx((totals[zone] - start[zone]) / 1e6, abs=1e-6), device
    assert final["cpu-pkg0"] > 4 * max_range / 1e6  # it really wrapped several times
    assert set(final) == set(expected)
    source.close()


def test_root_only_counters_give_the_exact_remedy(tmp_path):
    FakePowercap.two_packages(tmp_path, 10**9)

    def root_only(path):
        raise PermissionError(13, "Permission denied", path)

    result = RaplSource.probe(tmp_path, opener=root_only)
    assert isinstance(result, Unavailable)
    assert "root only" in result.reason and "CVE-2020-8694" in result.reason
    assert f"sudo chmod o+r {tmp_path}/intel-rapl:*/energy_uj" in result.remedy
    assert ('ACTION=="add", SUBSYSTEM=="powercap", KERNEL=="intel-rapl:*", '
            'RUN+="/bin/chmod o+r /sys%p/energy_uj"') in result.remedy


def test_no_powercap_or_only_psys_is_unavailable(tmp_path):
    missing = RaplSource.probe(tmp_path / "absent")
    assert isinstance(missing, Unavailable) and "modprobe intel_rapl_msr" in missing.remedy
    fake = FakePowercap(tmp_path / "psys-only")
    fake.add_zone("intel-rapl:0", "psys", 10**9)
    only_psys = RaplSource.probe(tmp_path / "psys-only")
    assert isinstance(only_psys, Unavailable) and "psys" in only_psys.reason


def test_one_skewed_interval_does_not_turn_the_next_gap_into_phantom_wraps(tmp_path):
    """A sampler preempted for 300 ms between its timestamp and its pread makes one 10 ms interval
    look like 620 W; the 310 ms interval after it must be read at the true 20 W, not as six extra
    wraps of the 30 J range (each read alone is exact: wraps are only a question of power x time)."""
    fake = FakePowercap(tmp_path)
    fake.add_zone("intel-rapl:0", "package-0", max_range_uj=30_000_000)
    source = RaplSource.probe(tmp_path, t_ns=0)
    watts = 20.0

    def read_at(stamp_ms: int, counter_ms: int):
        fake.set_energy("intel-rapl:0", int(watts * counter_ms * 1000))
        return source.read(stamp_ms * MS)[0]

    for t_ms in range(10, 2001, 10):
        read_at(t_ms, t_ms)
    skewed = read_at(2010, counter_ms=2310)
    assert skewed.power_w == pytest.approx(watts * 310 / 10)
    after = read_at(2320, 2320)
    assert after.energy_j == pytest.approx(watts * 2.32) and after.extra is None
    assert source.inferred_wrap_reads == 0
    source.close()
