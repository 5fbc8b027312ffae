"""Running manifests: load and check one, queue it (fresh or resumed), and run a queue.

A run opens, in order, the power meter (first, so that a meter that cannot be read stops everything
before the database is touched), the engine, and the database with the runner's lock held and trials a
stopped process left `running` marked aborted; in the main thread SIGTERM and SIGHUP then end it as
Ctrl-C does. Everything is closed in reverse, however the run ends."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from energytui.engine import interrupts, limits
from energytui.engine.host import describe_host
from energytui.engine.manifest import Manifest, load_manifest, parse_manifest
from energytui.engine.metering import Meter, MeterOptions
from energytui.engine.queue import (Event, LiveTrial, LiveView, ResumeAvailable, add_to_run, queue_manifest,
                                    run_queue)
from energytui.engine.errors import UserError
from energytui.engine.runner import REWARM_S, Engine
from energytui.engine.store import Store

from .queries import database

__all__ = ["Added", "Event", "FormRejected", "Live", "LiveTrial", "LiveView", "Manifest", "MeterOptions",
           "ResumeAvailable", "add_form_trials", "check_file", "check_form", "load_manifest", "plan", "queue_checked",
           "running"]


@dataclass
class Live:
    """A run's open resources; `queue` and `run` act on them."""

    store: Store
    engine: Engine
    meter: Meter
    stale_aborted: int  # trials found `running` from a process that stopped, now aborted
    host: dict  # this machine's facts (engine.host.describe_host) with its id here (Store.resolve_host), once per run

    def queue(self, manifest: Manifest, resume: bool | None) -> int:
        """A new run of the manifest's trials, or (resume=True) its unfinished one; resume=None raises
        ResumeAvailable when there is one to offer."""
        return queue_manifest(self.store, manifest, resume, self.host)

    def can_resume(self, manifest: Manifest) -> bool:
        return self.store.unfinished_run(manifest.sha256, self.host["id"]) is not None

    def unfinished_earlier_version(self, manifest: Manifest) -> dict | None:
        """An unfinished run of this manifest's file from before it was edited (resume matches the content)."""
        if self.can_resume(manifest):
            return None
        return self.store.unfinished_run_of_file(str(manifest.path.resolve()), self.host["id"])

    def run(self, run: int, on_event: Callable[[Event], object] | None = None,
            stop: threading.Event | None = None, abort: threading.Event | None = None) -> str:
        """Run the queue's pending trials; returns the run's final status (see engine.queue.run_queue)."""
        return run_queue(self.store, run, self.engine, on_event, stop=stop, meter=self.meter, abort=abort)

    def trials(self, run: int) -> list[dict]:
        return self.store.trials(run=run)


@contextmanager
def running(db_path: Path, options: MeterOptions) -> Iterator[Live]:
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handlers = interrupts.install() if in_main_thread else {}  # signals reach the main thread only
    meter, engine, store = None, None, None
    try:
        meter = Meter.open(options)
        engine = Engine()
        store = Store(db_path)
        store.acquire_runner_lock()
        stale = store.abort_stale_running()
        meter.start()
        yield Live(store, engine, meter, stale, store.resolve_host(describe_host()))
    finally:
        for resource in (store, engine, meter):
            if resource is not None:
                resource.close()
        interrupts.restore(previous_handlers)


def plan(manifest: Manifest, db_path: Path, idle_s: float) -> limits.Verdict:
    """The manifest against the model, this machine and its size, before anything is queued; a large run's
    duration comes from this host's median trial of the manifest's models, idle windows and re-warm included."""
    typical = None
    if len(manifest.trials) > limits.LARGE_RUN and db_path.is_file():
        with database(db_path, read_only=True) as store:
            median = store.median_e2e_s({t.model_path for t in manifest.trials})
        typical = median + 2 * idle_s + REWARM_S if median else None
    return limits.check(manifest, typical)


def check_file(db_path: Path, manifest_path: Path, idle_s: float) -> tuple[Manifest, limits.Verdict]:
    """A manifest file loaded and checked as `energytui run` checks it (`plan`), nothing queued: UserError for
    what cannot work, else the warnings, and the question a large run needs before it is queued."""
    manifest = load_manifest(manifest_path)
    return manifest, plan(manifest, db_path, idle_s)


def queue_checked(db_path: Path, manifest: Manifest) -> int:
    """The run of a checked manifest's trials queued on the database, its unfinished run resumed if any."""
    with database(db_path) as store:
        return queue_manifest(store, manifest, resume=True)


class FormRejected(UserError):
    """A form's manifest that the validator refused. `key` is the manifest key at fault (None when the
    problem names none), `problem` what is wrong and what to do, without the file and run prefix."""

    def __init__(self, key: str | None, problem: str):
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key, self.problem = key, problem


# The manifest validator names the key in its one-line message ("<file>: run '<id>': key '<key>': <problem>").
_KEYED_PROBLEM = re.compile(r"run '[^']*': key '(\w+)': (.*)$", re.DOTALL)


def check_form(document: dict) -> Manifest:
    """A form's manifest document validated as a file's would be (the model found, the prompts loaded),
    without queuing anything; raises FormRejected so that the form can mark the field at fault."""
    try:
        return parse_manifest(document, Path("add-trial form"), "form")
    except UserError as exc:
        keyed = _KEYED_PROBLEM.search(str(exc))
        raise (FormRejected(keyed[1], keyed[2]) if keyed else FormRejected(None, str(exc))) from None


@dataclass
class Added:
    count: int
    warnings: list[str]  # what `energytui run` would warn about (limits.check)


def add_form_trials(db_path: Path, run: int, document: dict) -> Added:
    """Append the trials of a manifest document (the app's add-trial form) to a run, checked as a manifest
    file's are (limits.check); nothing is added when the document is refused (FormRejected)."""
    manifest = check_form(document)
    try:
        verdict = limits.check(manifest)
    except limits.LimitExceeded as exc:
        raise FormRejected(exc.key, exc.problem) from None
    if verdict.needs_confirmation:
        raise FormRejected(None, f"{len(manifest.trials)} trials is more than the form adds at once "
                                 f"({limits.LARGE_RUN}); use shorter lists, or load a manifest file")
    with database(db_path) as store:
        return Added(add_to_run(store, run, manifest), verdict.warnings)
