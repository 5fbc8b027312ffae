"""The battery source against fake power_supply trees (tests/fakes/power_supply.py): this machine has none."""

import time

import pytest

from energytui.engine.telemetry import (
    INTEGRATED, BatterySource, Sampler, TrialWindows, Unavailable, attribute, discover, is_slow, update_periods,
)
from energytui.engine.telemetry.battery import BATTERY_UPDATE_PERIOD_S

from fakes.nvml_replay import NvmlReplay
from fakes.power_supply import BatteryDriver, FakePowerSupply


def opened(root, **kwargs) -> BatterySource:
    source = BatterySource.probe(root, **kwargs)
    assert not isinstance(source, Unavailable), source
    return source


def test_a_discharging_battery_is_whole_machine_power_from_power_now(tmp_path):
    FakePowerSupply(tmp_path).add_battery("BAT0", "Discharging", watts=14.25)
    source = opened(tmp_path)
    (sample,) = source.read(123)
    assert (sample.t_ns, sample.device, sample.source, sample.energy_j) == (123, "battery", INTEGRATED, None)
    assert sample.power_w == pytest.approx(14.25)
    assert source.devices == ("battery",) and source.source == INTEGRATED
    assert "BAT0 power_now" in source.method and "whole machine" in source.method
    assert source.state == "BAT0 Discharging at 14.2 W"


def test_its_update_period_is_a_few_seconds_so_it_is_slow():
    assert BATTERY_UPDATE_PERIOD_S == 5.0 and is_slow(BATTERY_UPDATE_PERIOD_S)


@pytest.mark.parametrize("negative", [False, True])
def test_without_power_now_it_is_current_times_voltage(tmp_path, negative):
    FakePowerSupply(tmp_path).add_battery("BAT1", "Discharging", watts=9.0, current_voltage=True, negative=negative)
    source = opened(tmp_path)
    assert source.read(0)[0].power_w == pytest.approx(9.0, rel=1e-5)  # µA rounding
    assert "BAT1 current_now × voltage_now" in source.method
    assert source.update_period_s == BATTERY_UPDATE_PERIOD_S and source.poll_interval_s > 0.01  # own thread


@pytest.mark.parametrize("status", ["Charging", "Full", "Not charging"])
def test_on_mains_power_it_is_refused_with_the_reason_and_the_fix(tmp_path, status):
    FakePowerSupply(tmp_path).add_battery("BAT0", status, watts=20.0)
    refused = BatterySource.probe(tmp_path)
    assert isinstance(refused, Unavailable) and refused.name == "battery"
    assert refused.reason == f"on mains power (BAT0 {status})"
    assert refused.remedy.startswith("unplug the charger before the run")
    assert "only while it discharges" in refused.remedy


def test_no_battery_and_a_battery_without_a_rate_are_refused(tmp_path):
    none = BatterySource.probe(tmp_path / "absent")
    assert isinstance(none, Unavailable) and "no battery under" in none.reason and not none.remedy
    FakePowerSupply(tmp_path / "silent").add_battery("BAT0", "Discharging", watts=None)
    silent = BatterySource.probe(tmp_path / "silent")
    assert isinstance(silent, Unavailable) and "BAT0 reports no discharge rate" in silent.reason
    assert "--power-command" in silent.remedy
    FakePowerSupply(tmp_path / "zero").add_battery("BAT0", "Discharging", watts=0.0)
    zero = BatterySource.probe(tmp_path / "zero")
    assert isinstance(zero, Unavailable) and "0 W while discharging" in zero.reason


def test_two_batteries_sum_and_an_idle_one_adds_nothing(tmp_path):
    fake = FakePowerSupply(tmp_path)
    fake.add_battery("BAT0", "Discharging", watts=6.0)
    fake.add_battery("BAT1", "Unknown", watts=3.0)  # an idle second battery while the first one discharges
    source = opened(tmp_path)
    assert source.read(0)[0].power_w == pytest.approx(6.0)
    fake.set("BAT1", "Discharging")
    assert source.read(1)[0].power_w == pytest.approx(9.0)


