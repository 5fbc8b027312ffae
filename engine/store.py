"""The SQLite store (sqlite-utils): hosts, models, runs, trials (also the queue), token timings, samples.

The database is the single source of truth; the CLI, the TUI and the advisor may
open the same file at once (WAL, busy timeout). A trial moves
pending → running → done | failed | aborted.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import stat
import threading
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterator, Protocol, Sequence
from urllib.parse import quote

from .errors import UserError
from .paths import expand_home, where_from
from .record import SETTING, named, stored_row

SCHEMA_VERSION = 12
SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite file
APPLICATION_ID = 0x45545549  # "ETUI" in the SQLite header: the files energytui creates
STATUSES = ("pending", "running", "done", "failed", "aborted")

if TYPE_CHECKING:
    import sqlite_utils

# Each migration brings the schema from version i to i + 1; append, never edit.
_MIGRATIONS: list = []  # filled below by _migration


def _migration(func):
    _MIGRATIONS.append(func)
    return func


@_migration
def _create_v1(db: sqlite_utils.Database) -> None:
    db.table("hosts").create({
        "id": str, "hostname": str, "cpu": str, "cores": int, "ram_gb": float, "gpu": str, "gpu_driver": str,
        "os": str, "llama_cpp": str, "gpu_offload": int, "python": str, "first_seen": str,
    }, pk="id")
    db.table("models").create({
        "path": str, "name": str, "sha256": str, "size": int, "arch": str, "quant": str, "bits_per_weight": float,
        "n_params": int, "n_layers": int, "derived_from": str, "derivation": str,
    }, pk="path")
    db.table("runs").create({
        "id": int, "manifest": str, "manifest_sha256": str, "host_id": str, "status": str, "n_trials": int,
        "created_at": str, "finished_at": str,
    }, pk="id", foreign_keys=[("host_id", "hosts", "id")])
    db.table("trials").create({
        "id": int, "run": int, "seq": int, "status": str, "run_id": str, "config_id": str,
        "model": str, "model_path": str, "quant": str, "backend": str, "threads": int, "gpu_layers": int,
        "n_batch": int, "batch_size": int, "n_ctx": int, "suite": str, "prompt_id": str, "prompt_text": str,
        "prompt_tokens_target": int, "chat": int, "max_tokens": int, "ignore_eos": int, "temperature": float,
        "seed": int, "repetition": int, "cooldown_s": float,
        # measured
        "prompt_tokens": int, "gen_tokens": int, "ttft_ms": float, "prefill_tps": float, "decode_tps": float,
        "decode_tps_per_seq": float, "itl_p50_ms": float, "itl_p95_ms": float, "e2e_ms": float,
        "t_start_ns": int, "t_first_ns": int, "t_end_ns": int, "load_ms": float, "output_text": str,
        "stop_reason": str, "error": str, "host_id": str, "started_at": str, "finished_at": str,
    }, pk="id", foreign_keys=[("run", "runs", "id"), ("host_id", "hosts", "id")])
    db.table("trials").create_index(["run", "status", "seq"])
    db.table("trials").create_index(["config_id"])
    # One row per decode step: at step 0 every sequence's first token, then one token per live sequence.
    db.table("token_timings").create({"trial_id": int, "step": int, "t_ns": int, "n_tokens": int},
                               pk=("trial_id", "step"), foreign_keys=[("trial_id", "trials", "id")])
    # Raw telemetry samples on the same monotonic clock as the token timings.
    db.table("samples").create({"trial_id": int, "t_ns": int, "device": str, "source": str, "power_w": float,
                          "energy_j": float}, foreign_keys=[("trial_id", "trials", "id")])
    db.table("samples").create_index(["trial_id", "t_ns"])


@_migration
def _energy_v2(db: sqlite_utils.Database) -> None:
    """Energy figures on trials with how they were measured, per-sample extras (GPU clocks, temperature)."""
    for column, kind in (("energy_j", float), ("energy_net_j", float), ("energy_cpu_j", float),
                         ("energy_gpu_j", float), ("prefill_energy_j", float), ("decode_energy_j", float),
                         ("j_per_token", float), ("avg_power_w", float), ("peak_power_w", float),
                         ("idle_power_w", float), ("edp_js", float), ("energy_source", str), ("energy_tag", str),
                         ("sample_hz", float), ("energy_notes", str), ("energy_method", str)):
        db.table("trials").add_column(column, kind)
    db.table("samples").add_column("extra", str)


@_migration
def _advisor_v3(db: sqlite_utils.Database) -> None:
    """Fitted advisor models (portable JSON), reused until their data hash changes."""
    db.table("advisor_fits").create({"id": int, "host_id": str, "data_hash": str, "created_at": str, "payload": str},
                              pk="id")
    db.table("advisor_fits").create_index(["host_id", "data_hash"])


@_migration
def _imports_v4(db: sqlite_utils.Database) -> None:
    """Trials and hosts imported from other machines' logs, with their caveats."""
    db.table("trials").add_column("imported", int)
    db.table("trials").add_column("caveats", str)
    db.table("hosts").add_column("imported", int)


