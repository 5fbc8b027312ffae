"""Steady-state windows: a configuration's energy from a power source slower than its trials.

The rules on samples with known answers, then end to end through `energytui run` with fake slow meters
(tests/fakes/slow_meter.py, stand-ins for a smart plug): one constant, one whose watts follow the CPU's
busy time and keeps the exact truth to compare with.
"""

import csv
import io
import os
import random
import sqlite3
import time

import pytest

from helpers import run_cli

from energytui.engine.telemetry.base import Sample
from energytui.engine.telemetry.steady import Request, steady_energy, window_length
from fakes.slow_meter import BusyFollowingMeter, constant_meter

S = 1_000_000_000


def _readings(watts_at, start_s: float, end_s: float, period_s: float = 1.0, device: str = "wall",
              phase_s: float = 0.37) -> list[Sample]:
    """A reading every period (offset from whole seconds), its value from watts_at(t in seconds)."""
    out, t = [], start_s + phase_s
    while t <= end_s:
        out.append(Sample(int(t * S), device, "integrated", watts_at(t), None))
        t += period_s
    return out


def _requests(start_s: float, count: int, seconds: float, gap_s: float = 0.01, tokens: int = 16) -> list[Request]:
    out, t = [], start_s
    for index in range(count):
        out.append(Request(int(t * S), int((t + seconds) * S), tokens, index))
        t += seconds + gap_s
    return out


def test_constant_meter_gives_its_watts_times_the_requests_time_and_zero_net():
    samples = _readings(lambda t: 42.0, 0, 12)
    requests = _requests(5.0, 12, 0.45)
    energy = steady_energy(samples, (0, 5 * S), requests, update_period_s={"wall": 1.0})
    assert energy.busy_power_w == 42.0 and energy.idle_power_w == 42.0
    assert energy.energy_j == pytest.approx(42.0 * sum(r.seconds for r in requests))
    assert energy.net_j == pytest.approx(0.0) and energy.net_uncertainty_w == pytest.approx(0.0)
    assert energy.request_energy(requests[0]) == pytest.approx((42.0 * 0.45, 0.0))
    assert energy.columns()["j_per_token"] == pytest.approx(42.0 * 0.45 / 16)


def test_a_meter_that_shows_each_period_late_is_read_only_where_settled():
    """A display showing the mean of the period before last: the first readings of a window still show the
    window before it; only readings two periods in are the window's own."""
    def shown(t: float) -> float:
        seen = t - 1.9  # what it shows describes up to here
        return 10.0 if seen < 5.0 else 30.0
    samples = _readings(shown, 0, 11)
    energy = steady_energy(samples, (0, 5 * S), _requests(5.0, 10, 0.6, gap_s=0.0),
                           update_period_s={"wall": 1.0})
    assert energy.busy_power_w == pytest.approx(30.0) and energy.idle_power_w == pytest.approx(10.0)
    # the one-period term of the 20 W step over a 6 s window
    assert energy.busy_uncertainty_w == pytest.approx(20.0 / 6.0, rel=0.01)


def test_noisy_readings_give_an_uncertainty_that_covers_the_truth():
    rng = random.Random(7)
    covered = 0
    for _ in range(200):
        samples = _readings(lambda t: 40.0 + rng.gauss(0, 2.0) if t >= 5 else 20.0 + rng.gauss(0, 2.0), 0, 15)
        energy = steady_energy(samples, (0, 5 * S), _requests(5.0, 20, 0.5, gap_s=0.0),
                               update_period_s={"wall": 1.0})
        covered += abs(energy.busy_power_w - 40.0) <= energy.busy_uncertainty_w
    assert covered >= 180  # about 95 % by construction


def test_a_window_too_short_for_the_meter_says_so_instead_of_a_number():
    samples = _readings(lambda t: 42.0, 0, 3)
    energy = steady_energy(samples, (0, 1 * S), _requests(1.0, 2, 0.5), update_period_s={"wall": 1.0})
    assert energy.busy_power_w is None and energy.energy_j is None
    assert energy.columns()["energy_tag"] is None
    assert any("reading(s) settled inside" in note and "at least 5 periods" in note for note in energy.notes)


def test_fast_counters_are_integrated_over_the_window():
    """A counter read every millisecond (RAPL-like): its energy over each window, no settling needed."""
    def joules(t: float) -> float:
        return 8.0 * t if t < 1.0 else 8.0 + 20.0 * (t - 1.0)
    samples = [Sample(int(k * S / 1000), "cpu-pkg0", "counter", None, joules(k / 1000)) for k in range(2001)]
    energy = steady_energy(samples, (0, 1 * S), _requests(1.0, 4, 0.2, gap_s=0.0),
                           update_period_s={"cpu-pkg0": 0.001})
    assert energy.busy_power_w == pytest.approx(20.0) and energy.idle_power_w == pytest.approx(8.0)


