"""The trial queue: a manifest's trials become pending rows, and the runner works through them.

Used by `energytui run` and by the TUI's worker alike; progress is reported
through one callback so neither needs to know the other.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
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
from .steady import SteadyGroup
from .store import MODEL_SHAPE, RunnerStore, Store
from .telemetry.steady import SteadyEnergy

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
    """Progress for a display: kind is trial_start, tokens, trial_end, cooldown or window (a steady window
    closed after the trial named)."""

    kind: str
    index: int
    total: int
    trial: dict
    tokens: int = 0
    tokens_per_s: float | None = None
    t_first_ns: int | None = None  # first token of the running trial (the prefill/decode boundary)
    live: LiveTrial | None = None  # the running trial at any moment, for a display that polls it
    window: SteadyEnergy | None = None  # kind "window": a steady window closed, with its figures


@dataclass(frozen=True)
class LiveView:
    """The running trial (or the cooldown before it) at one moment. `marks`: when each phase began, on the
    samples' clock (time.monotonic_ns); `since_ns` is the trace's start; samples are the meter's since then."""

    index: int
    total: int
    trial: dict
    phase: str  # one of PHASES, or the trial's final status once it ended
    since_ns: int
    marks: dict[str, int]
    tokens: int
    tokens_per_s: float | None
    samples: list


# loading: model, context and warm-up; idle: the idle window before prefill; re-warm: the busy spell after it (in
# no window, engine/runner.py REWARM_S); prefill from the clock's start; decode from the first token; idle after:
# the window after the last token; extra requests: untimed requests that make a steady window long enough
# (engine/steady.py)
PHASES = ("cooldown", "loading", "idle", "re-warm", "prefill", "decode", "idle after", "extra requests")


class LiveTrial:
    """Written by the runner thread at each phase and token, read from any thread through `view()`: a display
    redraws from it on its own timer, also during prefill and the idle windows, when no token event comes."""

    def __init__(self, meter: Meter | None):
        self._meter = meter
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None

    def begin(self, index: int, total: int, trial: dict, phase: str) -> None:
        """A new trace: a trial starts (phase `loading`) or the cooldown before it."""
        now = time.monotonic_ns()
        with self._lock:
            self._state = {"index": index, "total": total, "trial": trial, "phase": phase, "since_ns": now,
                           "marks": {phase: now}, "tokens": 0, "first": None, "last": None}

    def enter(self, phase: str, t_ns: int | None = None) -> None:
        with self._lock:
            if self._state is not None:
                self._state["phase"] = phase
                self._state["marks"][phase] = t_ns or time.monotonic_ns()

    def token(self, generated: int, t_ns: int) -> None:
        with self._lock:
            state = self._state
            if state is None:
                return
            if state["first"] is None:  # the first token ends prefill
                state["first"] = (generated, t_ns)
                state["phase"] = "decode"
                state["marks"]["decode"] = t_ns
            state["tokens"], state["last"] = generated, (generated, t_ns)

    def end(self, trial: dict) -> None:
        """The trial ended: its row (with its status) stays on view until the next one begins."""
        with self._lock:
            if self._state is not None:
                self._state.update(trial=trial, phase=trial["status"])

    @property
    def phase(self) -> str | None:
        with self._lock:
            return self._state["phase"] if self._state is not None else None

    def view(self) -> LiveView | None:
        with self._lock:
            if self._state is None:
                return None
            state = dict(self._state, marks=dict(self._state["marks"]))
        samples = self._meter.samples_since(state["since_ns"]) if self._meter else []
        return LiveView(state["index"], state["total"], state["trial"], state["phase"], state["since_ns"],
                        state["marks"], state["tokens"], _decode_rate(state["first"], state["last"]), samples)


def _decode_rate(first: tuple[int, int] | None, last: tuple[int, int] | None) -> float | None:
    """Tokens per second since the first token, as the trial's decode_tps counts them."""
    if first is None or last is None or last[1] <= first[1]:
        return None
    return (last[0] - first[0]) / ((last[1] - first[1]) / 1e9)


def spec_from_row(row: dict) -> TrialSpec:
    values: dict[str, Any] = {k: bool(row[k]) if k in _BOOL_FIELDS else row.get(k) for k in _SPEC_FIELDS}
    return TrialSpec(**{**values, "window": values["window"] or "auto"})


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


