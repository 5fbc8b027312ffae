"""Bad input that points energytui at files it must not touch: another program's SQLite file as --db, and
--output naming a database. Each is a real process: one line, exit 2, no traceback, every file unchanged."""

import sqlite3
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

import test_import
from test_bad_input import ENERGYTUI, _digest, files  # noqa: F401 (files is the shared module fixture)


@pytest.fixture(scope="module")
def foreign(files):  # noqa: F811
    path = files["folder"] / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER)")  # even a table named like energytui's
    conn.close()
    truncated = files["folder"] / "truncated.db"  # a copy cut short, as a full disk or a killed copy leaves it
    truncated.write_bytes(files["good"].read_bytes()[:files["good"].stat().st_size // 2])
    return {**files, "foreign": path, "truncated": truncated}


CASES = [
    (["export", "--db", "{good}", "-o", "{good}"], "--output", "that is the database it reads"),
    (["report", "--db", "{good}", "--output", "{foreign}"], "--output", "that is a SQLite database"),
    (["compare", "1", "1", "--db", "{good}", "-o", "{good}"], "--output", "that is the database it reads"),
    (["export", "--db", "{good}", "-o", "{good}-wal"], "--output", "that is the -wal file of the database it reads"),
    (["report", "--db", "{good}", "-o", "{foreign}-journal"], "--output",
     "that is the -journal file of the SQLite database"),
    (["report", "--db", "{truncated}"], "--db", "the database is damaged"),
    (["report", "--db", "{foreign}"], "--db", "a SQLite file of another program (tables runs)"),
    (["run", "{manifest}", "--db", "{foreign}"], "--db", "a SQLite file of another program (tables runs)"),
    (["run", "{manifest}", "--db", "{folder}/fleet.db", "--cluster", "127.0.0.1:99999"], "--cluster",
     "give the head's address as IP:PORT"),
    (["run", "{manifest}", "--db", "{folder}/fleet.db", "--cluster", "127.0.0.1:1"], "--cluster",
     "no Ray head answers there"),  # nothing listens on port 1: refused at once, not after Ray's minutes
    (["worker", "--head", "--bind", "127.0.0.1", "--name", ""], "--name", "use 1-40 letters"),  # not the hostname
    (["models", "ladder", "--quants", ","], "--quants", "name at least one quantization"),
    (["export", "--db", "~nosuchuser-energytui/x.db"], "--db", "no home folder for that user"),
    (["import", "{folder}/log.csv", "--map", str(test_import.EXAMPLE_MAP), "--db", "{foreign}"], "--db",
     "energytui leaves it alone"),
]


@pytest.mark.parametrize("args, flag, message", CASES, ids=[" ".join(c[0][:2]) + " " + c[1] for c in CASES])
def test_files_that_are_not_ours_to_write_are_refused_and_left_as_they_were(foreign, args, flag, message):
    line = _refused_with_one_line(foreign, args, {})
    assert line.startswith(f"energytui: error: {flag} ") and message in line, line


def _refused_with_one_line(paths: dict, args: list[str], env: dict[str, str]) -> str:
    """Runs energytui with `args` (and `env`) formatted from `paths`: exit 2, one line, no traceback, every file
    in the folder unchanged; the line."""
    import os

    before = {p: _digest(p) for p in paths["folder"].iterdir()}
    done = subprocess.run([*ENERGYTUI, *(a.format(**paths) for a in args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120,
                          env={**os.environ, **{k: v.format(**paths) for k, v in env.items()}})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert {p: _digest(p) for p in paths["folder"].iterdir()} == before
    return lines[0]


ENV_CASES = [
    ({"ENERGYTUI_DB": "{folder}/log.csv/x.db"}, ["run", "{manifest}"], "$ENERGYTUI_DB: cannot create the folder"),
    ({"ENERGYTUI_HOME": "{folder}/log.csv"}, ["models", "fetch"], "$ENERGYTUI_HOME: cannot create the folder"),
    ({"ENERGYTUI_DB": "{foreign}"}, ["report"], "$ENERGYTUI_DB "),
    ({"ENERGYTUI_DB": "{folder}/typo.db"}, ["export"], "$ENERGYTUI_DB "),
    ({"ENERGYTUI_DB": "~nosuchuser-energytui/x.db"}, ["report"],
     "$ENERGYTUI_DB ~nosuchuser-energytui/x.db: no home folder for that user; write the path in full"),
    ({"ENERGYTUI_HOME": "~nosuchuser-energytui"}, ["models", "list"], "$ENERGYTUI_HOME ~nosuchuser-energytui: "),
]


@pytest.mark.parametrize("env, args, message", ENV_CASES, ids=[next(iter(c[0])) + " " + c[1][0] for c in ENV_CASES])
def test_a_bad_path_from_the_environment_is_named_by_its_variable(foreign, env, args, message):
    line = _refused_with_one_line(foreign, args, env)
    assert line.startswith(f"energytui: error: {message}"), line


def test_a_database_energytui_is_still_creating_is_never_taken_for_another_programs(tmp_path):
    """SQLite commits each CREATE TABLE at once, so a second connection (the app's poll, a runner) can see
    tables before the schema version: the application id energytui writes first tells the two apart."""
    from energytui.engine.errors import UserError
    from energytui.engine.store import APPLICATION_ID, Store

    Store(tmp_path / "new.db").close()
    with sqlite3.connect(tmp_path / "new.db") as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()
    halfway = tmp_path / "halfway.db"
    with sqlite3.connect(halfway) as conn:
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute("CREATE TABLE hosts (id TEXT)")  # the first table, committed; the version still 0
    conn.close()
    try:
        Store(halfway).close()
    except UserError as exc:  # the other creator's race may still fail the migration, never as foreign
        assert "another program" not in str(exc)


def test_a_killed_runs_trials_in_the_wal_file_survive_an_output_aimed_at_it(tmp_path):
    """A run killed before SQLite's checkpoint leaves its trials in the -wal file only: writing a report there
    would erase them. Here a writer that never checkpoints holds a committed run in the -wal file."""
    from energytui.engine.store import Store

    db = tmp_path / "killed.db"
    store = Store(db)
    store._conn.execute("PRAGMA wal_autocheckpoint=0")
    store.create_run("m.yaml", "sha", None, [{"run_id": "a", "config_id": "c", "backend": "cpu"}])
    wal = tmp_path / "killed.db-wal"
    assert wal.stat().st_size > 0
    done = subprocess.run([*ENERGYTUI, "export", "--db", str(db), "-o", str(wal)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    store.close()
    assert done.returncode == 2 and "that is the -wal file of the database it reads" in done.stderr, done.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 1
    conn.close()


def test_output_to_a_pipe_is_written_not_read_first(files):  # noqa: F811
    """`report -o /dev/stdout | head`: the guard against overwriting a database never reads a pipe (it would wait
    for a writer that is itself)."""
    done = subprocess.run([*ENERGYTUI, "report", "--db", str(files["good"]), "-o", "/dev/stdout"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 0 and "J/token" in done.stdout, done.stderr


@contextmanager
def _read_only(path: Path, mode: int):
    """`path` made read-only for this process: `mode` (444, 555), and for root (whom permission bits do not stop)
    the immutable attribute, which stops root too."""
    import os

    path.chmod(mode)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root where chattr +i is unavailable: nothing here can make a path read-only")
    try:
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


@pytest.fixture
def read_only_copy(files, tmp_path):  # noqa: F811
    """A copy of the good database that this process may not write."""
    import shutil

    copy = tmp_path / "read-only.db"
    shutil.copy(files["good"], copy)
    with _read_only(copy, 0o444):
        yield copy


def test_a_read_only_database_is_refused_for_recording_and_read_as_it_is(read_only_copy, files):  # noqa: F811
    before = _digest(read_only_copy)
    done = subprocess.run([*ENERGYTUI, "run", str(files["manifest"]), "--db", str(read_only_copy)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"--db {read_only_copy}: read-only.db is read-only; make it writable (chmod u+w)" in lines[0]
    report = subprocess.run([*ENERGYTUI, "report", "--db", str(read_only_copy)], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert report.returncode == 0 and "J/token" in report.stdout, report.stderr
    assert _digest(read_only_copy) == before


@pytest.mark.parametrize("args", [["report", "--db", "{long}.db"], ["run", "{long}.yaml"],
                                  ["export", "--db", "{good}", "-o", "{long}.csv"]])
def test_a_name_too_long_for_the_system_is_one_line(foreign, args):
    line = _refused_with_one_line({**foreign, "long": str(foreign["folder"] / ("x" * 300))}, args, {})
    assert line.startswith("energytui: error: ") and "File name too long" in line, line


def test_a_read_only_data_folder_is_refused_before_anything_runs(files, tmp_path):  # noqa: F811
    import os

    folder = tmp_path / "shelf"
    folder.mkdir()
    with _read_only(folder, 0o555):
        done = subprocess.run([*ENERGYTUI, "run", str(files["manifest"])], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120, env={**os.environ, "ENERGYTUI_HOME": str(folder)})
        assert list(folder.iterdir()) == []
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"$ENERGYTUI_HOME: cannot write in the folder {folder} (read-only); choose another path" in done.stderr
