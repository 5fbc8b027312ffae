"""A model file changed while a run has it loaded: llama.cpp maps the file into memory, and reading a part cut
off in place killed the process with SIGBUS (exit 135). The engine checks the file before each trial that
reuses the loaded model, and that trial fails with one line instead."""

import os
import signal
import sqlite3
import time

from conftest import copy_model
from helpers import start_run


def _trials(db) -> list[tuple]:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT status, error FROM trials ORDER BY seq").fetchall()
    except sqlite3.Error:
        return []


def _run_and_cut(manifest, db, model, when: list[str], size: int, wait_s: float = 0.0) -> tuple[int, str]:
    """`energytui run` in a child; once its trials' statuses read `when` (and `wait_s` later), the model file is cut
    to `size` bytes in place. The child's exit status and stderr."""
    proc = start_run(manifest, db, "--idle-s", "0.1")
    try:
        deadline = time.monotonic() + 120
        while [s for s, _ in _trials(db)] != when:
            assert time.monotonic() < deadline and proc.poll() is None, _trials(db)
            time.sleep(0.05)
        time.sleep(wait_s)
        os.truncate(model, size)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, err


def test_a_model_cut_short_between_trials_fails_the_next_trial_in_one_line(write_manifest, model_path, tmp_path):
    model = copy_model(model_path, tmp_path / "cut.gguf")
    size = model.stat().st_size
    manifest = write_manifest(f"defaults:\n  model: {model}\n  threads: 1\n  n_ctx: 64\n  cooldown_s: 3\nruns:\n"
                              "  - id: cut\n    prompt_tokens: 8\n    max_tokens: 2\n    repetitions: 2\n")
    db = tmp_path / "cut.db"
    returncode, err = _run_and_cut(manifest, db, model, ["done", "pending"], size // 2)  # during the cooldown
    assert returncode not in (-signal.SIGBUS, 128 + signal.SIGBUS), err
    assert "Traceback" not in err
    assert _trials(db) == [("done", None), (
        "failed", f"{model}: the model file changed while this run had it loaded (its size went from {size} to "
                  f"{size // 2} bytes); restore it and run the manifest again (this model's trials fail until then)")]


def test_a_model_cut_short_mid_trial_ends_in_one_line_and_resume_finishes_the_run(write_manifest, model_path,
                                                                                  tmp_path):
    """Nothing in Python can run after such a read (engine/sigbus.py): the C handler names the file and exits with
    135, the trial finished before is kept, and once the file is back --resume runs the rest."""
    from energytui.engine import sigbus

    model = copy_model(model_path, tmp_path / "cut.gguf")
    manifest = write_manifest(f"defaults:\n  model: {model}\n  threads: 1\n  n_ctx: 512\n  ignore_eos: true\n"
                              "runs:\n  - id: cut\n    prompt_tokens: 8\n    max_tokens: [2, 400]\n")
    db = tmp_path / "cut.db"
    # 1 s on: past the file check, the idle window and prefill, inside 400 decode steps (seconds)
    returncode, err = _run_and_cut(manifest, db, model, ["done", "running"], 4096, wait_s=1.0)
    assert returncode == 128 + signal.SIGBUS, err
    assert err.splitlines()[-1:] == [sigbus.message([str(model)]).rstrip("\n")]
    assert "Traceback" not in err and "Fatal Python error" not in err
    assert _trials(db) == [("done", None), ("running", None)]

    copy_model(model_path, model)
    resumed = start_run(manifest, db, "--idle-s", "0.1", "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert _trials(db) == [("done", None), ("done", None)]
