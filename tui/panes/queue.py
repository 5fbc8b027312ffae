"""The Queue tab: choose a run of the database (or load a manifest), edit its pending trials, and start,
pause or stop it.

The run goes in a worker thread through the application layer (the same `running` as `energytui run`);
its progress is posted as TrialEvent messages, which bubble to the app and from there to the Live tab.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Select, Static

from energytui.app import Abort, UserError

from ..confirm import ConfirmScreen
from ..dialogs import AddTrialScreen, ManifestPicker
from ..messages import RunEnded, TrialEvent, TrialsChanged
from ..pane import Pane
from ..trials import TRIAL_COLUMNS, FittedTable, add_columns, fill_trials, status_counts

if TYPE_CHECKING:
    from energytui.app.runs import Manifest

CONFIG_CELL, PROMPT_CELL = TRIAL_COLUMNS.index("configuration"), TRIAL_COLUMNS.index("prompt")


def run_option(run: dict) -> str:
    """A run in the selector: number, manifest file name, how it ended (or that it has not) and how many trials
    wait. A run's row says `running` from its queueing to its end, whether or not a process runs it now."""
    status = run["status"] if run["status"] != "running" else (
        "not started" if run["pending"] == run["trials"] else "unfinished")
    name = Path(run["manifest"] or "?").name
    return f"run {run['id']} · {name} · {status} · {run['pending']}/{run['trials']} pending"

MOVE = Binding.Group("Move", compact=True)


