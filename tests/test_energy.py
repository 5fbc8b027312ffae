"""Energy end to end: real trials of the default model with the sampler on the tokens' clock.

This VM has no RAPL, no GPU and no battery, so the real run is tagged `estimated`; a fake
powercap tree written by a thread (tests/fakes/powercap.py, a stand-in for /sys/class/powercap)
shows the counter path with known watts, and a fake battery (tests/fakes/power_supply.py, a
stand-in for /sys/class/power_supply) the battery's.
"""

import csv
import io
import json
import re
import sqlite3
import threading
import time

import pytest


from helpers import first_tries, reruns, run_cli

from fakes.power_supply import BatteryDriver, FakePowerSupply
from fakes.powercap import FakePowercap, PowercapDriver

MANIFEST = """defaults:
  model: {model}
  threads: 2
  n_ctx: 256
runs:
  - id: energy
    prompt_tokens: [16, 64]
    max_tokens: 24
    ignore_eos: true
"""



@pytest.fixture
def manifest(write_manifest, model_path):
    return write_manifest(MANIFEST.format(model=model_path))


@pytest.fixture
def no_rapl(monkeypatch, tmp_path):
    """Point RAPL and battery discovery at an empty folder, so the test means the same on any host."""
    empty = tmp_path / "no-powercap"
    empty.mkdir()
    monkeypatch.setenv("ENERGYTUI_POWERCAP_ROOT", str(empty))
    monkeypatch.setenv("ENERGYTUI_POWER_SUPPLY_ROOT", str(empty))


def _rows(db, query):
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(query)]


def test_estimated_energy_is_labelled_everywhere(manifest, tmp_path, capsys, no_rapl):
    db = tmp_path / "e.db"
    code, out, err = run_cli(capsys, "run", manifest, "--db", db, "--idle-s", "0.3")
    assert code == 0, err
    assert "every energy figure of this run is an ESTIMATE" in out
    assert "ESTIMATED" in out.split("----")[-1]  # the summary's energy cells carry the tag
    assert "J/tok ESTIMATED" in err  # and so does each progress line

    trials = _rows(db, "SELECT * FROM trials")
    assert len(trials) == 2 + len(reruns(db))  # with a re-run of any trial a loaded machine stalled
    for t in trials:
        assert t["energy_tag"] == "estimated" and t["energy_source"] == "cpu:estimated"
        assert t["energy_method"].startswith("cpu: estimated: ") and " W static (" in t["energy_method"]
        assert t["energy_j"] > 0 and t["j_per_token"] == pytest.approx(t["energy_j"] / 24)
        assert t["energy_j"] == pytest.approx(t["prefill_energy_j"] + t["decode_energy_j"], rel=1e-6)
        assert t["energy_cpu_j"] == pytest.approx(t["energy_j"]) and t["energy_gpu_j"] is None
        assert t["edp_js"] == pytest.approx(t["energy_j"] * t["e2e_ms"] / 1e3, rel=1e-6)
        # both vCPUs busy throughout: peak 10 W and an average of 10.000000000000002 W (float rounding) are equal
        assert t["peak_power_w"] >= t["avg_power_w"] * (1 - 1e-9) and t["avg_power_w"] > 0 and t["idle_power_w"] >= 0
        assert t["sample_hz"] >= 8  # the estimate's chart readings come 10 times a second, besides the edges
    samples = _rows(db, "SELECT trial_id, MIN(t_ns) AS first, MAX(t_ns) AS last, COUNT(*) AS n, "
                        "GROUP_CONCAT(DISTINCT source) AS sources FROM samples GROUP BY trial_id")
    for trial, sample in zip(trials, samples):
        assert sample["sources"] == "estimated"
        # raw samples cover idle-before, the trial and idle-after on the tokens' clock
        assert sample["first"] < trial["t_start_ns"] < trial["t_end_ns"] < sample["last"]
        # the estimate is read at the windows' edges: just before prefill, at the first token, after the last
        times = [row["t_ns"] for row in _rows(db, f"SELECT t_ns FROM samples WHERE trial_id = {trial['id']}")]
        assert any(0 <= trial["t_start_ns"] - t < 20e6 for t in times), "no reading at prefill's start"
        assert any(0 <= t - trial["t_first_ns"] < 20e6 for t in times), "no reading at the first token"
        assert any(0 <= t - trial["t_end_ns"] < 20e6 for t in times), "no reading at the last token"

    code, out, _ = run_cli(capsys, "export", "--db", db, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["energy_tag"] for r in rows} == {"estimated"} and all(float(r["j_per_token"]) > 0 for r in rows)
    code, out, _ = run_cli(capsys, "report", "--db", db)
    assert "ESTIMATED" in out and "## How energy was obtained" in out and "not a meter" in out