def test_a_switch_to_mains_power_stops_the_readings_for_good_and_says_so(tmp_path):
    """The fake's driver thread discharges at 15 W and is plugged in at 0.3 s (charging at 40 W)."""
    fake = FakePowerSupply(tmp_path)
    fake.add_battery("BAT0", "Discharging", watts=15.0)
    source = opened(tmp_path)
    driver = BatteryDriver(fake, watts_at=lambda t: 15.0 if t < 0.3 else 40.0,
                           status_at=lambda t: "Discharging" if t < 0.3 else "Charging").start()
    started = time.monotonic_ns()
    sampler = Sampler([source], rate_hz=100)
    with sampler:
        time.sleep(0.9)
    driver.stop()
    samples = sampler.take_samples()
    assert samples and all(s.power_w == pytest.approx(15.0) for s in samples)  # never the charging rate
    assert source.stop_note(started, max(s.t_ns for s in samples)) is None  # it stopped after its last sample
    fake.set("BAT0", "Discharging", 15.0)
    assert source.read(time.monotonic_ns()) == []  # and does not resume when unplugged again
    note = source.stop_note(started, time.monotonic_ns())
    assert note.startswith("battery: readings stopped: on mains power (BAT0 Charging); no battery figures from then")
    assert "unplug the charger" in note and source.stop_note(time.monotonic_ns(), time.monotonic_ns()) == note
    assert source.state.startswith("stopped: on mains power")


def test_sampled_discharge_integrates_to_known_energy(tmp_path):
    """A fake fuel gauge at 12 W then 18 W, read by the real sampler; the period is shortened so that these
    sub-second windows can be resolved at all."""
    fake = FakePowerSupply(tmp_path)
    fake.add_battery("BAT0", "Discharging", watts=12.0, current_voltage=True)
    source = opened(tmp_path, update_period_s=0.05)
    driver = BatteryDriver(fake, watts_at=lambda t: 12.0 if t < 0.6 else 18.0, period_s=0.01).start()
    sampler = Sampler([source], rate_hz=100)
    t0 = time.monotonic_ns()
    with sampler:
        time.sleep(1.4)
    driver.stop()
    ms = 1_000_000
    windows = TrialWindows(t0 + 100 * ms, t0 + 500 * ms, t0 + 700 * ms, t0 + 1100 * ms, t0 + 1200 * ms)
    result = attribute(sampler.take_samples(), windows, gen_tokens=4, update_period_s=update_periods([source]))
    battery = result.devices["battery"]
    assert result.total_devices == ("battery",) and result.source == INTEGRATED
    assert battery.idle_power_w == pytest.approx(12.0, rel=0.02)
    # 12 W to 0.6 s, 18 W after: reads 0.25 s apart ramp the 6 W step over at most 0.25 s (0.75 J at worst)
    assert battery.gross_j == pytest.approx(12.0 * 0.1 + 18.0 * 0.5, abs=1.0)


def test_discover_adds_a_discharging_battery_and_says_why_one_on_mains_is_not(tmp_path):
    FakePowerSupply(tmp_path / "on-battery").add_battery("BAT0", "Discharging", watts=11.0)
    sources, _ = discover(powercap_root=tmp_path / "no-powercap", nvml=NvmlReplay(driver_loaded=False),
                          power_supply_root=tmp_path / "on-battery")
    assert [s.name for s in sources] == ["cpu-estimate", "battery"]
    FakePowerSupply(tmp_path / "on-mains").add_battery("BAT0", "Full", watts=0.0)
    sources, unavailable = discover(powercap_root=tmp_path / "no-powercap", use_nvml=False,
                                    power_supply_root=tmp_path / "on-mains")
    assert [s.name for s in sources] == ["cpu-estimate"]
    (battery,) = [u for u in unavailable if u.name == "battery"]
    assert battery.reason == "on mains power (BAT0 Full)" and "unplug" in battery.remedy


def test_a_value_that_is_not_a_number_names_the_file(tmp_path):
    FakePowerSupply(tmp_path).add_battery("BAT0", "Discharging", watts=10.0)
    (tmp_path / "BAT0" / "power_now").write_text("n/a\n")
    refused = BatterySource.probe(tmp_path)
    assert isinstance(refused, Unavailable)
    assert refused.reason == f"cannot read the batteries under {tmp_path}: {tmp_path}/BAT0/power_now holds 'n/a', " \
                             "not a whole number"