def test_a_wall_meter_is_the_total_and_the_devices_inside_it_are_not_added():
    samples = _readings(lambda t: 42.0, 0, 12) + _readings(lambda t: 7.0, 0, 12, 0.01, "cpu", 0.0)
    energy = steady_energy(samples, (0, 5 * S), _requests(5.0, 12, 0.45),
                           update_period_s={"wall": 1.0, "cpu": 0.01})
    assert energy.total_devices == ("wall",) and energy.busy_power_w == 42.0
    assert energy.devices["cpu"].busy.power_w == pytest.approx(7.0)


def test_the_window_length_covers_five_periods_of_the_slowest_source():
    assert window_length([0.001, 1.0]) == 5.0
    assert window_length([0.001]) == 1.0  # at least a second, however fast the sources
    assert window_length([1.0], min_window_s=8.0) == 8.0


# --- end to end: `energytui run` with fake slow meters ---

MANIFEST = """defaults:
  model: {model}
  n_ctx: 256
  repetitions: 2
runs:
  - id: steady
    prompt_tokens: 32
    threads: [1, 2]
    max_tokens: 12
    ignore_eos: true
"""


@pytest.fixture
def manifest(write_manifest, model_path, monkeypatch, tmp_path):
    empty = tmp_path / "no-powercap"  # no RAPL, on any host
    empty.mkdir()
    monkeypatch.setenv("ENERGYTUI_POWERCAP_ROOT", str(empty))
    return write_manifest(MANIFEST.format(model=model_path))


def _rows(db, query):
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(query)]


def test_a_constant_1hz_meter_gives_each_configuration_its_energy_over_a_steady_window(manifest, tmp_path, capsys):
    db = tmp_path / "s.db"
    code, out, err = run_cli(capsys, "run", manifest, "--db", db, "--power-command",
                             constant_meter(tmp_path / "watts", 42.0))
    assert code == 0, err
    windows = _rows(db, "SELECT * FROM steady_windows")
    assert len(windows) == 2  # one per configuration (threads 1 and 2), auto-chosen for a 1 s meter
    for window in windows:
        assert window["window_s"] >= 5.0 and window["requests"] >= 2
        assert window["energy_j"] == pytest.approx(42.0 * window["busy_s"], rel=0.02)
        assert abs(window["energy_net_j"]) <= window["net_uncertainty_j"] + 1e-9
        assert window["energy_tag"] == "integrated"
    trials = _rows(db, "SELECT * FROM trials")
    assert all(t["window_id"] in {w["id"] for w in windows} for t in trials)
    assert all("steady-state window" in t["energy_notes"] for t in trials)
    assert err.count("steady window of ") == 2 and "42.0 ± 0.0 W busy" in err
    assert "(steady window ±" in out  # the summary's energy figures say where they come from

    code, report, _ = run_cli(capsys, "report", "--db", db)
    assert "(steady window ±" in report and "energy marked (steady window)" in report
    code, exported, _ = run_cli(capsys, "export", "--db", db)
    records = list(csv.DictReader(io.StringIO(exported)))
    assert all(float(r["window_busy_power_w"]) == 42.0 and r["window_tag"] == "integrated" for r in records)
    samples = _rows(db, "SELECT COUNT(*) AS n FROM samples WHERE window_id IS NOT NULL")[0]["n"]
    assert samples > 0  # the windows' raw samples are kept with them


def test_a_meter_following_cpu_time_gives_each_configuration_its_true_joules_per_token(manifest, tmp_path, capsys):
    db = tmp_path / "f.db"
    # the watts follow this process's CPU time (the run is in-process): other work on the machine cannot move them
    with BusyFollowingMeter(tmp_path / "watts", static_w=30.0, per_cpu_w=15.0, cpu_seconds=time.process_time) as meter:
        code, _, err = run_cli(capsys, "run", manifest, "--db", db, "--power-command", f"cat {tmp_path / 'watts'}")
    assert code == 0, err
    trials = _rows(db, "SELECT t.*, w.busy_power_w, w.busy_uncertainty_w FROM trials t "
                       "JOIN steady_windows w ON w.id = t.window_id")
    for threads in (1, 2):
        mine = [t for t in trials if t["threads"] == threads]
        tokens = sum(t["gen_tokens"] for t in mine)
        stored = sum(t["busy_power_w"] * t["e2e_ms"] / 1e3 for t in mine) / tokens
        stated = sum(t["busy_uncertainty_w"] * t["e2e_ms"] / 1e3 for t in mine) / tokens  # its ± (about 95 %)
        truth = sum(meter.energy(t["t_start_ns"], t["t_end_ns"]) for t in mine) / tokens
        # 5 %, or the window's own ± where its readings varied more (CPU steal on a shared host), itself under a
        # fifth: here 0.1-0.5 % apart on a quiet machine (stated ± 6-10 %), once 5.5 % apart under heavy steal
        assert stated < 0.2 * stored, f"threads={threads}: ±{stated:.3g} J/token is no measurement"
        assert abs(stored - truth) <= max(0.05 * truth, stated), f"threads={threads}: {stored:.4g} ± {stated:.2g}"