class QueuePane(Pane):
    BINDINGS = [
        Binding("l", "load", "Load", tooltip="Load (queue) the manifest named in the path box"),
        Binding("o", "pick", "Open", tooltip="Choose a manifest file, then load it"),
        Binding("a", "add", "Add", tooltip="Add trials to the loaded run with a form"),
        Binding("delete", "remove", "Remove", tooltip="Remove the selected pending trial"),
        Binding("shift+up", "move(-1)", "Earlier", key_display="⇧↑", group=MOVE,
                tooltip="Move the selected pending trial earlier in the run"),
        Binding("shift+down", "move(1)", "Later", key_display="⇧↓", group=MOVE,
                tooltip="Move the selected pending trial later in the run"),
    ]

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.run_number: int | None = None
        self.running = False
        self.stop_event = threading.Event()  # pause: after the current trial
        self.abort_event = Abort()  # stop: now, the current trial is marked aborted
        self.end_as = "stopped"  # the run row's status when the app stops it (interrupted: a signal; failed: a crash)
        self.runner_done = threading.Event()  # no runner thread is working (set again when it returns)
        self.runner_done.set()
        self.ended: RunEnded | None = None  # how the last run ended, as the runner thread posted it
        self.opened: set[int] = set()  # runs this app queued or ran: quitting closes those it left open

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Input(str(self.config.manifest or ""), placeholder="manifest path (YAML)", id="manifest-path")
            yield Button("Load", id="load")
            yield Button("Start", id="start", variant="success")
            yield Button("Pause", id="pause")
            yield Button("Stop", id="stop", variant="error")
        yield Select([], prompt="run: none yet, load a manifest", id="run-select", compact=True)
        yield Static("Choose a run above, or load a manifest to queue its trials.", id="queue-status", markup=False)
        yield FittedTable(id="queue-table", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        add_columns(self.query_one(DataTable), TRIAL_COLUMNS)

    def after_open(self) -> None:
        self.load_runs()

    # --- actions ---

    def action_load(self) -> None:
        self.load_manifest(self.query_one("#manifest-path", Input).value.strip())

    def action_pick(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.query_one("#manifest-path", Input).value = str(path)
                self.load_manifest(str(path))

        self.app.push_screen(ManifestPicker(), chosen)

    def action_add(self) -> None:
        if self.run_number is None:
            self.notify("load a manifest first: trials are added to its run", severity="warning")
            return
        from energytui.app.machine import default_model_name

        run = self.run_number

        def add(document: dict) -> int:  # called by the form, in its worker thread, until it is accepted
            from energytui.app.runs import add_form_trials

            added = add_form_trials(self.config.db_path, run, document)
            for line in added.warnings:
                self.tell_warning(line)
            return added.count

        def added(count: int | None) -> None:
            if count:
                self.trials_added(run, count)

        self.app.push_screen(AddTrialScreen(default_model_name(), add), added)

    def action_remove(self) -> None:
        """Remove the selected trial after a y/n question naming it."""
        if (selected := self._selected()) is None:
            return
        trial_id, named = selected

        def answered(remove: bool | None) -> None:
            if remove:
                self.edit_queue("remove", trial_id, named=named)
            else:
                self.notify(f"kept {named}")

        self.app.push_screen(ConfirmScreen(f"Remove {named}? y/n"), answered)

    def action_move(self, step: int) -> None:
        if (selected := self._selected()) is not None:
            self.edit_queue("move", selected[0], step, named=selected[1])

    def _selected(self) -> tuple[int, str] | None:
        """The selected trial's id, and its name for messages: 'trial N (configuration, prompt)'."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        cells = table.get_row_at(table.cursor_row)
        return int(cells[0]), f"trial {cells[0]} ({cells[CONFIG_CELL]}, {cells[PROMPT_CELL]})"

    @on(Select.Changed, "#run-select")
    def _run_chosen(self, event: Select.Changed) -> None:
        """The chosen run becomes the loaded one: s starts or resumes it."""
        if not isinstance(event.value, int) or event.value == self.run_number:
            return
        if self.running:  # the worker runs the loaded run: it stays loaded until the run ends
            self.notify(f"run {self.run_number} is going: pause or stop it before choosing another",
                        severity="warning")
            self.query_one("#run-select", Select).value = (self.run_number if self.run_number is not None
                                                             else Select.NULL)
            return
        self.run_number = event.value
        self.load_queue(event.value)

    @on(Button.Pressed, "#load, #start, #pause, #stop")
    def _button(self, event: Button.Pressed) -> None:
        """The buttons do what their keys do."""
        {"load": self.action_load, "start": self.start, "pause": self.pause, "stop": self.stop}[str(event.button.id)]()

    # --- the run ---

    def start(self) -> None:
        if self.running:
            self.notify("a run is already going", severity="warning")
        elif self.run_number is None:
            self.notify("choose a run or load a manifest first", severity="warning")
        else:
            self.stop_event.clear()
            self.abort_event.clear()
            self.end_as = "stopped"
            self.running = True
            self.opened.add(self.run_number)
            self.run_trials(self.run_number)

    def pause(self) -> None:
        if self.running:
            self.stop_event.set()
            self.notify("pausing after the current trial")

    def stop(self, reason: str | None = None, status: str = "stopped") -> None:
        """Stop now: the worker stops at its next decode step, marks the trial aborted and posts RunEnded; the
        run row then reads `status` (interrupted for a signal, failed for a crash, as `energytui run` writes
        them) with `reason` as its ended_by."""
        if self.running:
            self.end_as = status
            self.stop_event.set()
            if reason:
                self.abort_event.set(reason)
            else:
                self.abort_event.set()
                self.notify("stopping: the current trial is marked aborted")

    def reload(self) -> None:
        """The runs' counts and the loaded run's trials, again from the database."""
        self.load_runs()
        if self.run_number is not None:
            self.load_queue(self.run_number)

    def on_trial_event(self, message: TrialEvent) -> None:
        if message.event.kind in ("trial_start", "trial_end"):
            self.reload()

    def on_run_ended(self, message: RunEnded) -> None:
        self.running = False
        self.reload()

    # --- workers ---

    @work(thread=True, exclusive=True, group="load")
    def load_manifest(self, path: str) -> None:
        """Check the manifest as `energytui run` does: refuse what cannot work, warn about what is wasteful, and
        ask before queueing a large run (with its estimated duration)."""
        from energytui.app.runs import MeterOptions, check_file

        try:
            manifest, verdict = check_file(self.config.db_path, Path(path),
                                           (self.config.meter or MeterOptions()).idle_s)
        except UserError as exc:
            self.tell(str(exc), error=True)
            return
        for line in verdict.warnings:
            self.tell_warning(line)
        if verdict.needs_confirmation:
            self.on_ui(self._confirm_large_run, manifest, verdict.needs_confirmation)
        else:
            self._queue(manifest)

    def _confirm_large_run(self, manifest: Manifest, question: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.queue_large_run(manifest)
            else:
                self.notify(f"nothing queued from {manifest.path}")

        self.app.push_screen(ConfirmScreen(f"{question}. Queue it? y/n"), answered)

    @work(thread=True, exclusive=True, group="load")
    def queue_large_run(self, manifest: Manifest) -> None:
        self._queue(manifest)

    def _queue(self, manifest: Manifest) -> None:
        """In a worker: the checked manifest's trials queued, and shown."""
        from energytui.app.runs import queue_checked

        try:
            run = queue_checked(self.config.db_path, manifest)
        except UserError as exc:
            self.tell(str(exc), error=True)
            return
        self.run_number = run
        self.opened.add(run)
        self.tell(f"run {run}: {len(manifest.trials)} trials queued from {manifest.path}")
        self.load_runs()
        self.load_queue(run)
        self.post_message(TrialsChanged())

    def trials_added(self, run: int, count: int) -> None:
        self.notify(f"added {count} trial(s) to run {run}")
        self.load_queue(run)
        self.post_message(TrialsChanged())

    @work(thread=True, group="queue-edit")
    def edit_queue(self, action: str, trial_id: int, step: int = 0, named: str = "") -> None:
        with self.database() as store:
            done = store.remove_pending(trial_id) if action == "remove" else store.move_pending(trial_id, step)
        named = named or f"trial {trial_id}"
        if not done:
            self.tell_warning(f"{named}: only pending trials can be {'removed' if action == 'remove' else 'moved'}"
                              " (and not past the ends)")
            return
        if action == "remove":
            self.tell(f"removed {named} from run {self.run_number}")
        else:  # the refill keeps the cursor on the moved trial; the message says where it went
            self.tell(f"moved {named} {'earlier' if step < 0 else 'later'}")
        self.reload()
        self.post_message(TrialsChanged())

    def tell_warning(self, text: str) -> None:
        self.on_ui(self.app.notify, text, severity="warning", markup=False)

    @work(thread=True, exclusive=True, group="runner")
    def run_trials(self, run: int) -> None:
        from energytui.app.runs import MeterOptions, running

        self.runner_done.clear()
        status, error, counts = "failed", None, {}
        try:
            with running(self.config.db_path, self.config.meter or MeterOptions()) as live:
                status = live.run(run, lambda event: self.post_message(TrialEvent(event)),
                                  stop=self.stop_event, abort=self.abort_event)
                if status == "stopped" and self.end_as != "stopped":  # a signal or a crash stopped it: say so
                    live.store.finish_run(run, self.end_as, self.abort_event.reason)  # as the fleet's head does
                    status = self.end_as
                counts = status_counts(live.trials(run))
        except UserError as exc:
            error = str(exc)
        finally:
            self.ended = RunEnded(status, error, counts)
            self.runner_done.set()
        self.post_message(self.ended)

    def close_opened_runs(self, status: str, reason: str) -> dict[int, RunEnded]:
        """As the app closes, with no runner thread working: the runs it queued or ran that are still open (loaded
        and never started, or paused) are closed as `status` with `reason`, as a run stopped then would be; a
        run that another process runs now (it holds the runner's lock) is left to it. Returns them by number."""
        from energytui.app.queries import database, run_summaries

        if not self.opened or not self.config.db_path.is_file():
            return {}
        closed = {}
        with database(self.config.db_path) as store:
            try:
                store.acquire_runner_lock()
            except UserError:
                return {}
            for run in run_summaries(store):
                if run["id"] not in self.opened or run["status"] not in ("running", "paused"):
                    continue
                counts = status_counts(store.trials(run=run["id"]))
                if counts.get("running"):  # a trial left running by a stopped process: the next run repairs it
                    continue
                store.finish_run(run["id"], status, reason)
                closed[run["id"]] = RunEnded(status, None, counts)
        return closed

    @work(thread=True, exclusive=True, group="runs")
    def load_runs(self) -> None:
        """Fill the run selector with the database's runs and their pending counts."""
        from energytui.app.queries import database, run_summaries

        if not self.config.db_path.exists():  # no runs yet; and creating the file is the writers' job
            return
        with database(self.config.db_path, read_only=True) as store:
            runs = run_summaries(store)
        self.show_latest(self._show_runs, runs)

    def _show_runs(self, runs: list[dict]) -> None:
        """The loaded run stays selected; with none loaded yet, the latest run with pending trials is loaded."""
        from energytui.app.queries import latest_pending_run

        selected = self.run_number if self.run_number is not None else latest_pending_run(runs)
        select = self.query_one("#run-select", Select)
        with select.prevent(Select.Changed):  # a refill is not a choice
            select.set_options([(run_option(run), run["id"]) for run in runs])
            if any(run["id"] == selected for run in runs):
                select.value = selected
        if self.run_number is None and selected is not None:
            self.run_number = selected
            self.load_queue(selected)

    @work(thread=True, exclusive=True, group="queue")
    def load_queue(self, run: int) -> None:
        with self.database() as store:
            trials = sorted(store.trials(run=run), key=lambda t: t["seq"])  # run order, which moves change
        self.show_latest(self._show_queue, run, trials)

    def _show_queue(self, run: int, trials: list[dict]) -> None:
        if run != self.run_number:  # a read that a choice of another run overtook
            return
        fill_trials(self.query_one(DataTable), trials)  # the cursor follows a move
        summary = ", ".join(f"{n} {s}" for s, n in status_counts(trials).items())
        self.query_one("#queue-status", Static).update(f"run {run}: {summary}")