# A model's shape from its GGUF header: what the advisor's physical model reads (engine/gguf.py).
MODEL_SHAPE = ("n_embd", "n_head", "n_head_kv", "head_dim", "n_ctx_train", "n_vocab", "decode_bytes", "layer_bytes",
               "matmul_params")


@_migration
def _model_shape_v5(db: sqlite_utils.Database) -> None:
    """Attention shape, trained context, bytes read and FLOPs per token of every model."""
    for column in MODEL_SHAPE:
        db.table("models").add_column(column, int)


@_migration
def _kernel_rates_v6(db: sqlite_utils.Database) -> None:
    """The host's matrix kernels timed per weight type (engine/kernels.py), for the advisor."""
    db.table("kernel_rates").create({"host_id": str, "llama_cpp": str, "quant": str, "rows": int, "threads": int,
                               "seconds_per_flop": float, "measured_at": str},
                              pk=("host_id", "llama_cpp", "quant", "rows", "threads"))


@_migration
def _run_endings_v7(db: sqlite_utils.Database) -> None:
    """How a run ended, in words (which signal stopped it, which error)."""
    db.table("runs").add_column("ended_by", str)


@_migration
def _steady_windows_v8(db: sqlite_utils.Database) -> None:
    """Steady-state windows: a configuration's energy from back-to-back requests, for slow power sources
    (engine/telemetry/steady.py); trials name theirs, and the window's raw samples are kept with it."""
    db.table("steady_windows").create({
        "id": int, "run": int, "run_id": str, "config_id": str, "host_id": str, "created_at": str,
        "t_idle_start_ns": int, "t_idle_end_ns": int, "t_busy_start_ns": int, "t_busy_end_ns": int,
        "requests": int, "extra_requests": int, "gen_tokens": int, "window_s": float, "busy_s": float,
        "busy_power_w": float, "idle_power_w": float, "busy_uncertainty_w": float, "net_uncertainty_w": float,
        "energy_j": float, "energy_net_j": float, "energy_uncertainty_j": float, "net_uncertainty_j": float,
        "energy_per_request_j": float, "j_per_token": float, "net_j_per_token": float, "energy_tag": str,
        "energy_notes": str, "energy_method": str, "devices": str,
    }, pk="id", foreign_keys=[("run", "runs", "id"), ("host_id", "hosts", "id")])
    db.table("trials").add_column("window", str)
    db.table("trials").add_column("window_id", int)
    db.table("samples").add_column("window_id", int)
    db.table("samples").create_index(["window_id"])


@_migration
def _host_names_v9(db: sqlite_utils.Database) -> None:
    """A host's readable name (a fleet worker's `--name`), shown beside its id."""
    db.table("hosts").add_column("name", str)


@_migration
def _gpu_memory_v10(db: sqlite_utils.Database) -> None:
    """The GPUs' total memory, so the advisor can tell whether a batch fits on them."""
    db.table("hosts").add_column("gpu_memory_gb", float)


@_migration
def _stalls_v11(db: sqlite_utils.Database) -> None:
    """The longest decode step and how long decoding stood still (engine/runner.py, stalled_ms), and the stalled
    trial a trial runs again."""
    db.table("trials").add_column("itl_max_ms", float)
    db.table("trials").add_column("stalled_ms", float)
    db.table("trials").add_column("retry_of", int)


@_migration
def _host_builds_v12(db: sqlite_utils.Database) -> None:
    """The features llama.cpp was compiled with (its system info line): part of a host's identity since a rebuild
    with other CPU flags (AMX, repacking) runs at other speeds. Unknown (NULL) for hosts recorded before."""
    db.table("hosts").add_column("build", str)


# A trial's steady window, as Store.trials joins it (engine/record.py declares these names).
WINDOW_JOIN = {"window_j_per_token": "j_per_token", "window_energy_per_request_j": "energy_per_request_j",
               "window_busy_power_w": "busy_power_w", "window_idle_power_w": "idle_power_w",
               "window_energy_uncertainty_j": "energy_uncertainty_j", "window_s": "window_s",
               "window_net_j_per_token": "net_j_per_token", "window_net_uncertainty_j": "net_uncertainty_j",
               "window_requests": "requests", "window_extra_requests": "extra_requests", "window_tag": "energy_tag"}


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None when there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _read_only(path: Path) -> bool:
    """Whether a file exists and may not be written. Other connections (the app's own workers) create and remove
    a database's -wal all the time, between any two checks: a miss is only believed when it holds three times."""
    for _ in range(3):
        if os.access(path, os.W_OK) or not path.exists():
            return False
    return True