def test_rapl_counters_give_measured_energy_with_known_watts(manifest, tmp_path, capsys, monkeypatch):
    # Wraps every ~1.5 s per package: several times a run, yet never twice between two writes of the fake's
    # driver thread, even when llama.cpp's threads starve it for a few hundred ms on a 2-core machine.
    fake = FakePowercap.two_packages(tmp_path / "powercap", max_range_uj=30_000_000)
    zones = {"intel-rapl:0": 20.0, "intel-rapl:1": 10.0, "intel-rapl:0:1": 3.0, "intel-rapl:1:1": 2.0,
             "intel-rapl:2": 50.0}
    driver = PowercapDriver(fake, zones, start_uj={})
    monkeypatch.setenv("ENERGYTUI_POWERCAP_ROOT", str(tmp_path / "powercap"))
    driver.start()
    try:
        code, out, err = run_cli(capsys, "run", manifest, "--db", tmp_path / "r.db", "--idle-s", "0.2")
        doctor_code, doctor_out, _ = run_cli(capsys, "doctor")
    finally:
        driver.stop()
    assert code == 0, err
    assert "ESTIMATE" not in out and "measured (counter)" in out
    for t in _rows(tmp_path / "r.db", "SELECT * FROM trials"):
        assert t["energy_tag"] == "counter"
        assert t["energy_source"] == "cpu-pkg0:counter;cpu-pkg1:counter;dram0:counter;dram1:counter"
        # 20 + 10 + 3 + 2 W; psys (50 W) is never added to the packages
        assert t["avg_power_w"] == pytest.approx(35.0, rel=0.05)
        assert t["energy_cpu_j"] == pytest.approx(30.0 * t["e2e_ms"] / 1e3, rel=0.05)
        assert t["idle_power_w"] == pytest.approx(35.0, rel=0.05) and abs(t["energy_net_j"]) < 0.1 * t["energy_j"]
    assert doctor_code == 0 and "energy is measured" in doctor_out and "cpu-pkg0" in doctor_out


def test_doctor_exits_3_when_only_estimates_are_possible(capsys, no_rapl):
    code, out, _ = run_cli(capsys, "doctor", "--cpu-static-share", "0.2")
    assert code == 3 and "ESTIMATES" in out and "fix:" in out and "estimated" in out
    assert "W static (20% of" in out and "static share: user-given --cpu-static-share" in out
    assert "so idle power is" in out  # the assumption says what the static part means


