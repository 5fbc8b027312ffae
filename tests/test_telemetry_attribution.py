"""Attribution on synthetic sample streams whose energies are known in closed form."""

import math

import pytest

from energytui.engine.telemetry import (
    COUNTER, ESTIMATED, INTEGRATED, Sample, TrialWindows, attribute, RaplSource,
)

from fakes.powercap import FakePowercap

S = 1_000_000_000  # ns per second
MS = 1_000_000


def power_stream(device, source, watts_at, start_s=0.0, end_s=4.0, step_s=0.01):
    count = round((end_s - start_s) / step_s)
    return [Sample(round((start_s + i * step_s) * S), device, source, watts_at(start_s + i * step_s), None)
            for i in range(count + 1)]


def counter_stream(device, watts, start_s=0.0, end_s=4.0, step_s=0.001):
    count = round((end_s - start_s) / step_s)
    return [Sample(round((start_s + i * step_s) * S), device, COUNTER, watts, watts * i * step_s)
            for i in range(count + 1)]


# Idle 0.5-1.0 s, prefill 1.0-1.2 s, decode 1.2-3.0 s, idle after to 3.5 s; edges off the sample grid.
WINDOWS = TrialWindows(500_000_123, 1_000_000_457, 1_200_003_001, 3_000_000_777, 3_500_000_000)


def seconds(start_ns, end_ns):
    return (end_ns - start_ns) / S


def test_constant_power_gives_power_times_duration_everywhere():
    result = attribute(power_stream("cpu", ESTIMATED, lambda t: 50.0), WINDOWS, gen_tokens=100)
    cpu = result.devices["cpu"]
    e2e = seconds(WINDOWS.t_start, WINDOWS.t_last_token)
    assert cpu.source == ESTIMATED and result.source == ESTIMATED
    assert cpu.gross_j == pytest.approx(50.0 * e2e)
    assert cpu.prefill_j == pytest.approx(50.0 * seconds(WINDOWS.t_start, WINDOWS.t_first_token))
    assert cpu.decode_j == pytest.approx(50.0 * seconds(WINDOWS.t_first_token, WINDOWS.t_last_token))
    assert cpu.idle_power_w == pytest.approx(50.0) and cpu.idle_power_origin == "measured"
    assert cpu.windows["prefill"].samples_inside == 20  # 1.01 ... 1.20 s
    assert cpu.net_j == pytest.approx(0.0, abs=1e-9)
    assert cpu.avg_power_w == pytest.approx(50.0) and cpu.peak_power_w == pytest.approx(50.0)
    assert cpu.j_per_token == pytest.approx(50.0 * e2e / 100)
    assert cpu.decode_j_per_token == pytest.approx(cpu.decode_j / 99)
    assert cpu.edp_js == pytest.approx(50.0 * e2e * e2e)
    assert result.e2e_s == pytest.approx(e2e)
    assert result.total.gross_j == pytest.approx(cpu.gross_j)


def test_ramp_integrates_exactly_with_edges_between_samples():
    ramp = lambda t: 10.0 + 20.0 * t  # noqa: E731
    exact = lambda a, b: 10.0 * (b - a) + 10.0 * (b * b - a * a)  # noqa: E731 - integral of the ramp
    result = attribute(power_stream("gpu0", INTEGRATED, ramp), WINDOWS, gen_tokens=10)
    gpu = result.devices["gpu0"]
    for name, (start, end) in WINDOWS.spans().items():
        assert gpu.windows[name].energy_j == pytest.approx(exact(start / S, end / S), rel=1e-9), name
    assert gpu.idle_power_w == pytest.approx(exact(0.500000123, 1.000000457) / 0.500000334)
    assert gpu.peak_power_w == pytest.approx(ramp(WINDOWS.t_last_token / S))


