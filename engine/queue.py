"""The trial queue: a manifest's trials become pending rows, and the runner works through them.

Used by `energytui run` and by the TUI's worker alike; progress is reported
through one callback so neither needs to know the other.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import interrupts
from .interrupts import STOPPED_BY_USER, Abort
from .errors import UserError
from .gguf import read_gguf
from .host import describe_host
from .manifest import Manifest, TrialSpec
from .metering import Meter
from .models import derivation, sha256_of
from .runner import Engine, TrialFailed
from .store import MODEL_SHAPE, Store

_SPEC_FIELDS = [f.name for f in dataclasses.fields(TrialSpec)]
_BOOL_FIELDS = {"chat", "ignore_eos"}


class ResumeAvailable(UserError):
    def __init__(self, manifest: Path, previous: dict):
        super().__init__(
            f"{manifest}: an earlier run of this manifest (run {previous['id']}, {previous['created_at']}) has "
            f"{previous['done']} of {previous['total']} trials done; "
            "add --resume to finish it or --fresh to start over",
            exit_code=2)
        self.previous = previous


@dataclass
class Event:
    """Progress for a display: kind is trial_start, tokens, trial_end or cooldown."""

    kind: str
    index: int
    total: int
    trial: dict
    tokens: int = 0
    tokens_per_s: float | None = None
    t_first_ns: int | None = None  # first token of the running trial (the prefill/decode boundary)
    samples: list | None = None  # power samples of the running trial so far, for live charts


def spec_from_row(row: dict) -> TrialSpec:
    values: dict[str, Any] = {k: bool(row[k]) if k in _BOOL_FIELDS else row[k] for k in _SPEC_FIELDS}
    return TrialSpec(**values)


def register_models(store: Store, manifest: Manifest) -> None:
    for path in sorted({t.model_path for t in manifest.trials}):
        info, origin = read_gguf(path), derivation(Path(path))
        store.upsert_model({
            "path": path, "name": Path(path).stem, "sha256": sha256_of(Path(path)), "size": info.size,
            "arch": info.arch, "quant": info.quant, "bits_per_weight": info.bits_per_weight,
            "n_params": info.n_params, "n_layers": info.n_layers,
            **{column: getattr(info, column) for column in MODEL_SHAPE},
            "derived_from": origin["derived_from"] if origin else None,
            "derivation": json.dumps(origin) if origin else None,
        })


def queue_manifest(store: Store, manifest: Manifest, resume: bool | None) -> int:
    """Create a run of pending trials, or reopen the unfinished one (resume=True).

    resume=None means "not decided": an unfinished earlier run raises ResumeAvailable.
    """
    previous = store.unfinished_run(manifest.sha256)
    if previous and resume:
        store.requeue(previous["id"])
        return previous["id"]
    if previous and resume is None:
        raise ResumeAvailable(manifest.path, previous)
    host_id = store.upsert_host(describe_host())
    register_models(store, manifest)
    rows = [spec.as_row() for spec in manifest.trials]
    return store.create_run(str(manifest.path.resolve()), manifest.sha256, host_id, rows)


def add_to_run(store: Store, run: int, manifest: Manifest) -> int:
    """Append a manifest's trials (e.g. one trial from the app's form) to an existing run."""
    host_id = store.upsert_host(describe_host())
    register_models(store, manifest)
    store.add_trials(run, [spec.as_row() for spec in manifest.trials], host_id)
    return len(manifest.trials)


class TrialStopped(Exception):
    """The user stopped the run in the middle of a trial."""


def _reason(abort: threading.Event) -> str:
    """Why `abort` was set: an Abort says; a plain threading.Event means the user stopped the run."""
    return abort.reason if isinstance(abort, Abort) else STOPPED_BY_USER


def run_queue(store: Store, run: int, engine: Engine, on_event=None, stop: threading.Event | None = None,
              meter: Meter | None = None, abort: threading.Event | None = None) -> str:
    """Run the run's pending trials in order; returns the run's final status.

    With a meter, each trial gets an idle window before prefill and after its last
    token, and its energy and raw samples are stored with it. Ctrl-C
    (KeyboardInterrupt) marks the current trial aborted, keeps every finished one,
    and propagates, as do SIGTERM and SIGHUP and any error, with the run closed saying how it ended.
    `stop` (for the TUI) ends the queue after the current trial;
    `abort` ends it at the next decode step (or idle window or cooldown), marking the current trial aborted
    and the run `stopped`, both saying why (an Abort's reason). Pending trials stay pending.
    """
    try:
        return _run_pending(store, run, engine, on_event or (lambda event: None), stop, meter, abort)
    except BaseException as exc:
        store.finish_run(run, *_how_it_ended(exc))
        raise


def _how_it_ended(exc: BaseException) -> tuple[str, str]:
    """(run status, reason) for a run stopped by a signal (engine/interrupts.py) or by an error."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", interrupts.describe(exc)
    return "failed", f"energytui stopped: {exc!r}"


def _run_pending(store: Store, run: int, engine: Engine, emit, stop, meter, abort) -> str:
    total = store.trial_count(run)
    previous_ran = False
    aborted = (lambda: abort.is_set()) if abort is not None else (lambda: False)
    while (row := store.next_pending(run)) is not None:
        if aborted():
            break
        if stop is not None and stop.is_set():
            store.finish_run(run, "paused")
            return "paused"
        index = row["seq"] + 1
        if previous_ran and row["cooldown_s"]:
            emit(Event("cooldown", index, total, row))
            if meter:
                meter.cooldown(row["cooldown_s"], abort)
            elif abort is not None:
                abort.wait(float(row["cooldown_s"]))
            else:
                time.sleep(float(row["cooldown_s"]))
            if aborted():
                break
        store.mark_running(row["id"])
        emit(Event("trial_start", index, total, row))
        _run_one(store, engine, meter, row, _token_reporter(emit, index, total, row, meter, abort), abort)
        previous_ran = True
        emit(Event("trial_end", index, total, store.trial(row["id"])))
        if aborted():
            break
    else:
        store.finish_run(run, "done")
        return "done"
    assert abort is not None
    store.finish_run(run, "stopped", _reason(abort))
    return "stopped"


def _run_one(store: Store, engine: Engine, meter: Meter | None, row: dict, on_token,
             abort: threading.Event | None = None) -> None:
    idle = {}

    def stop_if_aborted() -> None:
        if abort is not None and abort.is_set():
            raise TrialStopped

    def idle_window() -> None:
        if meter:
            idle["start"] = meter.idle_before(abort)
        stop_if_aborted()

    try:
        measurement = engine.run(spec_from_row(row), on_token, before_start=idle_window, checkpoint=stop_if_aborted)
        samples, energy = _samples(meter, idle, measurement)
    except TrialStopped:
        store.fail_trial(row["id"], "aborted", _reason(abort) if abort is not None else STOPPED_BY_USER,
                         _samples(meter, idle, None)[0])
        return
    except (TrialFailed, UserError, RuntimeError) as exc:
        store.fail_trial(row["id"], "failed", str(exc), _samples(meter, idle, None)[0])
        return
    except BaseException as exc:  # a signal, a bug or a crash: the trial says which; run_queue ends the run
        store.fail_trial(row["id"], "aborted", _how_it_ended(exc)[1], _samples(meter, idle, None)[0])
        raise
    store.finish_trial(row["id"], {**measurement.metrics(), **energy}, measurement.steps, samples)


def _samples(meter: Meter | None, idle: dict, measurement) -> tuple[list, dict]:
    return meter.finish(idle.get("start"), measurement) if meter else ([], {})


def _token_reporter(emit, index: int, total: int, row: dict, meter: Meter | None = None,
                    abort: threading.Event | None = None, every_s: float = 0.2):
    """A cheap on_token callback: emits at most every `every_s` seconds, with the trial's power so far."""
    next_ns, t0, n0 = 0, None, 0  # the next emit; the first token's time and count

    def on_token(generated: int, t_ns: int) -> None:
        nonlocal next_ns, t0, n0
        if abort is not None and abort.is_set():
            raise TrialStopped
        if t0 is None:
            t0, n0 = t_ns, generated
        if t_ns >= next_ns:
            next_ns = t_ns + int(every_s * 1e9)
            elapsed = (t_ns - t0) / 1e9
            rate = (generated - n0) / elapsed if elapsed > 0 else None
            samples = meter.peek() if meter else None
            emit(Event("tokens", index, total, row, generated, rate, t0, samples))

    return on_token
