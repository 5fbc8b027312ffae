"""What the faces read from the database and change in it: open it (read-only for commands that only
read), the named queries of engine.store, a trial's power trace, the export, report and compare texts,
queue edits and imports. The store's connection and SQL never reach a face."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from energytui.engine import compare as comparison
from energytui.engine.errors import UserError
from energytui.engine.importer import ImportResult, import_logs
from energytui.engine.paths import default_db_path, expand_home, make_folder_for
from energytui.engine.report import TAG_LABELS, export_text, missing_trace_reason, report_text
from energytui.engine.store import COMPANIONS, Store, companion, database_of_companion, is_sqlite_file

__all__ = ["ImportResult", "Trace", "compare_text", "database", "db_path", "export", "import_logs",
           "latest_pending_run", "report", "run_summaries", "trace"]

NO_TRIALS_HINT = "run `energytui run config/manifests/quickstart.yaml`"


def db_path(given: Path | None, for_writing: bool) -> Path:
    """The database a command uses: --db, else the default one, whose folder a writing command creates."""
    if given is not None:
        return given
    path = default_db_path()
    if for_writing:
        make_folder_for(path, "--db")
    return path


def refuse_to_overwrite_a_database(output: Path, db: Path) -> None:
    """A report written over the database it came from, any SQLite file, or one's -wal (which holds every write
    since the last checkpoint: all of a killed run's trials), -shm, -journal or lock file would lose trials."""
    target, database = output.resolve(), expand_home(db, "--db").resolve()
    ours = [database, *(companion(database, suffix) for suffix in COMPANIONS)]
    if target in ours:
        what = "the database it reads" if target == database else f"the {target.name.removeprefix(database.name)} " \
            f"file of the database it reads"
    elif is_sqlite_file(target):
        what = "a SQLite database"
    elif (owner := database_of_companion(target)) is not None:
        what = f"the {target.name.removeprefix(owner.name)} file of the SQLite database {owner}"
    else:
        return
    raise UserError(f"--output {output}: that is {what}; writing there would destroy it, choose another path")


@contextmanager
def database(path: Path, read_only: bool = False) -> Iterator[Store]:
    """The database, checked, migrated and closed after use; read_only never creates or changes a file."""
    store = Store(path, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


@dataclass
class Trace:
    """A trial's power samples, its phase marks, and a label saying what the samples are (or why none)."""

    samples: list[tuple[int, str, float | None]]
    marks: dict[str, int | None]
    label: str


def trace(store: Store, trial_id: int) -> Trace:
    trial = store.trial(trial_id)
    samples = store.power_trace(trial_id)
    marks = {"prefill": trial.get("t_start_ns"), "decode": trial.get("t_first_ns"), "end": trial.get("t_end_ns")}
    tag = TAG_LABELS.get(trial.get("energy_tag") or trial.get("window_tag") or "", "") if samples \
        else missing_trace_reason(trial)
    if samples and trial.get("window_id"):
        tag += f", its steady-state window {trial['window_id']} (the idle window and every request in it)"
    return Trace(samples, marks, f"trial {trial_id} {tag}".strip())


def run_summaries(store: Store) -> list[dict]:
    """The database's runs, newest first, with their pending trials counted (the app's run selector)."""
    return store.run_summaries()


def latest_pending_run(runs: list[dict]) -> int | None:
    """The newest run that still has pending trials (what the app shows on start); None where none has."""
    return next((r["id"] for r in runs if r["pending"]), None)


def export(store: Store, fmt: str) -> str:
    return export_text(store.trials(), fmt)


def report(store: Store, by: str, fmt: str, columns: list[int] | None = None) -> str:
    """The report of every trial; `columns`: which of its table's columns, in order."""
    trials = store.trials()
    if not trials:
        raise UserError(f"--db {store.path}: no trials yet; {NO_TRIALS_HINT}", 1)
    return report_text(trials, store.hosts(), by, fmt, columns)


def compare_text(store: Store, ref_a: str, ref_b: str, fmt: str) -> str:
    """Two runs, hosts or run ids side by side on the configurations they share."""
    (name_a, a), (name_b, b) = comparison.select(store, ref_a), comparison.select(store, ref_b)
    if name_a == name_b:
        raise UserError(f"compare: {name_a} against itself; name two different runs, hosts or run ids "
                        "(`energytui report` lists them)")
    rows, only_a, only_b = comparison.compare(a, b)
    if not rows:
        raise UserError(f"compare: {name_a} and {name_b} share no configuration (same model, quantization, "
                        "backend, threads, layers, n_batch, batch and prompt suite); `energytui report` lists "
                        "each side's", 1)
    return comparison.text((name_a, name_b), rows, only_a, only_b, fmt)
