"""The CLI end to end: real trials into a real SQLite file, bad input, interruption and resume."""

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest


from helpers import first_tries, on_a_terminal, reruns, run_cli, start_run
from energytui.engine.report import EXPORT_FIELDS
from energytui.engine.store import Store

SMALL = """defaults:
  model: {model}
  threads: 2
  n_ctx: 256
runs:
  - id: quick
    prompt_tokens: [16, 32]
    max_tokens: 6
    ignore_eos: true
    repetitions: 2
  - id: chat
    suite: sd
    prompt_limit: 2
    max_tokens: 8
"""



@pytest.fixture
def small_manifest(write_manifest, model_path):
    return write_manifest(SMALL.format(model=model_path))


def test_run_export_and_report(small_manifest, tmp_path, capsys):
    db = tmp_path / "e.db"
    code, out, err = run_cli(capsys, "run", small_manifest, "--db", db)
    assert code == 0, err
    assert "run 1: 6 trials" in out and "decode tok/s" in out and "quick:" in out
    trials = 6 + len(reruns(db))  # a trial stalled by a loaded machine runs once more at the end of the run
    assert err.count("] trial ") == trials  # one progress line per trial when not on a terminal

    code, out, _ = run_cli(capsys, "export", "--db", db, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == trials and tuple(rows[0]) == EXPORT_FIELDS
    assert {r["status"] for r in rows} == {"done"}
    fixed = [r for r in rows if r["run_id"] == "quick"]
    assert {r["gen_tokens"] for r in fixed} == {"6"} and {r["prompt_tokens"] for r in fixed} == {"16", "32"}
    assert all(float(r["decode_tps"]) > 0 for r in rows)

    code, out, _ = run_cli(capsys, "export", "--db", db, "--format", "json")
    assert code == 0 and len(json.loads(out)) == trials

    code, out, _ = run_cli(capsys, "report", "--db", db)
    assert code == 0 and out.startswith("# energytui report") and out.count("| quick:") == 2

    with sqlite3.connect(db) as conn:
        steps = conn.execute("SELECT COUNT(*) FROM token_timings").fetchone()[0]
        assert steps == conn.execute("SELECT SUM(gen_tokens) FROM trials").fetchone()[0]  # quick's checked above
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM hosts").fetchone()[0] == 1


def test_prompt_too_long_fails_that_trial_and_the_run_goes_on(write_manifest, model_path, tmp_path, capsys):
    manifest = write_manifest(f"defaults:\n  model: {model_path}\n  n_ctx: 64\n  max_tokens: 4\n"
                              "runs:\n  - id: mixed\n    prompt_tokens: [100, 16]\n")
    code, out, err = run_cli(capsys, "run", manifest, "--db", tmp_path / "f.db")
    assert code == 0
    assert "FAILED: prompt of 100 tokens does not fit n_ctx=64" in err
    assert sorted(first_tries(tmp_path / "f.db")) == ["done", "failed"]


@pytest.mark.parametrize("make_db, message", [
    (lambda tmp: tmp / "no" / "such" / "x.db", "folder .* does not exist"),
    (lambda tmp: "/proc/energytui-test.db", "cannot"),
])
def test_bad_db_locations(small_manifest, tmp_path, capsys, make_db, message):
    code, _, err = run_cli(capsys, "run", small_manifest, "--db", make_db(tmp_path))
    assert code == 2 and err.startswith("energytui: error: --db") and err.count("\n") == 1
    assert "Traceback" not in err
    import re
    assert re.search(message, err)


def test_bad_manifest_is_one_line_exit_2(write_manifest, tmp_path, capsys):
    path = write_manifest("runs: [\n")
    code, out, err = run_cli(capsys, "run", path, "--db", tmp_path / "x.db")
    assert code == 2 and err.count("\n") == 1 and "manifest.yaml: line" in err
    assert not (tmp_path / "x.db").exists()  # validation happens before anything is written


def test_second_runner_on_the_same_db_is_refused(small_manifest, tmp_path, capsys):
    db = tmp_path / "busy.db"
    holder = Store(db)
    holder.acquire_runner_lock()
    try:
        code, _, err = run_cli(capsys, "run", small_manifest, "--db", db)
    finally:
        holder.close()
    assert code == 3 and "already running on this database" in err


def _wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _long_trials(write_manifest, model_path, repetitions: int):
    """Trials of 120 tokens on one thread: long enough to signal the run in the middle of one."""
    return write_manifest(f"defaults:\n  model: {model_path}\n  threads: 1\n  n_ctx: 512\nruns:\n"
                          "  - id: long\n    prompt_tokens: 32\n    max_tokens: 120\n    ignore_eos: true\n"
                          f"    repetitions: {repetitions}\n")


def _second_trial_running(db) -> None:
    assert _wait_for(lambda: first_tries(db)[:2] == ["done", "running"]), first_tries(db)


def test_ctrl_c_keeps_finished_trials_and_resume_finishes_the_rest(write_manifest, model_path, tmp_path, capsys):
    manifest = _long_trials(write_manifest, model_path, 5)
    db = tmp_path / "r.db"
    proc = start_run(manifest, db)
    try:
        _second_trial_running(db)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "finished trials are kept" in err
    assert first_tries(db) == ["done", "aborted", "pending", "pending", "pending"]

    code, _, err = run_cli(capsys, "run", manifest, "--db", db)
    assert code == 2 and f"1 of {5 + len(reruns(db))} trials done; add --resume" in err

    code, out, _ = run_cli(capsys, "run", manifest, "--db", db, "--resume")
    assert code == 0 and first_tries(db) == ["done"] * 5
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1


@pytest.mark.parametrize("signum, code, how", [(signal.SIGTERM, 143, "stopped by SIGTERM"),
                                               (signal.SIGHUP, 129, "stopped by SIGHUP (the terminal was closed)")])
def test_sigterm_and_sighup_end_a_run_like_ctrl_c(write_manifest, model_path, tmp_path, signum, code, how):
    manifest = _long_trials(write_manifest, model_path, 3)
    db = tmp_path / "t.db"
    proc = start_run(manifest, db)
    try:
        _second_trial_running(db)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code and "Traceback" not in err and f"{how}; finished trials are kept" in err
    assert first_tries(db) == ["done", "aborted", "pending"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, ended_by FROM runs").fetchall() == [("interrupted", how)]
        assert conn.execute("SELECT error FROM trials WHERE status = 'aborted'").fetchone() == (how,)


def test_a_rerun_after_ctrl_c_on_the_last_trial_offers_resume_and_resume_with_nothing_says_so(
        small_manifest, tmp_path, capsys):
    db = tmp_path / "last.db"
    assert run_cli(capsys, "run", small_manifest, "--db", db)[0] == 0
    with sqlite3.connect(db) as conn:  # as a Ctrl-C on the last trial leaves it
        conn.execute("UPDATE trials SET status = 'aborted' WHERE id = (SELECT MAX(id) FROM trials)")
        conn.execute("UPDATE runs SET status = 'interrupted'")
    code, _, err = run_cli(capsys, "run", small_manifest, "--db", db)
    assert code == 2 and "add --resume" in err
    assert run_cli(capsys, "run", small_manifest, "--db", db, "--resume")[0] == 0
    code, _, err = run_cli(capsys, "run", small_manifest, "--db", db, "--resume")
    assert code == 1 and "nothing to resume" in err and err.count("\n") == 1


def test_killed_process_leaves_running_trials_that_the_next_start_aborts(small_manifest, tmp_path, capsys):
    db = tmp_path / "k.db"
    store = Store(db)
    run = store.create_run("m.yaml", "sha", None, [{"run_id": "x", "config_id": "c"}])
    store.mark_running(store.next_pending(run)["id"])
    store.close()
    code, out, _ = run_cli(capsys, "run", small_manifest, "--db", db)
    assert code == 0 and "marked 1 trial(s) left running by a stopped process as aborted" in out


def test_gpu_trial_is_refused_on_a_cpu_only_build(write_manifest, model_path, tmp_path, capsys):
    path = write_manifest(f"runs:\n  - id: g\n    model: {model_path}\n    backend: gpu\n    prompt_tokens: 8\n")
    code, _, err = run_cli(capsys, "run", path, "--db", tmp_path / "g.db")
    assert code == 2 and "gpu needs GPU offload" in err and "--skip-gpu" in err


def test_models_list_shows_the_default_model(capsys, model_path):
    code, out, _ = run_cli(capsys, "models", "list")
    line = next(row for row in out.splitlines() if row.startswith("smollm2-135m-q4_1"))
    assert code == 0 and "Q4_1" in line and "yes" in line and "30" in line


def test_doctor_reports_the_llama_cpp_build(capsys):
    code, out, _ = run_cli(capsys, "doctor")
    assert "llama-cpp-python 0.3.36" in out and "GPU offload:" in out and "\nweights     " in out
    assert code in (0, 3)  # 3: this host has no readable power counter (tests/test_energy.py covers both)


def test_module_entry_point_has_no_traceback_for_missing_manifest(tmp_path):
    result = subprocess.run([sys.executable, "-m", "energytui", "run", str(tmp_path / "none.yaml"),
                             "--db", str(tmp_path / "n.db")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().endswith("manifest not found; check the path")


def test_on_a_terminal_an_unfinished_run_is_offered_for_resuming(write_manifest, model_path, tmp_path):
    """A real pseudo-terminal: answering Enter resumes the unfinished run instead of failing."""
    from energytui.engine import llama_backend
    from energytui.engine.manifest import load_manifest
    from energytui.engine.queue import queue_manifest

    manifest = write_manifest(f"defaults:\n  model: {model_path}\n  n_ctx: 128\nruns:\n"
                              "  - id: tty\n    prompt_tokens: [8, 12]\n    max_tokens: 2\n")
    db = tmp_path / "tty.db"
    store = Store(db)  # an earlier run of this manifest that never ran its trials
    queue_manifest(store, load_manifest(manifest, llama_backend.supports_gpu_offload()), resume=False)
    store.close()
    answered = []

    def answer_resume(_pid, fd, output):
        if not answered and b"Resume it?" in output:
            os.write(fd, b"\n")
            answered.append(True)

    code, shown = on_a_terminal(["run", manifest, "--db", db], react=answer_resume, timeout=120)
    assert answered and code == 0, shown
    assert first_tries(db) == ["done", "done"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1  # resumed, not a new run


def test_run_output_fits_an_80_column_terminal(small_manifest, tmp_path):
    """Every line `energytui run` prints, the per-trial progress and the summary folded into narrower
    tables, fits 80 columns; the summary says once where the energy figures come from."""
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "energytui", "run", str(small_manifest), "--db",
                           str(tmp_path / "w.db")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = (done.stdout + done.stderr).splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert "decode tok/s" in done.stdout and "J/token" in done.stdout
    assert "energy columns (J/token, avg W, J/request, EDP J·s, EDP J·s of means):" in done.stdout.replace("\n  ", " ")
    json_run = subprocess.run([sys.executable, "-m", "energytui", "run", str(small_manifest), "--db",
                               str(tmp_path / "j.db"), "--format", "json"], capture_output=True, text=True,
                              env=env, timeout=300)
    records = json.loads(json_run.stdout[json_run.stdout.index("["):])
    assert json_run.returncode == 0 and {r["group"] for r in records} == {"config"}
