"""A trial's energy tags name only the sources whose samples made a stored figure, and a battery put on mains
power mid-run stops with a note on the trials and steady windows it leaves without figures (the meter, without
llama.cpp)."""

import sys
import threading
import time
from types import SimpleNamespace

import pytest

from energytui.engine.metering import Meter, MeterOptions, energy_columns
from energytui.engine.telemetry import (
    COUNTER, ESTIMATED, INTEGRATED, BatterySource, CpuEstimateSource, Sample, TrialWindows, Unavailable, attribute,
)
from energytui.engine.telemetry.external import ExternalMeterSource
from energytui.engine.telemetry.steady import Request

from fakes.power_supply import BatteryDriver, FakePowerSupply

S, MS = 1_000_000_000, 1_000_000
# idle 0.5 s, prefill 0.1 s, decode 0.2 s, idle after 0.25 s: a small model's trial
SHORT_TRIAL = TrialWindows(500 * MS, 1000 * MS, 1100 * MS, 1300 * MS, 1550 * MS)


def every(step_s, device, source, watts, counter=False):
    return [Sample(round(i * step_s * S), device, source, watts, watts * i * step_s if counter else None)
            for i in range(round(3 / step_s) + 1)]


def columns(samples, periods, windows=SHORT_TRIAL, expected=()):
    energy = attribute(samples, windows, gen_tokens=20, update_period_s=periods, expected_devices=expected)
    return energy_columns(energy, samples)


def test_a_one_hertz_wall_meter_on_a_short_trial_claims_no_source_and_says_why():
    """The issue's case: a 42 W meter read once a second, a 0.3 s trial, the CPU estimate beside it."""
    row = columns(every(1.0, "wall", INTEGRATED, 42.0) + every(0.01, "cpu", ESTIMATED, 8.0),
                  {"wall": 1.0, "cpu": 0.01})
    whole_trial = ("energy_j", "energy_net_j", "prefill_energy_j", "decode_energy_j", "j_per_token", "avg_power_w",
                   "peak_power_w", "idle_power_w", "edp_js")
    assert all(row[name] is None for name in whole_trial)
    assert row["energy_tag"] is None
    assert row["energy_cpu_j"] == pytest.approx(8.0 * 0.3)  # the estimate made this figure, and is named for it
    assert row["energy_source"] == "cpu:estimated"
    assert "wall trial: window lasts 300 ms, shorter than the update period 1e+03 ms" in row["energy_notes"]


def test_nothing_stored_means_no_source_at_all():
    row = columns(every(1.0, "wall", INTEGRATED, 42.0), {"wall": 1.0})
    assert row["energy_tag"] is None and row["energy_source"] is None and row["energy_notes"]


def test_a_wall_meter_slow_for_the_trial_but_not_for_idle_is_named_for_the_idle_power():
    long_idle = TrialWindows(0, 1200 * MS, 1300 * MS, 1500 * MS, 1750 * MS)  # idle 1.2 s, trial 0.3 s
    row = columns(every(0.5, "wall", INTEGRATED, 42.0), {"wall": 1.0}, long_idle)
    assert row["energy_j"] is None and row["idle_power_w"] == pytest.approx(42.0)
    assert row["energy_tag"] == INTEGRATED and row["energy_source"] == "wall:integrated"


def test_measured_figures_name_the_devices_they_come_from_and_no_other():
    samples = (every(0.1, "wall", INTEGRATED, 90.0) + every(0.001, "cpu-pkg0", COUNTER, 30.0, counter=True)
               + every(0.001, "dram0", COUNTER, 3.0, counter=True))
    row = columns(samples, {"wall": 0.1, "cpu-pkg0": 0.001, "dram0": 0.001})
    assert row["energy_j"] == pytest.approx(90.0 * 0.3) and row["energy_tag"] == INTEGRATED
    # the wall meter is the total, the package counter makes energy_cpu_j; dram is in no stored figure
    assert row["energy_source"] == "cpu-pkg0:counter;wall:integrated"