def test_window_trial_keeps_the_per_trial_path_and_steady_works_with_fast_sources(manifest, tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", manifest, "--db", tmp_path / "t.db", "--idle-s", "0.2", "--window",
                           "trial", "--power-command", constant_meter(tmp_path / "watts", 42.0))
    assert code == 0, err
    assert _rows(tmp_path / "t.db", "SELECT COUNT(*) AS n FROM steady_windows")[0]["n"] == 0
    # the 100 Hz CPU estimate alone, asked for steady windows of 1.5 s: each trial keeps its own figures
    code, _, err = run_cli(capsys, "run", manifest, "--db", tmp_path / "e.db", "--window", "steady",
                           "--min-window", "1.5s")
    assert code == 0, err
    windows = _rows(tmp_path / "e.db", "SELECT * FROM steady_windows")
    assert len(windows) == 2 and all(w["energy_tag"] == "estimated" and w["window_s"] >= 1.5 for w in windows)
    assert all(t["energy_j"] is not None for t in _rows(tmp_path / "e.db", "SELECT * FROM trials"))


@pytest.mark.parametrize("args, message", [
    (("--min-window", "soon"), "--min-window 'soon': give a duration like 5s, 500ms or 5"),
    (("--min-window", "0"), "--min-window 0s: give a length between 0.1 s and 1 h"),
])
def test_bad_window_options_are_one_line_errors(manifest, tmp_path, capsys, args, message):
    code, _, err = run_cli(capsys, "run", manifest, "--db", tmp_path / "b.db", *args)
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.db").exists()


def test_a_manifest_window_must_be_a_known_mode(write_manifest, model_path, tmp_path, capsys):
    bad = write_manifest(MANIFEST.format(model=model_path) + "    window: sometimes\n")
    code, _, err = run_cli(capsys, "run", bad, "--db", tmp_path / "m.db")
    assert code == 2 and "key 'window': unknown value 'sometimes'; use one of auto, trial, steady" in err


def test_sigterm_in_the_middle_of_a_window_keeps_what_it_measured(write_manifest, model_path, tmp_path):
    """The trials that finished keep their timings, and the window closes with what ran before the signal."""
    import signal
    import subprocess
    import sys

    from helpers import default_signals

    manifest = write_manifest(f"defaults:\n  model: {model_path}\n  threads: 1\n  n_ctx: 512\nruns:\n"
                              "  - id: long\n    prompt_tokens: 32\n    max_tokens: 120\n    ignore_eos: true\n"
                              "    repetitions: 4\n    window: steady\n")
    db, no_powercap = tmp_path / "i.db", tmp_path / "no-powercap"  # no RAPL, on any host
    no_powercap.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "energytui", "run", str(manifest), "--db", str(db),
                             "--min-window", "1s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals, env={**os.environ, "ENERGYTUI_POWERCAP_ROOT": str(no_powercap)})
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and [r["status"] for r in _rows_or_none(db)][:2] != ["done", "running"]:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "Traceback" not in err, err
    trials = _rows(db, "SELECT * FROM trials ORDER BY seq")
    assert [t["status"] for t in trials] == ["done", "aborted", "pending", "pending"]
    window = _rows(db, "SELECT * FROM steady_windows")[0]
    assert window["requests"] == 1 and trials[0]["window_id"] == window["id"]
    assert window["energy_tag"] == "estimated" and window["energy_j"] > 0


def _rows_or_none(db) -> list[dict]:
    try:
        return _rows(db, "SELECT status FROM trials ORDER BY seq")
    except sqlite3.Error:
        return []


def test_auto_cooldown_compares_the_machines_total_with_its_idle_power():
    """With a wall meter and the CPU estimate, idle power is the wall's alone: so is the power it is compared
    with (summing the CPU in would never look idle and wait the whole bound)."""
    from types import SimpleNamespace

    from energytui.engine.metering import Meter, MeterOptions

    sources = [SimpleNamespace(devices=("wall",), update_period_s=1.0),
               SimpleNamespace(devices=("cpu",), update_period_s=0.01)]
    meter = Meter(sources, [], MeterOptions())
    meter._last_idle_w = 42.0
    meter._pending = [Sample(S, "wall", "integrated", 42.0, None), Sample(S, "cpu", "estimated", 9.0, None)]
    assert meter._near_idle()
    meter._pending.append(Sample(S, "wall", "integrated", 60.0, None))
    assert not meter._near_idle()
