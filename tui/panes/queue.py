"""The Queue tab: load a manifest, edit its pending trials, and start, pause or stop its run.

The run goes in a worker thread through the application layer (the same `running` as `energytui run`);
its progress is posted as TrialEvent messages, which bubble to the app and from there to the Live tab.
"""

from __future__ import annotations

import threading
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Static

from energytui.app import Abort, UserError

from ..dialogs import AddTrialScreen, ManifestPicker
from ..messages import RunEnded, TrialEvent, TrialsChanged
from ..pane import Pane
from ..trials import TRIAL_COLUMNS, fill_trials, status_counts

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

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Input(str(self.config.manifest or ""), placeholder="manifest path (YAML)", id="manifest-path")
            yield Button("Load", id="load")
            yield Button("Start", id="start", variant="success")
            yield Button("Pause", id="pause")
            yield Button("Stop", id="stop", variant="error")
        yield Static("Load a manifest to queue its trials.", id="queue-status", markup=False)
        yield DataTable(id="queue-table", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*TRIAL_COLUMNS)

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

            return add_form_trials(self.config.db_path, run, document)

        def added(count: int | None) -> None:
            if count:
                self.trials_added(run, count)

        self.app.push_screen(AddTrialScreen(default_model_name(), add), added)

    def action_remove(self) -> None:
        if (trial_id := self._selected_trial()) is not None:
            self.edit_queue("remove", trial_id)

    def action_move(self, step: int) -> None:
        if (trial_id := self._selected_trial()) is not None:
            self.edit_queue("move", trial_id, step)

    def _selected_trial(self) -> int | None:
        table = self.query_one(DataTable)
        return int(table.get_row_at(table.cursor_row)[0]) if table.row_count else None

    @on(Button.Pressed, "#load, #start, #pause, #stop")
    def _button(self, event: Button.Pressed) -> None:
        """The buttons do what their keys do."""
        {"load": self.action_load, "start": self.start, "pause": self.pause, "stop": self.stop}[str(event.button.id)]()

    # --- the run ---

    def start(self) -> None:
        if self.running:
            self.notify("a run is already going", severity="warning")
        elif self.run_number is None:
            self.notify("load a manifest first", severity="warning")
        else:
            self.stop_event.clear()
            self.abort_event.clear()
            self.running = True
            self.run_trials(self.run_number)

    def pause(self) -> None:
        if self.running:
            self.stop_event.set()
            self.notify("pausing after the current trial")

    def stop(self, reason: str | None = None) -> None:
        """Stop now: the worker stops at its next decode step, marks the trial aborted and posts RunEnded."""
        if self.running:
            self.stop_event.set()
            if reason:
                self.abort_event.set(reason)
            else:
                self.abort_event.set()
                self.notify("stopping: the current trial is marked aborted")

    def reload(self) -> None:
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
        from energytui.app.runs import queue_file

        try:
            run, queued = queue_file(self.config.db_path, Path(path))
        except UserError as exc:
            self.tell(str(exc), error=True)
            return
        self.run_number = run
        self.tell(f"run {run}: {queued} trials queued from {path}")
        self.load_queue(run)
        self.post_message(TrialsChanged())

    def trials_added(self, run: int, count: int) -> None:
        self.notify(f"added {count} trial(s) to run {run}")
        self.load_queue(run)
        self.post_message(TrialsChanged())

    @work(thread=True, group="queue-edit")
    def edit_queue(self, action: str, trial_id: int, step: int = 0) -> None:
        with self.database() as store:
            done = store.remove_pending(trial_id) if action == "remove" else store.move_pending(trial_id, step)
        if not done:
            self.app.call_from_thread(self.notify, f"trial {trial_id}: only pending trials can be "
                                      f"{'removed' if action == 'remove' else 'moved'} (and not past the ends)",
                                      severity="warning")
        else:
            self.reload()
            self.post_message(TrialsChanged())

    @work(thread=True, exclusive=True, group="runner")
    def run_trials(self, run: int) -> None:
        from energytui.app.runs import MeterOptions, running

        status, error, counts = "failed", None, {}
        try:
            with running(self.config.db_path, self.config.meter or MeterOptions()) as live:
                status = live.run(run, lambda event: self.post_message(TrialEvent(event)),
                                  stop=self.stop_event, abort=self.abort_event)
                counts = status_counts(live.trials(run))
        except UserError as exc:
            error = str(exc)
        self.post_message(RunEnded(status, error, counts))

    @work(thread=True, exclusive=True, group="queue")
    def load_queue(self, run: int) -> None:
        with self.database() as store:
            trials = sorted(store.trials(run=run), key=lambda t: t["seq"])  # run order, which moves change
        self.app.call_from_thread(fill_trials, self.query_one(DataTable), trials)  # the cursor follows a move
        summary = ", ".join(f"{n} {s}" for s, n in status_counts(trials).items())
        self.app.call_from_thread(self.query_one("#queue-status", Static).update, f"run {run}: {summary}")