def run_trial(meter: Meter, seconds: float = 0.3) -> dict:
    """One trial of `seconds` between the meter's idle windows, as the queue runs it (no model)."""
    t_idle = meter.idle_before()
    start = time.monotonic_ns()
    time.sleep(seconds)
    end = time.monotonic_ns()
    measured = SimpleNamespace(t_start_ns=start, t_first_ns=start + (end - start) // 3, t_end_ns=end, gen_tokens=10)
    return meter.finish(t_idle, measured)[1]


def test_a_battery_plugged_in_mid_run_stops_with_a_note_and_no_trial_claims_it_after(tmp_path):
    fake = FakePowerSupply(tmp_path)
    fake.add_battery("BAT0", "Discharging", watts=16.0, current_voltage=True)
    plugged = threading.Event()
    driver = BatteryDriver(fake, watts_at=lambda t: 45.0 if plugged.is_set() else 16.0,
                           status_at=lambda t: "Charging" if plugged.is_set() else "Discharging").start()
    # the period shortened so that these sub-second windows resolve; the estimate is the CPU part
    battery = BatterySource.probe(tmp_path, update_period_s=0.05)
    estimate = CpuEstimateSource.probe(cpu_tdp_w=10.0)
    assert not isinstance(battery, Unavailable) and not isinstance(estimate, Unavailable)
    meter = Meter([estimate, battery], [], MeterOptions(idle_s=0.3, idle_after_s=0.3))
    meter.start()
    try:
        on_battery = run_trial(meter)
        plugged.set()
        deadline = time.monotonic() + 10
        while battery.stop_note(0, time.monotonic_ns()) is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until the battery's next read sees the charger
        on_mains = run_trial(meter)
    finally:
        meter.close()
        driver.stop()
    assert on_battery["energy_tag"] == INTEGRATED and on_battery["avg_power_w"] == pytest.approx(16.0, rel=0.01)
    assert on_battery["energy_source"] == "battery:integrated;cpu:estimated"
    assert "readings stopped" not in (on_battery["energy_notes"] or "")
    # never the charging rate, never the CPU estimate passing for the whole machine
    assert on_mains["energy_j"] is None and on_mains["avg_power_w"] is None and on_mains["idle_power_w"] is None
    assert on_mains["energy_tag"] is None and on_mains["energy_source"] == "cpu:estimated"
    assert on_mains["energy_cpu_j"] > 0
    assert on_mains["energy_notes"].startswith(
        "battery: readings stopped: on mains power (BAT0 Charging); no battery figures from then on")


def test_a_battery_plugged_in_during_a_steady_window_gives_the_window_no_power(tmp_path):
    """A slow source's mean over part of a window is not the window's power: the window gets none, and says why,
    instead of the CPU estimate passing for the whole machine."""
    fake = FakePowerSupply(tmp_path)
    fake.add_battery("BAT0", "Discharging", watts=16.0)
    plugged = threading.Event()
    driver = BatteryDriver(fake, watts_at=lambda t: 16.0,
                           status_at=lambda t: "Charging" if plugged.is_set() else "Discharging").start()
    battery = BatterySource.probe(tmp_path, update_period_s=0.05)
    estimate = CpuEstimateSource.probe(cpu_tdp_w=10.0)
    assert not isinstance(battery, Unavailable) and not isinstance(estimate, Unavailable)
    meter = Meter([estimate, battery], [], MeterOptions())
    meter.start()

    def window(plug: bool):
        start = meter.idle_before(seconds=0.6)
        idle_span = (start, meter.idle_end)
        begin = time.monotonic_ns()
        time.sleep(0.3)
        if plug:
            plugged.set()
        time.sleep(0.6)
        requests = [Request(begin, time.monotonic_ns(), 20, None)]
        return meter.steady(meter.take_after(requests[-1].t_end), idle_span, requests)

    try:
        on_battery = window(plug=False)
        plugged_in = window(plug=True)
    finally:
        meter.close()
        driver.stop()
    assert on_battery.total_devices == ("battery",) and on_battery.busy_power_w == pytest.approx(16.0)
    assert plugged_in.total_devices == ("battery",) and plugged_in.busy_power_w is None
    assert plugged_in.columns()["energy_tag"] is None
    assert plugged_in.notes[0].startswith("battery: readings stopped: on mains power (BAT0 Charging)")


def test_trials_longer_than_a_slow_meters_period_get_its_energy_one_after_another():
    """A wall meter read every 0.5 s (a `python -c` stand-in), trials of 0.8 s with idle windows shorter than that:
    each trial is covered by the reading before it (handed to the trial before) and one after it, which the meter
    waits for, so each gets the meter's 42.5 W, not "no sample at or before/after" the window."""
    wall = ExternalMeterSource(f"{sys.executable} -c print(42.5)", interval_s=0.5)
    estimate = CpuEstimateSource.probe(cpu_tdp_w=10.0)
    assert not isinstance(estimate, Unavailable)
    meter = Meter([estimate, wall], [], MeterOptions(idle_s=0.1, idle_after_s=0.1))
    meter.start()
    try:
        rows = [run_trial(meter, seconds=0.8) for _ in range(3)]
    finally:
        meter.close()
    for row in rows:
        assert row["energy_tag"] == INTEGRATED and row["energy_source"] == "cpu:estimated;wall:integrated"
        assert row["avg_power_w"] == pytest.approx(42.5) and row["energy_j"] == pytest.approx(42.5 * 0.8, rel=0.05)
        assert "no sample" not in (row["energy_notes"] or "")
