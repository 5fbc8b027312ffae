"""How a run ends when its database fails under it: a full disk, a file deleted mid-run, a process killed
before it could close its run, and a manifest edited between a stop and `--resume`. Real SQLite files and the
real engine; SQLite's own max_page_count makes the disk "full"."""

import sqlite3

import pytest

from energytui.engine.errors import UserError
from energytui.engine.manifest import load_manifest
from energytui.engine.queue import queue_manifest, run_queue
from energytui.engine.store import STALE_RUN, Store
from helpers import run_cli

TINY = "defaults:\n  model: {model}\n  threads: 1\n  n_ctx: 64\nruns:\n  - id: a\n    prompt_tokens: 8\n" \
       "    max_tokens: 2\n    repetitions: {reps}\n"


def _statuses(db, table: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = [r[0] for r in conn.execute(f"SELECT status FROM {table} ORDER BY id")]
    conn.close()
    return rows


def test_a_full_disk_is_one_line_keeps_finished_trials_and_the_next_run_closes_what_was_left(
        write_manifest, model_path, engine, tmp_path):
    manifest = load_manifest(write_manifest(TINY.format(model=model_path, reps=40)), gpu_offload=False)
    db = tmp_path / "full.db"
    store = Store(db)
    run = queue_manifest(store, manifest, resume=False)
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # full once the trials outgrow their pages
    with pytest.raises(UserError) as caught:
        run_queue(store, run, engine)
    store.close()
    assert str(caught.value) == (f"--db {db}: cannot write (database or disk is full); every finished trial is "
                                 "kept: free space or fix the disk, then run again with --resume")
    trials = _statuses(db, "trials")
    assert 0 < trials.count("done") < 40 and trials.count("running") <= 1
    later = Store(db)  # space again: the next run's start closes what the full disk left open
    later.abort_stale_running()
    later.close()
    assert "running" not in _statuses(db, "trials") + _statuses(db, "runs")


def test_a_run_killed_mid_trial_is_closed_as_interrupted_by_the_next_one(write_manifest, model_path, tmp_path):
    manifest = load_manifest(write_manifest(TINY.format(model=model_path, reps=2)), gpu_offload=False)
    store = Store(tmp_path / "killed.db")
    run = queue_manifest(store, manifest, resume=False)
    store.mark_running(store.next_pending(run)["id"])  # as a SIGKILL mid-trial leaves it
    assert store.abort_stale_running() == 1
    row = store._conn.execute("SELECT status, ended_by FROM runs WHERE id = ?", [run]).fetchone()
    store.close()
    assert row == ("interrupted", STALE_RUN)
    assert _statuses(tmp_path / "killed.db", "trials") == ["aborted", "pending"]


def test_a_database_deleted_mid_run_stops_it_with_one_line(write_manifest, model_path, engine, tmp_path):
    manifest = load_manifest(write_manifest(TINY.format(model=model_path, reps=3)), gpu_offload=False)
    db = tmp_path / "gone.db"
    store = Store(db)
    run = queue_manifest(store, manifest, resume=False)
    for companion in tmp_path.glob("gone.db*"):
        companion.unlink()
    with pytest.raises(UserError, match="the database was deleted or replaced while this run wrote to it"):
        run_queue(store, run, engine)
    store.close()


def test_resume_after_the_manifest_was_edited_names_the_unfinished_run(write_manifest, model_path, tmp_path,
                                                                       capsys):
    path = write_manifest(TINY.format(model=model_path, reps=2))
    db = tmp_path / "edited.db"
    store = Store(db)
    queue_manifest(store, load_manifest(path, gpu_offload=False), resume=False)  # queued, never run
    store.close()
    path.write_text(path.read_text().replace("max_tokens: 2", "max_tokens: 3"))
    code, _, err = run_cli(capsys, "run", path, "--db", db, "--resume", "--idle-s", "0.05")
    assert code == 1 and err.count("\n") == 1
    assert ("nothing to resume of this version: run 1 of it is unfinished (2 of 2 trials left) but the file "
            "changed since; restore it to resume that run") in err
    code, out, err = run_cli(capsys, "run", path, "--db", db, "--idle-s", "0.05")
    assert code == 0, err
    assert "run 1 of an earlier version of" in out and "stays unfinished (2 of 2 trials left)" in out
    assert _statuses(db, "runs") == ["running", "done"]


def test_a_wal_that_appears_between_two_checks_is_not_taken_for_a_read_only_one(tmp_path, monkeypatch):
    """The app's workers create and remove a database's -wal at any moment. One created between os.access (no
    file: not writable) and exists() refused the app's own database as read-only (seen in a fresh-clone CI)."""
    import os

    from energytui.engine import store

    wal = tmp_path / "race.db-wal"
    real_access = os.access

    def access(path, mode) -> bool:
        answer = real_access(path, mode)
        wal.touch()  # another connection opens the database right after the check
        return answer

    monkeypatch.setattr(os, "access", access)
    assert store._read_only(wal) is False