def test_counter_energy_is_interpolated_at_window_edges():
    result = attribute(counter_stream("cpu-pkg0", 30.0), WINDOWS, gen_tokens=5, update_period_s={"cpu-pkg0": 0.001})
    pkg = result.devices["cpu-pkg0"]
    assert pkg.source == COUNTER
    assert pkg.gross_j == pytest.approx(30.0 * seconds(WINDOWS.t_start, WINDOWS.t_last_token), rel=1e-9)
    assert pkg.prefill_j == pytest.approx(30.0 * seconds(WINDOWS.t_start, WINDOWS.t_first_token), rel=1e-9)
    assert pkg.idle_power_w == pytest.approx(30.0)


def test_two_packages_sum_and_weakest_tag_wins():
    samples = counter_stream("cpu-pkg0", 30.0) + counter_stream("cpu-pkg1", 20.0)
    samples += power_stream("gpu0", INTEGRATED, lambda t: 100.0)
    result = attribute(samples, WINDOWS, gen_tokens=10)
    e2e = seconds(WINDOWS.t_start, WINDOWS.t_last_token)
    assert result.total_devices == ("cpu-pkg0", "cpu-pkg1", "gpu0")
    assert result.total.gross_j == pytest.approx(150.0 * e2e)
    assert result.total.idle_power_w == pytest.approx(150.0)
    assert result.total.peak_power_w == pytest.approx(150.0)
    assert result.devices["cpu-pkg1"].source == COUNTER
    assert result.source == INTEGRATED and result.total.source == INTEGRATED


def test_counter_wrap_inside_a_window_through_the_rapl_source(tmp_path):
    """Raw counters wrap twice inside decode; the source unwraps, attribution sees exact energy."""
    fake = FakePowercap(tmp_path)
    fake.add_zone("intel-rapl:0", "package-0", max_range_uj=1_000_000, energy_uj=900_000)
    source = RaplSource.probe(tmp_path, t_ns=0)
    samples, watts = [], 40.0  # 40 W = 0.04 J per ms: wraps every 25 ms of the 1 J range
    for ms in range(1, 121):
        fake.set_energy("intel-rapl:0", 900_000 + round(watts * ms * 1000))
        samples += source.read(ms * MS)
    windows = TrialWindows(1 * MS, 10 * MS, 20 * MS, 95 * MS, 120 * MS)
    result = attribute(samples, windows, gen_tokens=8, update_period_s={"cpu-pkg0": 0.001})
    pkg = result.devices["cpu-pkg0"]
    assert pkg.decode_j == pytest.approx(40.0 * 0.075)  # 3 J over a 1 J counter range
    assert pkg.gross_j == pytest.approx(40.0 * 0.085)
    assert pkg.idle_power_w == pytest.approx(40.0)
    source.close()


def test_window_shorter_than_update_period_is_flagged_not_zero():
    windows = TrialWindows(500 * MS, 1000 * MS, 1000 * MS + 400_000, 2000 * MS, 2500 * MS)  # prefill 0.4 ms
    result = attribute(counter_stream("cpu-pkg0", 30.0), windows, gen_tokens=4,
                       update_period_s={"cpu-pkg0": 0.001})
    prefill = result.devices["cpu-pkg0"].windows["prefill"]
    assert prefill.energy_j is None and prefill.short_window and "shorter than the update period" in prefill.reason
    assert result.devices["cpu-pkg0"].prefill_j is None
    assert result.devices["cpu-pkg0"].gross_j == pytest.approx(30.0 * 1.0)  # the trial window is long enough
    assert result.total.windows["prefill"].energy_j is None and result.total.windows["prefill"].short_window


def test_window_without_straddling_samples_is_flagged():
    late_start = power_stream("cpu", ESTIMATED, lambda t: 20.0, start_s=0.9)  # nothing before 0.9 s
    result = attribute(late_start, WINDOWS, gen_tokens=3)
    cpu = result.devices["cpu"]
    idle = cpu.windows["idle_before"]
    assert idle.energy_j is None and idle.short_window and "before the window start" in idle.reason
    assert cpu.idle_power_w is None and cpu.net_j is None
    assert any("no idle power" in note for note in cpu.notes)
    assert cpu.gross_j == pytest.approx(20.0 * seconds(WINDOWS.t_start, WINDOWS.t_last_token))