def is_sqlite_file(path: Path) -> bool:
    """Whether a regular file starts as every SQLite file does (False when missing or unreadable; a pipe, a FIFO
    or a terminal is never read: the read would wait for a writer, or for the keyboard)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


STALE_RUN = "its process stopped without closing it (killed, crashed or the machine went down)"
COMPANIONS = ("-wal", "-shm", "-journal", ".lock")  # beside a database: SQLite's files and the runner's lock


def companion(database: Path, suffix: str) -> Path:
    """The file beside a database that one of COMPANIONS names (its -wal: `trials.db-wal`)."""
    return database.with_name(database.name + suffix)


def database_of_companion(path: Path) -> Path | None:
    """The database that `path` belongs beside (its -wal, -shm, -journal or runner lock file), if it is one."""
    for suffix in COMPANIONS:
        if path.name.endswith(suffix) and path.name != suffix:
            database = path.with_name(path.name.removesuffix(suffix))
            if is_sqlite_file(database):
                return database
    return None


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# Files whose integrity this process has checked. quick_check reads the whole file (0.4 s for 1.5 million
# power samples, four hours at 100 Hz): once per process, not on each of the app's polls beside a run.
_CHECKED: set[Path] = set()
_MIGRATING = threading.Lock()


# What running a queue (engine/queue.py, engine/steady.py) does with the database: Store, or a fleet worker's
# stand-in that asks the head, the only writer (app/fleet.py).
RUNNER_CALLS = ("trial_count", "next_pending", "mark_running", "trial", "finish_trial", "fail_trial", "save_window",
                "finish_run", "retry")


class RunnerStore(Protocol):
    def trial_count(self, run: int) -> int: ...
    def next_pending(self, run: int) -> dict | None: ...
    def mark_running(self, trial_id: int) -> None: ...
    def trial(self, trial_id: int) -> dict: ...
    def finish_trial(self, trial_id: int, measured: dict, token_steps: list[tuple[int, int]],
                     samples: Sequence = ()) -> None: ...
    def fail_trial(self, trial_id: int, status: str, error: str, samples: Sequence = ()) -> None: ...
    def save_window(self, run: int, window: dict, samples: Sequence, trial_energy: dict[int, dict]) -> int: ...
    def finish_run(self, run: int, status: str, ended_by: str | None = None) -> None: ...
    def retry(self, trial_id: int) -> None: ...


class Store:
    """The SQLite file. `read_only` (export, report, compare, advise) never creates or changes the file and
    works on read-only media; every open checks the file's integrity first."""

    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = expand_home(path, "--db")
        self.flag = where_from(self.path) or "--db"  # how the user named it, for the messages
        self.read_only = read_only
        self._lock_fh: IO[str] | None = None
        folder = self.path.parent
        if not folder.is_dir():
            raise UserError(f"{self.flag} {self.path}: folder {folder} does not exist; create it or choose another "
                            "path")
        if read_only and not self.path.is_file():
            raise UserError(f"{self.flag} {self.path}: no database there; check the path, or create one with "
                            "`energytui run config/manifests/quickstart.yaml`")
        if not read_only:
            self._refuse_a_read_only_file()
        try:
            self._conn = self._connect_read_only() if read_only else self._connect()
            if self.path.resolve() not in _CHECKED:  # once per file and process: the app reopens it every 2 s
                self._check_integrity()
                _CHECKED.add(self.path.resolve())
            self._refuse_a_foreign_file()  # before WAL mode, which would change its header
            self._identity = _file_identity(self.path)
            if not read_only:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._migrate()
        except sqlite3.OperationalError as exc:
            if read_only and companion(self.path, "-wal").exists() and not os.access(folder, os.W_OK):
                raise UserError(f"{self.flag} {self.path}: its -wal file holds writes not yet merged into it, and "
                                f"SQLite must create a -shm file beside them to read them, which {folder} does not "
                                "allow; copy the database and its -wal file to a writable folder") from None
            how = "reading" if read_only else "writing"
            raise UserError(f"{self.flag} {self.path}: cannot open for {how} ({exc}); choose a "
                            f"{'readable' if read_only else 'writable'} location") from None
        except sqlite3.DatabaseError as exc:
            if is_sqlite_file(self.path):  # a SQLite file SQLite cannot read: cut short or overwritten
                raise self._damaged(str(exc)) from None
            raise UserError(f"{self.flag} {self.path}: not an energytui database ({exc}); choose another "
                            "file") from None

    def _refuse_a_read_only_file(self) -> None:
        """SQLite opens a file it may not write read-only without a word, and fails at the first write."""
        for path in (self.path, companion(self.path, "-wal")):
            if _read_only(path):
                raise UserError(f"{self.flag} {self.path}: {path.name} is read-only; make it writable (chmod u+w) "
                                "to record into it, or choose another database (report, export, compare and "
                                "advise read it as it is)")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        """Without a writer (no -wal file beside it), immutable=1: SQLite then creates no -wal or -shm file
        and reads from read-only media. With one, mode=ro, which shares the writer's -wal and -shm."""
        uri = f"file:{quote(str(self.path.resolve()))}"
        if not companion(self.path, "-wal").exists():
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)
        return sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=10, check_same_thread=False)

    def _check_integrity(self) -> None:
        problem = self._conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise self._damaged(" ".join(problem.replace("*** in database main ***", "").split()))

    def _damaged(self, problem: str) -> UserError:
        return UserError(f"{self.flag} {self.path}: the database is damaged ({problem}); nothing was written to it. "
                         f"Restore a copy, or recover what is readable with `sqlite3 {self.path} .recover "
                         f"| sqlite3 recovered.db` and use --db recovered.db")

    @cached_property
    def _db(self):
        """The sqlite-utils view of the connection, imported on first use: a read such as a cached
        `advise` needs only sqlite3, and sqlite-utils (with numpy) costs a quarter of a second to import."""
        import sqlite_utils

        return sqlite_utils.Database(self._conn)

    def _migrate(self) -> None:
        with _MIGRATING:  # threads of one process (the app's panes) opening a new file: one creates the schema
            self._migrate_now()

    def _migrate_now(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UserError(f"{self.flag} {self.path}: schema version {version} is newer than this energytui "
                            f"({SCHEMA_VERSION}); upgrade energytui")
        self._in_memory = self.read_only and version < SCHEMA_VERSION
        if self._in_memory:  # an older file is read through an upgraded copy in memory
            memory = sqlite3.connect(":memory:", check_same_thread=False)
            self._conn.backup(memory)
            self._conn.close()
            self._conn = memory
        for target, migrate in enumerate(_MIGRATIONS[version:], start=version + 1):
            with self._db.conn:
                migrate(self._db)
                self._db.execute(f"PRAGMA user_version={target}")

    def _refuse_a_foreign_file(self) -> None:
        """An energytui file has a schema version, or is being created by energytui (its application id, set
        before the first table: SQLite commits each CREATE TABLE at once, so another connection can see the
        tables before the version). A file with neither and with tables belongs to another program."""
        if self._conn.execute("PRAGMA user_version").fetchone()[0]:
            return
        if self._conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
            return
        tables = [row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if tables:
            shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
            raise UserError(f"{self.flag} {self.path}: a SQLite file of another program (tables {shown}); "
                            "energytui leaves it alone, choose another file")
        if not self.read_only:
            self._conn.execute(f"PRAGMA application_id={APPLICATION_ID}")  # a new file: claimed before its tables

    # --- the runner's lock: one process runs trials on a database at a time ---

    def acquire_runner_lock(self) -> None:
        lock_path = companion(self.path, ".lock")
        try:
            fh = open(lock_path, "a+")
        except OSError as exc:
            raise UserError(f"{self.flag} {self.path}: cannot create the lock file {lock_path} ({exc.strerror}); "
                            "choose a writable location") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise UserError(f"{self.flag} {self.path}: trials are already running on this database ({holder}); "
                            "wait for it to finish or use another --db", exit_code=3) from None
        fh.truncate(0)
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._lock_fh = fh

    def release_runner_lock(self) -> None:
        if self._lock_fh:
            self._lock_fh.close()
            self._lock_fh = None

    def abort_stale_running(self) -> int:
        """Trials left `running` by a killed process are aborted, and their runs closed as interrupted (call
        with the runner lock held: no other process runs trials here)."""
        try:
            with self._db.conn:
                self._db.execute(
                    "UPDATE runs SET status='interrupted', ended_by=?, finished_at=? WHERE status='running' AND id IN "
                    "(SELECT run FROM trials WHERE status='running')", [STALE_RUN, now_iso()])
                cursor = self._db.execute(
                    "UPDATE trials SET status='aborted', error='the process running it stopped', finished_at=? "
                    "WHERE status='running'", [now_iso()])
        except sqlite3.OperationalError as exc:
            raise self.cannot_write(exc) from None
        return cursor.rowcount

    def cannot_write(self, exc: sqlite3.Error) -> UserError:
        """A write SQLite refused (a full disk, an I/O error): what is kept and what to do."""
        return UserError(f"{self.flag} {self.path}: cannot write ({exc}); every finished trial is kept: free "
                         "space or fix the disk, then run again with --resume")

    # --- writing ---

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several writes together or not at all (an import's host, model, run and trials): the write lock is
        taken first, and a failure before the writes' own blocks commit rolls every one of them back."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")  # a concurrent writer waits rather than interleaves
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        if conn.in_transaction:
            conn.commit()

    def resolve_host(self, host: dict) -> dict:
        """Host facts (engine.host.describe_host) with the id their row has here. A row recorded before builds
        were (build unknown) under the same facts' `legacy_id` is this build's row, unless another build has since
        claimed it: a database keeps its host through the upgrade that started recording builds."""
        legacy = host.get("legacy_id")
        if legacy is None or self.host_row(host["id"]) is not None:
            return host
        row = self.host_row(legacy)
        return {**host, "id": legacy} if row is not None and row["build"] in (None, host["build"]) else host

    def upsert_host(self, host: dict) -> str:
        """The id of the host row for these facts (Store.resolve_host), inserted when new; a row recorded before
        builds were gets this build."""
        host = self.resolve_host(host)
        row = self.host_row(host["id"])
        facts = {key: value for key, value in host.items() if key != "legacy_id"}
        if row is None:
            self._db.table("hosts").insert({**facts, "first_seen": now_iso()})
        elif row["build"] is None and facts.get("build") is not None:
            self._db.table("hosts").update(host["id"], {"build": facts["build"]})
        return host["id"]

    def upsert_model(self, row: dict) -> None:
        self._db.table("models").upsert(row, pk="path")

    def create_run(self, manifest: str, manifest_sha: str, host_id: str, trials: list[dict],
                   status: str = "running") -> int:
        """A run and its trials: pending ones to run, or (status="done") finished ones being imported."""
        rows = [stored_row({"status": "pending", **trial, "seq": seq, "host_id": host_id}, "create_run")
                for seq, trial in enumerate(trials)]  # all checked before anything is written
        with self._db.conn:
            run_id = self._db.table("runs").insert({
                "manifest": manifest, "manifest_sha256": manifest_sha, "host_id": host_id, "status": status,
                "n_trials": len(trials), "created_at": now_iso(),
            }).last_pk
            self._db.table("trials").insert_all({**row, "run": run_id} for row in rows)
        return run_id

    def mark_running(self, trial_id: int) -> None:
        self._update(trial_id, status="running", started_at=now_iso())

    def finish_trial(self, trial_id: int, measured: dict, token_steps: list[tuple[int, int]],
                     samples: Sequence = ()) -> None:
        with self._db.conn:
            self._db.table("token_timings").insert_all(
                {"trial_id": trial_id, "step": step, "t_ns": t_ns, "n_tokens": n}
                for step, (t_ns, n) in enumerate(token_steps))
            self._insert_samples(trial_id, samples)
            self._update(trial_id, **measured, status="done", error=None, finished_at=now_iso())
        self._check_still_there()

    def fail_trial(self, trial_id: int, status: str, error: str, samples: Sequence = ()) -> None:
        with self._db.conn:
            self._insert_samples(trial_id, samples)
            self._update(trial_id, status=status, error=error, finished_at=now_iso())
        self._check_still_there()

    def _check_still_there(self) -> None:
        """SQLite goes on writing to a file deleted or replaced under it, and every later write is lost with it."""
        if _file_identity(self.path) != self._identity:
            raise UserError(f"{self.flag} {self.path}: the database was deleted or replaced while this run wrote "
                            "to it, and the trials written since went with it; run the manifest again")

    def save_window(self, run: int, window: dict, samples: Sequence, trial_energy: dict[int, dict]) -> int:
        """A steady window's figures and raw samples, and its trials' energy columns (trial id -> columns)."""
        with self._db.conn:
            window_id = self._db.table("steady_windows").insert({**window, "run": run,
                                                                 "created_at": now_iso()}).last_pk
            self._insert_samples(None, samples, window_id)
            for trial_id, columns in trial_energy.items():
                self._update(trial_id, **columns, window_id=window_id)
        return window_id

    def _insert_samples(self, trial_id: int | None, samples, window_id: int | None = None) -> None:
        """Raw telemetry samples, kept so windows can be recomputed later."""
        self._db.table("samples").insert_all(
            {"trial_id": trial_id, "window_id": window_id, "t_ns": s.t_ns, "device": s.device, "source": s.source,
             "power_w": s.power_w, "energy_j": s.energy_j, "extra": json.dumps(s.extra) if s.extra else None}
            for s in samples)

    def _update(self, trial_id: int, **values) -> None:
        with self._db.conn:
            self._db.table("trials").update(trial_id, stored_row(values, "trial update"))

    def finish_run(self, run: int, status: str, ended_by: str | None = None) -> None:
        with self._db.conn:
            self._db.table("runs").update(run, {"status": status, "finished_at": now_iso(), "ended_by": ended_by})

    def add_trials(self, run: int, trials: list[dict], host_id: str) -> None:
        """Append pending trials to a run (the app's "add trial" form)."""
        rows = [stored_row({**trial, "run": run, "status": "pending", "host_id": host_id}, "add_trials")
                for trial in trials]  # all checked before anything is written
        with self._db.conn:
            last = self._db.execute("SELECT COALESCE(MAX(seq), -1) FROM trials WHERE run = ?", [run]).fetchone()[0]
            self._db.table("trials").insert_all({**row, "seq": last + 1 + i} for i, row in enumerate(rows))
            self._db.table("runs").update(run, {"n_trials": self._db.table("trials").count_where("run = ?", [run])})

    def retry(self, trial_id: int) -> None:
        """Queue a trial once more at the end of its run: its settings copied, retry_of naming it."""
        trial = self.trial(trial_id)
        settings = {name: trial[name] for name in ("run_id", "config_id", *named(SETTING))}
        self.add_trials(trial["run"], [{**settings, "retry_of": trial_id}], trial["host_id"])

    def remove_pending(self, trial_id: int) -> bool:
        """Delete a trial that has not run; finished trials are never removed."""
        with self._db.conn:
            cursor = self._db.execute("DELETE FROM trials WHERE id = ? AND status = 'pending'", [trial_id])
        return cursor.rowcount == 1

    def move_pending(self, trial_id: int, step: int) -> bool:
        """Swap a pending trial with the next pending one before (step -1) or after (step 1) it."""
        row = self._db.execute("SELECT run, seq FROM trials WHERE id = ? AND status = 'pending'", [trial_id]).fetchone()
        if row is None:
            return False
        run, seq = row
        compare, order = ("<", "DESC") if step < 0 else (">", "ASC")
        other = self._db.execute(f"SELECT id, seq FROM trials WHERE run = ? AND status = 'pending' AND seq {compare} ? "
                                f"ORDER BY seq {order} LIMIT 1", [run, seq]).fetchone()
        if other is None:
            return False
        with self._db.conn:
            self._db.table("trials").update(trial_id, {"seq": other[1]})
            self._db.table("trials").update(other[0], {"seq": seq})
        return True

    def requeue(self, run: int) -> int:
        """Aborted trials of a run go back to pending (for --resume), without the aborted attempt's samples
        and token timings: the next attempt's trace must not be mixed with the broken one's."""
        aborted = "SELECT id FROM trials WHERE run = ? AND status = 'aborted'"
        with self._db.conn:
            for table in ("samples", "token_timings"):
                self._db.execute(f"DELETE FROM {table} WHERE trial_id IN ({aborted})", [run])
            cursor = self._db.execute(
                "UPDATE trials SET status='pending', error=NULL WHERE run=? AND status='aborted'", [run])
            self._db.table("runs").update(run, {"status": "running", "finished_at": None})
        return cursor.rowcount

    # --- reading ---

    def next_pending(self, run: int) -> dict | None:
        rows = list(self._db.table("trials").rows_where("run = ? AND status = 'pending'", [run], order_by="seq",
                                                       limit=1))
        return rows[0] if rows else None

    def unfinished_run(self, manifest_sha: str, host_id: str | None = None) -> dict | None:
        """The latest run of this exact manifest (on this host, when given: a fleet's runs are one per host)
        that still has pending or aborted trials."""
        return self._latest_unfinished("r.manifest_sha256 = ?", manifest_sha, host_id)

    def unfinished_run_of_file(self, manifest_path: str, host_id: str | None = None) -> dict | None:
        """The latest unfinished run of the manifest file at this path, whatever its content was then."""
        return self._latest_unfinished("r.manifest = ?", manifest_path, host_id)

    def _latest_unfinished(self, match: str, value: str, host_id: str | None) -> dict | None:
        on_host = " AND r.host_id = ?" if host_id is not None else ""
        rows = self._db.execute(
            "SELECT r.id, r.created_at, "
            "SUM(t.status = 'done') AS done, SUM(t.status IN ('pending','aborted')) AS left, COUNT(*) AS total "
            f"FROM runs r JOIN trials t ON t.run = r.id WHERE {match}{on_host} "
            "GROUP BY r.id HAVING left > 0 ORDER BY r.id DESC LIMIT 1",
            [value, *([host_id] if host_id is not None else [])]).fetchall()
        return dict(zip(("id", "created_at", "done", "left", "total"), rows[0])) if rows else None

    def trials(self, *, run: int | None = None, host_id: str | None = None, run_id: str | None = None,
               done: bool = False) -> list[dict]:
        """Trials joined with their model's shape and their host's facts, in order; filters combine (AND)."""
        filters = [(column, value) for column, value in (("t.run", run), ("t.host_id", host_id),
                                                         ("t.run_id", run_id)) if value is not None]
        where = " AND ".join([f"{column} = ?" for column, _ in filters] + (["t.status = 'done'"] if done else []))
        return self._rows(
            f"SELECT t.*, m.bits_per_weight, m.n_params, m.n_layers, m.size AS model_size, "
            f"{', '.join('m.' + c for c in MODEL_SHAPE)}, h.gpu_offload AS gpu_build, h.cores AS host_cores, "
            f"h.ram_gb AS host_ram_gb, h.gpu_memory_gb AS host_gpu_memory_gb, h.name AS host_name, "
            f"{', '.join(f'w.{c} AS {n}' for n, c in WINDOW_JOIN.items())} FROM trials t "
            f"LEFT JOIN models m ON m.path = t.model_path LEFT JOIN hosts h ON h.id = t.host_id "
            f"LEFT JOIN steady_windows w ON w.id = t.window_id "
            f"WHERE {where or '1=1'} ORDER BY t.id", [value for _, value in filters])

    def run_numbers(self) -> list[int]:
        return [row[0] for row in self._conn.execute("SELECT id FROM runs ORDER BY id")]

    def run_summaries(self) -> list[dict]:
        """Every run, newest first: number, manifest, status, and its trials by pending and in all."""
        return self._rows(
            "SELECT r.id, r.manifest, r.status, COUNT(t.id) AS trials, "
            "COALESCE(SUM(t.status = 'pending'), 0) AS pending FROM runs r LEFT JOIN trials t ON t.run = r.id "
            "GROUP BY r.id ORDER BY r.id DESC")

    def run_ids(self) -> list[str]:
        """The manifests' (and import maps') run names that have trials."""
        return [row[0] for row in self._conn.execute("SELECT DISTINCT run_id FROM trials ORDER BY run_id")]

    def _rows(self, sql: str, params=()) -> list[dict]:
        cursor = self._conn.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def run_with_sha(self, sha: str) -> int | None:
        """The latest run made from content with this digest (a manifest, or an imported log and its map)."""
        row = self._conn.execute("SELECT MAX(id) FROM runs WHERE manifest_sha256 = ?", [sha]).fetchone()
        return row[0]

    def host_id_of(self, ref: str) -> str | None:
        """A host named by its id, or by its readable name (a fleet worker's; the latest host of that name)."""
        row = self._conn.execute("SELECT h.id FROM hosts h LEFT JOIN trials t ON t.host_id = h.id "
                                 "WHERE h.id = ? OR h.name = ? GROUP BY h.id ORDER BY h.id = ? DESC, MAX(t.id) DESC "
                                 "LIMIT 1", [ref, ref, ref]).fetchone()
        return row[0] if row else None

    def host_refs(self) -> list[str]:
        """Each host as a user can name it: 'name (id)' where it has a name, else its id."""
        return [f"{name} ({id_})" if name else id_
                for id_, name in self._conn.execute("SELECT id, name FROM hosts ORDER BY id")]

    def latest_host(self, hostname: str) -> str | None:
        """The id of this hostname's host row with the latest trial (a host's id changes with its build)."""
        row = self._conn.execute(
            "SELECT h.id FROM hosts h LEFT JOIN trials t ON t.host_id = h.id WHERE h.hostname = ? "
            "GROUP BY h.id ORDER BY MAX(t.id) DESC LIMIT 1", [hostname]).fetchone()
        return row[0] if row else None

    def done_gpu_trials(self, host_id: str) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM trials WHERE host_id = ? AND status = 'done' "
                                 "AND backend != 'cpu'", [host_id]).fetchone()[0]

    def kernel_rates(self, host_id: str) -> tuple[str | None, dict]:
        """(llama.cpp version, {quant: {rows: {threads: seconds per FLOP}}}) of the host's kernel probe."""
        rows = self._conn.execute("SELECT k.quant, k.rows, k.threads, k.seconds_per_flop, h.llama_cpp "
                                 "FROM kernel_rates k JOIN hosts h ON h.id = k.host_id AND h.llama_cpp = k.llama_cpp "
                                 "WHERE k.host_id = ?", [host_id]).fetchall()
        table: dict = {}
        for quant, count, threads, value, _ in rows:
            table.setdefault(quant, {}).setdefault(str(count), {})[str(threads)] = value
        return (rows[0][4] if rows else None), table

    def save_kernel_rates(self, host_id: str, llama_cpp: str, rates: dict) -> None:
        measured = now_iso()
        rows = [(host_id, llama_cpp, q, int(r), int(t), v, measured)
                for q, by_rows in rates.items() for r, by_threads in by_rows.items() for t, v in by_threads.items()]
        self._cache_write("INSERT OR REPLACE INTO kernel_rates (host_id, llama_cpp, quant, rows, threads, "
                          "seconds_per_flop, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def _cache_write(self, sql: str, rows: list[tuple]) -> None:
        """A derived result (a fit, a kernel probe) kept for next time. A read-only open writes it through a
        short-lived writable connection when the file allows; an older schema read in memory keeps it in that
        copy; on read-only media it is not kept (the caller uses it now): a cache never stops a read."""
        if not self.read_only or self._in_memory:
            with self._conn:
                self._conn.executemany(sql, rows)
            return
        try:
            writer = sqlite3.connect(self.path, timeout=10)
            try:
                with writer:
                    writer.executemany(sql, rows)
            finally:
                writer.close()
        except sqlite3.Error:
            pass  # not writable here: the result is used now and computed again next time

    def median_e2e_s(self, model_paths: set[str]) -> float | None:
        """The median end-to-end seconds of done trials of these models on this hostname's hosts."""
        marks = ", ".join("?" * len(model_paths))
        values = sorted(row[0] for row in self._conn.execute(
            f"SELECT t.e2e_ms FROM trials t JOIN hosts h ON h.id = t.host_id WHERE t.status = 'done' "
            f"AND t.e2e_ms IS NOT NULL AND h.hostname = ? AND t.model_path IN ({marks})",
            [socket.gethostname(), *model_paths]))
        return values[len(values) // 2] / 1e3 if values else None

    def thread_counts(self, host_id: str) -> list[int]:
        return [row[0] for row in self._conn.execute("SELECT DISTINCT threads FROM trials WHERE host_id = ? "
                                                    "AND threads > 0", [host_id])]

    def host_row(self, host_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM hosts WHERE id = ?", [host_id])
        return rows[0] if rows else None

    def hosts(self) -> list[dict]:
        return self._rows("SELECT * FROM hosts ORDER BY id", [])

    def latest_fit(self, host_id: str) -> tuple[str, str] | None:
        """(data_hash, payload) of the newest advisor fit for this host."""
        row = self._conn.execute("SELECT data_hash, payload FROM advisor_fits WHERE host_id = ? "
                                "ORDER BY id DESC LIMIT 1", [host_id]).fetchone()
        return (row[0], row[1]) if row else None

    def save_fit(self, host_id: str, data_hash: str, payload: str) -> None:
        self._cache_write("INSERT INTO advisor_fits (host_id, data_hash, created_at, payload) VALUES (?, ?, ?, ?)",
                          [(host_id, data_hash, now_iso(), payload)])

    def trial(self, trial_id: int) -> dict:
        rows = self._rows("SELECT * FROM trials WHERE id = ?", [trial_id])
        if not rows:
            raise UserError(f"trial {trial_id}: not in {self.path}")
        return rows[0]

    def trial_count(self, run: int) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM trials WHERE run = ?", [run]).fetchone()[0]

    def power_trace(self, trial_id: int) -> list[tuple[int, str, float | None]]:
        """(t_ns, device, power_w) of the trial's raw samples in time order; for a trial of a steady window,
        the whole window's (its idle window and every request in it)."""
        return self._conn.execute(
            "SELECT t_ns, device, power_w FROM samples WHERE trial_id = ? OR window_id = "
            "(SELECT window_id FROM trials WHERE id = ?) ORDER BY t_ns", [trial_id, trial_id]).fetchall()

    def running_trials(self) -> list[dict]:
        """Every trial marked running, by host name then id, each with its host's name and its run's trial
        count (`run_total`): one per host during a fleet's run."""
        return self._rows("SELECT t.*, h.name AS host_name, (SELECT COUNT(*) FROM trials x WHERE x.run = t.run) "
                          "AS run_total FROM trials t LEFT JOIN hosts h ON h.id = t.host_id "
                          "WHERE t.status = 'running' ORDER BY h.name, t.id")

    def change_stamp(self) -> tuple:
        """Changes whenever a trial is added, removed, started or finished: cheap enough to poll every few
        seconds."""
        return tuple(self._conn.execute("SELECT COUNT(*), MAX(id), MAX(finished_at), SUM(status = 'done'), "
                                        "SUM(status = 'running') FROM trials").fetchone())

    def close(self) -> None:
        self.release_runner_lock()
        self._conn.close()