def test_external_meter_is_total_power_and_short_windows_are_flagged_not_zero(manifest, tmp_path, capsys, no_rapl):
    import sys

    command = f"{sys.executable} -c print(42.5)"
    code, out, err = run_cli(capsys, "run", manifest, "--db", tmp_path / "w.db", "--idle-s", "0.2",
                             "--window", "trial", "--power-command", command)
    assert code == 0, err
    for t in _rows(tmp_path / "w.db", "SELECT * FROM trials"):
        # the meter is read once a second: a sub-second trial has no energy and claims no meter (the CPU estimate
        # is named for energy_cpu_j alone); on a machine so loaded that a trial took a second or more, it has both
        # (the meter waits, at most a period, for a reading past its end), else, where the command answered too
        # late for that, it says which end no reading covers
        if t["e2e_ms"] < 1000:
            assert t["energy_j"] is None and t["energy_tag"] is None and t["energy_source"] == "cpu:estimated"
            assert "wall trial: window lasts" in t["energy_notes"]
        elif t["energy_j"] is None:
            assert t["energy_tag"] is None and t["energy_source"] == "cpu:estimated"
            assert re.search(r"wall trial: no sample at or (before the window start|after the window end)",
                             t["energy_notes"])
        else:
            assert t["energy_tag"] == "integrated" and "wall:integrated" in t["energy_source"]
        # a sub-second prefill cannot be resolved and says so; on a machine so loaded that prefill took a second
        # or more, it is resolved (42.5 W over the prefill) where readings straddle it, else it says which end
        if t["ttft_ms"] < 1000:
            assert t["prefill_energy_j"] is None
            assert "wall prefill: window lasts" in t["energy_notes"] and "shorter than the update period" in t[
                "energy_notes"]
        elif t["prefill_energy_j"] is None:
            assert re.search(r"wall prefill: no sample at or (before the window start|after the window end)",
                             t["energy_notes"])
        else:
            assert t["prefill_energy_j"] == pytest.approx(42.5 * t["ttft_ms"] / 1e3, rel=0.05)