def test_net_below_idle_is_kept_negative_and_flagged():
    samples = power_stream("cpu", ESTIMATED, lambda t: 50.0 if t < 1.0 else 40.0)  # the trial draws less than idle
    result = attribute(samples, WINDOWS, gen_tokens=10)
    cpu = result.devices["cpu"]
    assert cpu.idle_power_w == pytest.approx(50.0, abs=0.2)  # the 50 -> 40 W step is ramped over 10 ms
    assert cpu.net_j < 0 and cpu.net_below_zero
    assert cpu.net_j == pytest.approx(cpu.gross_j - cpu.idle_power_w * result.e2e_s)
    assert cpu.net_j == pytest.approx(-10.0 * result.e2e_s, rel=0.02)
    assert cpu.net_j_per_token == pytest.approx(cpu.net_j / 10)


def test_supplied_idle_power_overrides_the_measurement():
    result = attribute(power_stream("cpu", ESTIMATED, lambda t: 30.0), WINDOWS, gen_tokens=2,
                       idle_power_w={"cpu": 10.0})
    cpu = result.devices["cpu"]
    assert cpu.idle_power_origin == "supplied"
    assert cpu.net_j == pytest.approx(20.0 * result.e2e_s)


def test_wall_meter_is_the_total_and_components_are_not_added():
    samples = power_stream("wall", INTEGRATED, lambda t: 120.0, step_s=0.1)
    samples += counter_stream("cpu-pkg0", 30.0)
    result = attribute(samples, WINDOWS, gen_tokens=5)
    assert result.total_devices == ("wall",)
    assert result.total.gross_j == pytest.approx(120.0 * result.e2e_s)
    assert result.source == INTEGRATED


def test_a_battery_is_the_total_like_the_wall_meter_which_comes_first_when_both_are_there():
    battery = power_stream("battery", INTEGRATED, lambda t: 14.0, step_s=0.25)
    parts = counter_stream("cpu-pkg0", 30.0) + power_stream("cpu", ESTIMATED, lambda t: 20.0)
    result = attribute(battery + parts, WINDOWS, gen_tokens=5)
    assert result.total_devices == ("battery",) and result.source == INTEGRATED
    assert result.total.gross_j == pytest.approx(14.0 * result.e2e_s)  # never 14 + 30 + 20 W
    assert result.total.idle_power_w == pytest.approx(14.0)
    wall = power_stream("wall", INTEGRATED, lambda t: 120.0, step_s=0.1)
    assert attribute(battery + parts + wall, WINDOWS, gen_tokens=5).total_devices == ("wall",)


def test_a_source_that_gave_no_sample_leaves_the_total_unresolved_instead_of_summing_the_rest():
    """A battery put on mains power stops; the CPU estimate alone must not pass for the whole machine."""
    cpu = power_stream("cpu", ESTIMATED, lambda t: 20.0)
    result = attribute(cpu, WINDOWS, gen_tokens=5, expected_devices=("cpu", "battery"))
    assert result.total_devices == ("battery",) and result.source is None
    assert result.total.gross_j is None and result.total.idle_power_w is None and result.total.peak_power_w is None
    assert "battery: no sample at or before the window start" in result.total.windows["trial"].reason
    assert result.devices["cpu"].gross_j == pytest.approx(20.0 * result.e2e_s)


def test_a_source_too_slow_for_the_trial_gives_no_peak_power_either():
    samples = power_stream("wall", INTEGRATED, lambda t: 42.0, step_s=1.0)
    slow = attribute(samples, WINDOWS, gen_tokens=5, update_period_s={"wall": 5.0})  # the trial lasts 2 s
    assert slow.total.gross_j is None and slow.total.peak_power_w is None and slow.devices["wall"].peak_power_w is None
    fast_enough = attribute(samples, WINDOWS, gen_tokens=5, update_period_s={"wall": 1.0})
    assert fast_enough.total.peak_power_w == pytest.approx(42.0)