def queue_manifest(store: Store, manifest: Manifest, resume: bool | None, host: dict | None = None) -> int:
    """Create a run of pending trials, or reopen this host's unfinished one (resume=True). `host`: the facts
    of the host that will run it (a fleet worker's); default this machine.

    resume=None means "not decided": an unfinished earlier run raises ResumeAvailable.
    """
    host = store.resolve_host(host or describe_host())
    previous = store.unfinished_run(manifest.sha256, host["id"])
    if previous and resume:
        store.requeue(previous["id"])
        return previous["id"]
    if previous and resume is None:
        raise ResumeAvailable(manifest.path, previous)
    host_id = store.upsert_host(host)
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


def run_queue(store: RunnerStore, run: int, engine: Engine, on_event=None, stop: threading.Event | None = None,
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
        try:
            store.finish_run(run, *_how_it_ended(exc))
        except sqlite3.Error:  # the database is what failed (a full disk): the next run closes this one
            pass
        if isinstance(exc, sqlite3.OperationalError) and isinstance(store, Store):
            raise store.cannot_write(exc) from None
        raise


def _how_it_ended(exc: BaseException) -> tuple[str, str]:
    """(run status, reason) for a run stopped by a signal (engine/interrupts.py) or by an error."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", interrupts.describe(exc)
    return "failed", f"energytui stopped: {exc!r}"


def _run_pending(store: RunnerStore, run: int, engine: Engine, emit, stop, meter, abort) -> str:
    total = store.trial_count(run)
    previous_ran = False
    aborted = (lambda: abort.is_set()) if abort is not None else (lambda: False)
    live = LiveTrial(meter)
    while (row := store.next_pending(run)) is not None:
        if aborted():
            break
        if stop is not None and stop.is_set():
            store.finish_run(run, "paused")
            return "paused"
        index = row["seq"] + 1
        if previous_ran and row["cooldown_s"]:
            live.begin(index, total, row, "cooldown")
            emit(Event("cooldown", index, total, row, live=live))
            if meter:
                meter.cooldown(row["cooldown_s"], abort)
            elif abort is not None:
                abort.wait(float(row["cooldown_s"]))
            else:
                time.sleep(float(row["cooldown_s"]))
            if aborted():
                break
        steady = meter is not None and meter.window_mode(row.get("window")) == "steady"
        group = SteadyGroup(store, meter, run, row) if steady else None
        try:
            while True:
                finished = _run_listed(store, engine, meter, row, total, emit, abort, live, group)
                previous_ran = True
                if group is None and retry_stalled(store, finished):
                    total += 1
                if group is None or aborted() or (stop is not None and stop.is_set()):
                    break
                following = store.next_pending(run)
                if following is None or not group.takes(following):
                    break
                row = following
        except BaseException:
            if group is not None:  # a signal or an error: the trials that ran keep what their window measured
                group.close()
            raise
        if group is not None:
            _close_group(group, engine, emit, total, abort, stop, live)
        if aborted():
            break
    else:
        store.finish_run(run, "done")
        return "done"
    assert abort is not None
    store.finish_run(run, "stopped", _reason(abort))
    return "stopped"


def retry_stalled(store: RunnerStore, trial: dict) -> bool:
    """A trial whose decoding stood still (runner.stalled_ms) measured the stall: it is queued once more at the
    end of its run, so its configuration still gets the trials asked for (a retry that stalls again is not)."""
    if trial["status"] != "done" or not trial.get("stalled_ms") or trial.get("retry_of") is not None:
        return False
    store.retry(trial["id"])
    return True


def _run_listed(store: RunnerStore, engine: Engine, meter: Meter | None, row: dict, total: int, emit,
                abort: threading.Event | None, live: LiveTrial, group: SteadyGroup | None) -> dict:
    """One trial of the queue, told to the display as it starts and ends; returns it as stored."""
    index = row["seq"] + 1
    store.mark_running(row["id"])
    live.begin(index, total, row, "loading")
    emit(Event("trial_start", index, total, row, live=live))
    _run_one(store, engine, meter, row, _token_reporter(emit, index, total, row, live, abort), abort, live, group)
    finished = store.trial(row["id"])
    live.end(finished)
    emit(Event("trial_end", index, total, finished, live=live))
    return finished


def _close_group(group: SteadyGroup, engine: Engine, emit, total: int, abort: threading.Event | None,
                 stop: threading.Event | None, live: LiveTrial) -> None:
    """Extra requests while the window is too short (unless the run is being stopped), then its figures."""
    def check() -> None:
        if abort is not None and abort.is_set():
            raise TrialStopped

    def keep_going() -> bool:
        return not (abort is not None and abort.is_set()) and not (stop is not None and stop.is_set())

    def extra(row: dict):
        return engine.run(spec_from_row(row), lambda generated, t_ns: check(), checkpoint=check,
                          on_edge=group.meter.mark)

    if group.started and group.busy_s() < group.length_s and keep_going():
        live.enter("extra requests")
        try:
            group.fill(extra, keep_going)
        except TrialStopped:
            pass
    energy = group.close()
    if energy is not None and group.rows:
        last = group.rows[-1]
        emit(Event("window", last["seq"] + 1, total, last, window=energy))


def _run_one(store: RunnerStore, engine: Engine, meter: Meter | None, row: dict, on_token,
             abort: threading.Event | None = None, live: LiveTrial | None = None,
             group: SteadyGroup | None = None) -> None:
    """Run and store one trial: with its own idle windows, or (group) inside a steady window, whose first
    trial holds the group's idle window and whose others follow straight on."""
    idle = {}
    live = live if live is not None else LiveTrial(None)
    opens_window = group is None or not group.started

    def stop_if_aborted() -> None:
        if abort is not None and abort.is_set():
            raise TrialStopped

    def idle_window() -> None:
        if opens_window:
            live.enter("idle")
            if group is not None:
                group.idle_window(abort)
            elif meter:
                idle["start"] = meter.idle_before(abort)
        live.enter("re-warm" if opens_window else "prefill")  # the engine re-warms after an idle window alone
        stop_if_aborted()

    def window_edge() -> None:  # the first edge starts prefill's clock: the re-warm has ended
        if live.phase == "re-warm":
            live.enter("prefill")
        if meter:
            meter.mark()

    def kept_samples() -> list:  # a steady window keeps every sample until it closes
        return [] if group is not None else _samples(meter, idle, None)[0]

    try:
        measurement = engine.run(spec_from_row(row), on_token, before_start=idle_window, checkpoint=stop_if_aborted,
                                 rewarm=opens_window, on_edge=window_edge)
        samples: list = []
        energy: dict = {}
        if group is not None:
            group.add(row, measurement)
        else:
            live.enter("idle after")
            samples, energy = _samples(meter, idle, measurement)
    except TrialStopped:
        store.fail_trial(row["id"], "aborted", _reason(abort) if abort is not None else STOPPED_BY_USER,
                         kept_samples())
        return
    except (TrialFailed, UserError, RuntimeError) as exc:
        store.fail_trial(row["id"], "failed", str(exc), kept_samples())
        return
    except BaseException as exc:  # a signal, a bug or a crash: the trial says which; run_queue ends the run
        store.fail_trial(row["id"], "aborted", _how_it_ended(exc)[1], kept_samples())
        raise
    store.finish_trial(row["id"], {**measurement.metrics(), **energy}, measurement.steps, samples)


def _samples(meter: Meter | None, idle: dict, measurement) -> tuple[list, dict]:
    return meter.finish(idle.get("start"), measurement) if meter else ([], {})


def _token_reporter(emit, index: int, total: int, row: dict, live: LiveTrial | None = None,
                    abort: threading.Event | None = None, every_s: float = 0.2):
    """A cheap on_token callback: tells `live` of every token, and emits at most every `every_s` seconds."""
    next_ns, t0, n0 = 0, None, 0  # the next emit; the first token's time and count

    def on_token(generated: int, t_ns: int) -> None:
        nonlocal next_ns, t0, n0
        if abort is not None and abort.is_set():
            raise TrialStopped
        if live is not None:
            live.token(generated, t_ns)
        if t0 is None:
            t0, n0 = t_ns, generated
        if t_ns >= next_ns:
            next_ns = t_ns + int(every_s * 1e9)
            elapsed = (t_ns - t0) / 1e9
            rate = (generated - n0) / elapsed if elapsed > 0 else None
            emit(Event("tokens", index, total, row, generated, rate, t0, live))

    return on_token