@pytest.mark.parametrize("args, message", [
    (("--sample-hz", "0"), "--sample-hz 0: choose a rate between 1 and 1000 Hz"),
    (("--idle-s", "0"), "--idle-s 0: give an idle window from 0.05 s to 1 h"),
    (("--cpu-tdp", "-5"), "--cpu-tdp -5: give the CPU's TDP in watts"),
    (("--cpu-static-share", "1.5"), "--cpu-static-share 1.5: give the share of TDP the CPU draws whatever the load"),
    (("--cpu-static-share", "120%"), "--cpu-static-share 1.2: give the share of TDP"),
    (("--cpu-static-share", "-0.1"), "--cpu-static-share -0.1: give the share of TDP"),
])
def test_bad_meter_options_are_one_line_errors(manifest, tmp_path, capsys, args, message):
    code, _, err = run_cli(capsys, "run", manifest, "--db", tmp_path / "b.db", *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_user_tdp_and_static_share_set_the_estimate(manifest, tmp_path, capsys, no_rapl):
    """--cpu-tdp 30 --cpu-static-share 40%: 12 W static on this 2-CPU machine, 9 W per busy thread, 30 W with both
    busy; the static power is the idle power, so net energy leaves it out."""
    code, out, err = run_cli(capsys, "run", manifest, "--db", tmp_path / "t.db", "--idle-s", "0.2", "--cpu-tdp", "30",
                             "--cpu-static-share", "40%")
    assert code == 0, err
    assert "12 W static (40% of 30 W TDP) + CPU utilisation × 9 W per busy thread (the other 60% / 2 threads); " \
           "TDP: user-given --cpu-tdp" in out and "static share: user-given --cpu-static-share" in out
    for t in _rows(tmp_path / "t.db", "SELECT * FROM trials"):
        assert 15 < t["avg_power_w"] <= 30.01  # both vCPUs busy decoding: about 30 W by this model
        assert 12 - 1e-6 <= t["idle_power_w"] <= 30.01  # the static 12 W, plus whatever else ran (a shared machine)
        e2e_s = t["e2e_ms"] / 1e3
        assert t["energy_net_j"] == pytest.approx(t["energy_j"] - t["idle_power_w"] * e2e_s)
        assert t["energy_net_j"] < t["energy_j"] - 12 * e2e_s * 0.99  # no longer equal to gross
    code, out, _ = run_cli(capsys, "export", "--db", tmp_path / "t.db", "--format", "json")
    record = json.loads(out)[0]
    assert record["idle_power_w"] >= 12 - 1e-6 and record["energy_net_j"] < record["energy_j"]
    assert "12 W static (40% of 30 W TDP)" in record["energy_method"]
    code, out, _ = run_cli(capsys, "report", "--db", tmp_path / "t.db")
    assert "12 W static (40% of 30 W TDP)" in out and "net energy leaves out the estimate's static" in out


def test_auto_cooldown_runs_between_trials(write_manifest, model_path, tmp_path, capsys, no_rapl):
    path = write_manifest(f"defaults:\n  model: {model_path}\n  threads: 2\n  n_ctx: 128\nruns:\n"
                          "  - id: cool\n    prompt_tokens: [8, 16]\n    max_tokens: 4\n    cooldown_s: auto\n")
    code, _, err = run_cli(capsys, "run", path, "--db", tmp_path / "c.db", "--idle-s", "0.1")
    assert code == 0, err
    assert first_tries(tmp_path / "c.db") == ["done", "done"]


@pytest.fixture
def battery(tmp_path, monkeypatch, no_rapl):
    """A fake laptop battery discharging at 17 W, rewritten by a thread; status_at decides its status."""
    fake = FakePowerSupply(tmp_path / "power_supply")
    fake.add_battery("BAT0", "Discharging", watts=17.0)
    monkeypatch.setenv("ENERGYTUI_POWER_SUPPLY_ROOT", str(tmp_path / "power_supply"))
    state = {"status": "Discharging"}
    driver = BatteryDriver(fake, watts_at=lambda t: 17.0 if state["status"] == "Discharging" else 45.0,
                           status_at=lambda t: state["status"]).start()
    yield state
    driver.stop()


def test_a_battery_too_slow_for_a_trial_is_named_by_no_output_for_it(manifest, tmp_path, capsys, battery):
    """Measured per trial (--window trial): its value is taken to change every 5 s, so a trial shorter than that
    gets no energy, and no output tags it as measured; the CPU estimate is named for the CPU's figure alone. A
    trial that a loaded machine stretched past 5 s gets the battery's energy, and every output says so."""
    db = tmp_path / "b.db"
    code, out, err = run_cli(capsys, "run", manifest, "--db", db, "--idle-s", "0.2", "--window", "trial")
    assert code == 0, err
    assert "energy: battery: integrated: battery discharge rate under" in out and "ESTIMATE" not in out
    trials = _rows(db, "SELECT * FROM trials")
    measured = [t for t in trials if t["e2e_ms"] >= 5000]
    assert len(trials) == 2 + len(reruns(db))  # with a re-run of any trial a loaded machine stalled
    for t in trials:
        assert "battery: integrated: battery discharge rate" in t["energy_method"] and t["energy_cpu_j"] > 0
        if t in measured:
            assert t["energy_tag"] == "integrated" and t["energy_source"] == "battery:integrated;cpu:estimated"
            assert t["avg_power_w"] == pytest.approx(17.0, rel=0.01)
            continue
        assert t["energy_j"] is None and t["j_per_token"] is None and t["avg_power_w"] is None
        assert t["energy_tag"] is None and t["energy_source"] == "cpu:estimated"
        assert "battery trial: window lasts" in t["energy_notes"]
        assert "shorter than the update period 5e+03 ms" in t["energy_notes"]
    samples = _rows(db, "SELECT DISTINCT device, source FROM samples ORDER BY device")
    assert samples == [{"device": "battery", "source": "integrated"}, {"device": "cpu", "source": "estimated"}]

    label = "measured (integrated power)"
    assert err.count(f"J/tok {label}") == len(measured) and err.count("J/tok") == len(measured)  # progress lines
    summary = out.split("energy: battery")[1]
    assert (label in summary) == bool(measured) and "ESTIMATED" not in summary
    code, out, _ = run_cli(capsys, "export", "--db", db, "--format", "csv")
    rows = {int(r["trial_id"]): r for r in csv.DictReader(io.StringIO(out))}
    for t in trials:
        assert rows[t["id"]]["energy_tag"] == ("integrated" if t in measured else "")
        assert rows[t["id"]]["energy_source"] == t["energy_source"]
    code, out, _ = run_cli(capsys, "report", "--db", db)
    table = out.split("## How energy was obtained")[0]
    assert code == 0 and (label in table) == bool(measured) and "ESTIMATED" not in table

    from energytui.tui.panes.live import trial_row
    from energytui.tui.trials import trial_cells

    for t in trials:  # the app's Results and Live tables
        tag = label if t in measured else "–"
        assert trial_cells(t, "quick")[-1] == tag and trial_row(t)[-1].endswith(tag)

    code, out, _ = run_cli(capsys, "doctor")
    assert code == 0 and "ok        battery: integrated" in out and "value updates every 5 s (slow)" in out
    assert "state: BAT0 Discharging at 17.0 W" in out and "steady-state windows" in out
    assert "value updates every 10 ms (fast enough for single trials)" in out  # the CPU estimate


def test_a_battery_plugged_in_during_a_run_stops_with_a_note(write_manifest, model_path, tmp_path, capsys,
                                                            battery):
    path = write_manifest(f"defaults:\n  model: {model_path}\n  threads: 2\n  n_ctx: 128\nruns:\n"
                          "  - id: plug\n    prompt_tokens: 16\n    max_tokens: 8\n    repetitions: 3\n")
    db = tmp_path / "p.db"

    def first_trial_done() -> bool:
        try:
            return db.exists() and bool(_rows(db, "SELECT id FROM trials WHERE status = 'done'"))
        except sqlite3.OperationalError:  # the run has not made its tables yet
            return False

    def plug_in_after_the_first_trial():
        while not first_trial_done():
            time.sleep(0.05)
        battery["status"] = "Charging"

    watcher = threading.Thread(target=plug_in_after_the_first_trial, daemon=True)
    watcher.start()
    code, _, err = run_cli(capsys, "run", path, "--db", db, "--idle-s", "0.3", "--window", "trial")
    watcher.join(timeout=5)
    assert code == 0, err
    first, *_, last = _rows(db, "SELECT * FROM trials ORDER BY seq")
    assert "readings stopped" not in (first["energy_notes"] or "")
    assert last["energy_notes"].startswith(
        "battery: readings stopped: on mains power (BAT0 Charging); no battery figures from then on")
    assert "battery" not in (last["energy_source"] or "") and last["energy_tag"] is None
    charging = _rows(db, "SELECT COUNT(*) AS n FROM samples WHERE device = 'battery' AND power_w > 20")
    assert charging == [{"n": 0}]  # never the charging rate


def test_a_battery_on_mains_power_is_refused_with_the_fix(capsys, battery):
    battery["status"] = "Not charging"  # a charge threshold reached, the charger still connected
    time.sleep(0.1)
    code, out, _ = run_cli(capsys, "doctor")
    assert code == 3 and "missing   battery: on mains power (BAT0 Not charging)" in out
    assert "fix: unplug the charger before the run and keep it unplugged until the run ends" in out


def test_by_default_a_battery_gives_each_configuration_its_energy_over_a_steady_window(write_manifest, model_path,
                                                                                      tmp_path, capsys, battery):
    """window auto: the battery is slow, so the configuration runs back to back over a steady window (11 s: its
    readings count from two 5 s periods after the window opens)."""
    path = write_manifest(f"defaults:\n  model: {model_path}\n  threads: 2\n  n_ctx: 128\nruns:\n"
                          "  - id: steady\n    prompt_tokens: 16\n    max_tokens: 8\n    repetitions: 2\n")
    db = tmp_path / "s.db"
    code, out, err = run_cli(capsys, "run", path, "--db", db, "--min-window", "11s")
    assert code == 0, err
    (window,) = _rows(db, "SELECT * FROM steady_windows")
    assert window["energy_tag"] == "integrated" and window["busy_power_w"] == pytest.approx(17.0)
    assert window["idle_power_w"] == pytest.approx(17.0) and window["window_s"] >= 11
    assert "battery" in window["devices"] and "cpu" in window["devices"]
    assert "measured (integrated power)" in out and "(steady window ±" in out
    code, exported, _ = run_cli(capsys, "export", "--db", db)
    assert {r["window_tag"] for r in csv.DictReader(io.StringIO(exported))} == {"integrated"}