def test_counter_going_backwards_gives_no_energy():
    samples = counter_stream("cpu-pkg0", 30.0)
    reset = [Sample(s.t_ns, s.device, s.source, s.power_w, s.energy_j - 60.0) for s in samples if s.t_ns > 2 * S]
    samples = [s for s in samples if s.t_ns <= 2 * S] + reset
    result = attribute(samples, WINDOWS, gen_tokens=5)
    decode = result.devices["cpu-pkg0"].windows["decode"]
    assert decode.energy_j is None and "backwards" in decode.reason
    assert result.devices["cpu-pkg0"].windows["prefill"].energy_j == pytest.approx(30.0 * 0.200002544)


def test_peak_of_the_total_is_the_peak_of_the_sum():
    spike_cpu = power_stream("cpu", ESTIMATED, lambda t: 80.0 if abs(t - 2.0) < 1e-9 else 20.0)
    spike_gpu = power_stream("gpu0", INTEGRATED, lambda t: 90.0 if abs(t - 2.5) < 1e-9 else 50.0)
    result = attribute(spike_cpu + spike_gpu, WINDOWS, gen_tokens=5)
    assert result.devices["cpu"].peak_power_w == pytest.approx(80.0)
    assert result.devices["gpu0"].peak_power_w == pytest.approx(90.0)
    assert result.total.peak_power_w == pytest.approx(130.0)  # 80 + 50 at 2.0 s, not 80 + 90


def test_one_token_has_no_decode_energy_per_token_and_zero_tokens_none_at_all():
    samples = power_stream("cpu", ESTIMATED, lambda t: 10.0)
    assert attribute(samples, WINDOWS, gen_tokens=1).devices["cpu"].decode_j_per_token is None
    assert attribute(samples, WINDOWS, gen_tokens=0).devices["cpu"].j_per_token is None


def test_decreasing_window_edges_are_rejected():
    with pytest.raises(ValueError, match="must not decrease"):
        TrialWindows(0, 10, 5, 20, 30)


def test_empty_idle_window_is_flagged_and_result_serialises():
    windows = TrialWindows(1 * S, 1 * S, 2 * S, 3 * S, 3 * S)
    result = attribute(power_stream("cpu", ESTIMATED, lambda t: 10.0), windows, gen_tokens=5)
    assert result.devices["cpu"].windows["idle_before"].reason == "empty window"
    as_dict = result.as_dict()
    assert as_dict["total"]["gross_j"] == pytest.approx(20.0) and math.isfinite(as_dict["e2e_s"])


def test_an_idle_window_the_sampler_missed_the_start_of_begins_at_its_first_sample():
    """A starved sampler thread (a loaded machine) leaves no sample before the idle window opens."""
    from energytui.engine.metering import covered_start

    late = [Sample(1_050, "cpu", ESTIMATED, 5.0, None), Sample(1_060, "cpu", ESTIMATED, 5.0, None),
            Sample(900, "wall", INTEGRATED, 40.0, None), Sample(1_100, "wall", INTEGRATED, 40.0, None)]
    assert covered_start(late, 1_000) == 1_050  # the cpu estimate's first sample; the wall meter had one before
    assert covered_start(late[2:], 1_000) == 1_000  # covered: unchanged


def test_idle_power_comes_from_the_idle_window_alone_not_the_rewarm_after_it():
    """Idle 5 W, the idle window ending at 0.9 s; the engine re-warms the CPU at 40 W until prefill starts at
    1.0 s: the idle power stays 5 W, and the re-warm counts in no window."""
    windows = TrialWindows(500_000_123, 1_000_000_457, 1_200_003_001, 3_000_000_777, 3_500_000_000,
                           t_idle_before_end=900_000_000)
    result = attribute(power_stream("cpu", ESTIMATED, lambda t: 40.0 if 0.92 <= t < 1.0 else 5.0), windows,
                       gen_tokens=10)
    cpu = result.devices["cpu"]
    assert cpu.idle_power_w == pytest.approx(5.0, rel=0.02)
    assert cpu.prefill_j == pytest.approx(5.0 * seconds(windows.t_start, windows.t_first_token), rel=0.02)
    with pytest.raises(ValueError, match="window edges must not decrease"):
        TrialWindows(500, 1_000, 1_200, 3_000, 3_500, t_idle_before_end=1_100)
