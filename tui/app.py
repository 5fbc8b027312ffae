"""The energytui app: Queue, Live, Results, Advisor and Host in tabs, over one SQLite database.

Trials run in a worker thread through the engine's public functions (the same
run_queue as `energytui run`); progress reaches the widgets as messages. Database
reads and advisor fits also run in workers, so the UI thread never waits on
llama.cpp, SQLite or scikit-learn. The database stays the source of truth: trials
queued by `energytui run` in another terminal appear after a refresh (r).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import (Button, DataTable, DirectoryTree, Footer, Header, Input, Select, Static, TabbedContent,
                             TabPane)

from energytui.app import Abort, UserError
from energytui.app.views import TAG_LABELS, MeterOptions, config_label, energy_cell, summarise

from .charts import BarChart, PowerChart, ScatterChart

if TYPE_CHECKING:  # the runs module loads llama.cpp, which the app needs only once it runs trials
    from energytui.app.runs import Event

TRIAL_COLUMNS = ("id", "status", "run", "configuration", "prompt", "tok/s", "TTFT ms", "J/token", "energy source")
CONFIG_COLUMNS = ("configuration", "done", "TTFT ms", "decode tok/s", "e2e ms", "J/token", "avg W")
POLL_S = 2.0  # how often the app looks for trials written by another process (`energytui run`)


class TrialEvent(Message):
    """Progress from the runner thread."""

    def __init__(self, event: Event):
        super().__init__()
        self.event = event


class RunEnded(Message):
    def __init__(self, status: str, error: str | None = None, counts: dict[str, int] | None = None):
        super().__init__()
        self.status, self.error = status, error
        self.counts = counts or {}  # the run's trials by status once it ended


QUIT_REASON = "stopped by the user: the app was quit"
STATUSES = ("pending", "running", "done", "failed", "aborted")


@dataclass
class AppConfig:
    db_path: Path
    manifest: Path | None = None
    meter: MeterOptions | None = None


def trial_cells(t: dict) -> tuple:
    tag = TAG_LABELS.get(t["energy_tag"], "–") if t.get("energy_tag") else "–"
    return (t["id"], t["status"], t["run_id"], config_label(t), t["prompt_id"],
            f"{t['decode_tps']:.1f}" if t.get("decode_tps") else "–",
            f"{t['ttft_ms']:.0f}" if t.get("ttft_ms") else "–",
            f"{t['j_per_token']:.4f}" if t.get("j_per_token") is not None else "–", tag)


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        lines = ["energytui — keys", "",
                 "1-5    Queue · Live · Results · Advisor · Host",
                 "l      load the manifest in the Queue path box     o  pick one from files",
                 "a      add trials to the loaded run (a form)",
                 "del    remove the selected pending trial",
                 "shift+↑/↓  move the selected pending trial earlier or later",
                 "s      start (or resume) the queue",
                 "p      pause after the current trial",
                 "x      stop now: the current trial is marked aborted, finished ones stay",
                 "r      refresh tables from the database (also every 2 s when it changed)",
                 "c      Results: trials or configurations (mean ± stddev)",
                 "enter  Results: the selected trial's power trace with its windows",
                 "esc    leave a text box (keys go to the box while it has focus)",
                 "?      this help          q  quit (asks first during a run)", "",
                 "Energy marked ESTIMATED comes from a model (CPU utilisation × TDP), not a meter.",
                 "Tables sort by clicking a column header; the mouse works everywhere."]
        yield Static("\n".join(lines), id="help-text")


class QuitScreen(ModalScreen[bool]):
    """Asked when quitting during a run: True stops the run (its current trial aborted) and quits."""

    BINDINGS = [Binding("enter,y", "dismiss(True)", "Stop and quit"),
                Binding("escape,n", "dismiss(False)", "Keep running")]

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            yield Static("Stop the run and quit?", id="quit-question", markup=False)
            yield Static("The current trial is marked aborted; finished trials are kept and pending ones stay "
                         "queued, to resume later.\nEnter or y: stop and quit · Esc or n: keep running",
                         markup=False)
            with Horizontal(classes="row"):
                yield _Unfocused("Stop and quit", id="quit-yes", variant="error")
                yield _Unfocused("Keep running", id="quit-no")

    @on(Button.Pressed, "#quit-yes, #quit-no")
    def _answer(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit-yes")


class _Unfocused(Button):
    """A button for the mouse only: Enter answers the question whatever has focus."""

    can_focus = False


class AddTrialScreen(ModalScreen[dict | None]):
    """A form for one trial (or a small sweep: comma lists expand like a manifest's lists)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, default_model: str):
        super().__init__()
        self.default_model = default_model

    def compose(self) -> ComposeResult:
        with Vertical(id="add-form"):
            yield Static("Add trials to the loaded run (comma lists expand, e.g. threads 1,2)", markup=False)
            yield Input(self.default_model, placeholder="model: registry name or .gguf path", id="add-model")
            yield Select([(b, b) for b in ("cpu", "gpu", "hybrid")], value="cpu", allow_blank=False, id="add-backend")
            yield Input("2", placeholder="threads", id="add-threads")
            yield Input("64", placeholder="prompt: a suite (sd, ar, ng) or a token count", id="add-prompt")
            yield Input("64", placeholder="max tokens", id="add-max")
            yield Input("1", placeholder="batch size", id="add-batch")
            with Horizontal(classes="row"):
                yield Button("Add", id="add-ok", variant="primary")
                yield Button("Cancel", id="add-cancel")

    @on(Button.Pressed, "#add-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#add-ok")
    def _ok(self) -> None:
        value = {name: self.query_one(f"#add-{name}", Input).value.strip()
                 for name in ("model", "threads", "prompt", "max", "batch")}
        value["backend"] = str(self.query_one("#add-backend", Select).value)
        self.dismiss(value)


class ManifestPicker(ModalScreen[Path | None]):
    """Pick a manifest file from a directory tree (YAML files only)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Static("Choose a manifest (enter on a .yaml file, esc to cancel)", markup=False)
            yield _YamlTree(Path.cwd())

    @on(DirectoryTree.FileSelected)
    def _chosen(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(event.path)


class _YamlTree(DirectoryTree):
    def filter_paths(self, paths):
        return [p for p in paths if p.is_dir() and not p.name.startswith(".") or p.suffix in (".yaml", ".yml")]


def form_manifest(form: dict) -> dict:
    """The add-trial form as a manifest document (validated by the same code as files)."""

    def values(text: str, kind=int):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            converted = [kind(p) for p in parts]
        except ValueError:
            converted = parts  # the manifest validator names the bad value
        return converted[0] if len(converted) == 1 else converted

    run = {"id": "added", "model": form["model"], "backend": form["backend"], "threads": values(form["threads"]),
           "max_tokens": values(form["max"]), "batch_size": values(form["batch"])}
    prompt = values(form["prompt"], str)
    is_count = all(str(p).isdigit() for p in (prompt if isinstance(prompt, list) else [prompt]))
    run["prompt_tokens" if is_count else "suite"] = values(form["prompt"]) if is_count else prompt
    if not is_count:
        run["prompt_limit"] = 1
    return {"runs": [run]}


class EnergyApp(App[str]):
    """Returns (from run) what to tell the terminal after quitting during a run, else None."""

    TITLE = "energytui"
    CSS = """
    TabPane { padding: 0 1; }
    .row { height: auto; }
    .row Input { width: 1fr; }
    .row Button { margin-left: 1; }
    #queue-table, #results-table { height: 1fr; min-height: 6; }
    #live-info, #queue-status, #advice-text, #host-text { height: auto; }
    PowerChart, ScatterChart, BarChart { height: 1fr; min-height: 8; }
    #results-charts { height: 1fr; }
    HelpScreen { align: center middle; }
    #help-text { width: 78; height: auto; border: round $accent; padding: 1 2; background: $surface; }
    AddTrialScreen, ManifestPicker, QuitScreen { align: center middle; }
    #quit-box { width: 60; height: auto; border: round $error; background: $surface; padding: 0 1; }
    #quit-question { text-style: bold; }
    #add-form, #picker { width: 72; height: auto; max-height: 90%; border: round $accent; background: $surface;
                         padding: 0 1; }
    #picker DirectoryTree { height: 20; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"), Binding("ctrl+c", "interrupt", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("1", "tab('queue')", "Queue"), Binding("2", "tab('live')", "Live"),
        Binding("3", "tab('results')", "Results"), Binding("4", "tab('advisor')", "Advisor"),
        Binding("5", "tab('host')", "Host"), Binding("l", "load", "Load", show=False),
        Binding("s", "start", "Start"), Binding("p", "pause", "Pause"), Binding("x", "stop", "Stop"),
        Binding("r", "refresh", "Refresh"), Binding("escape", "leave_input", "Leave input", show=False),
        Binding("c", "toggle_configs", "Trials/configs", show=False),
        Binding("o", "pick", "Open", show=False), Binding("a", "add", "Add trial", show=False),
        Binding("delete", "remove", "Remove", show=False),
        Binding("shift+up", "move(-1)", "Move up", show=False),
        Binding("shift+down", "move(1)", "Move down", show=False),
    ]

    def __init__(self, config: AppConfig):
        super().__init__()
        self.config = config
        self.run_number: int | None = None
        self.stop_event = threading.Event()  # pause: after the current trial
        self.abort_event = Abort()  # stop: now, the current trial is marked aborted
        self.running = False
        self._quitting = False  # the run was stopped to quit: exit once it has ended
        self._sort_reverse = False
        self._results: list[dict] = []
        self._by_config = False
        self._db_version = None

    # --- layout ---

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="queue"):
            with TabPane("Queue", id="queue"):
                with Horizontal(classes="row"):
                    yield Input(str(self.config.manifest or ""), placeholder="manifest path (YAML)", id="manifest-path")
                    yield Button("Load", id="load")
                    yield Button("Start", id="start", variant="success")
                    yield Button("Pause", id="pause")
                    yield Button("Stop", id="stop", variant="error")
                yield Static("Load a manifest to queue its trials.", id="queue-status", markup=False)
                yield DataTable(id="queue-table", zebra_stripes=True, cursor_type="row")
            with TabPane("Live", id="live"):
                yield Static("No trial running.", id="live-info", markup=False)
                yield PowerChart(id="power-chart")
                yield DataTable(id="recent-table")
            with TabPane("Results", id="results"):
                with Horizontal(classes="row"):
                    yield Input(placeholder="filter: any text in the row", id="results-filter")
                    yield Input(placeholder="export to .csv or .json", id="export-path")
                    yield Button("Export", id="export")
                yield DataTable(id="results-table", zebra_stripes=True, cursor_type="row")
                with Horizontal(id="results-charts"):
                    yield ScatterChart(id="scatter")
                    yield BarChart("J/token per configuration", id="jpt-chart")
                    yield PowerChart(id="trace-chart", hint="enter on a trial: its trace")
            with TabPane("Advisor", id="advisor"):
                with Horizontal(classes="row"):
                    yield Input("256", placeholder="tokens", id="adv-tokens")
                    yield Input("128", placeholder="prompt tokens", id="adv-prompt")
                    yield Input("50W", placeholder="budget (50W)", id="adv-budget")
                    yield Input("", placeholder="latency limit (5s)", id="adv-latency")
                    yield Select([(o, o) for o in ("energy", "edp", "latency")], value="energy", allow_blank=False,
                                 id="adv-objective")
                    yield Button("Advise", id="advise", variant="primary")
                with VerticalScroll():
                    yield Static("Ask for a recommendation: tokens, prompt, budget, latency limit.", id="advice-text",
                                 markup=False)
                    yield BarChart("predicted average power (W) against the budget", id="advice-chart")
            with TabPane("Host", id="host"):
                with VerticalScroll():
                    yield Static("Probing power sources…", id="host-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        for table_id, columns in (("queue-table", TRIAL_COLUMNS), ("results-table", TRIAL_COLUMNS),
                                  ("recent-table", ("trial", "prompt", "tok/s", "TTFT ms", "J/token"))):
            self.query_one(f"#{table_id}", DataTable).add_columns(*columns)
        self.query_one("#queue-table", DataTable).focus()  # not a text box, so single-key bindings work at once
        self.load_results()
        self.probe_host()
        self.set_interval(POLL_S, self.poll_database)

    # --- actions ---

    def action_leave_input(self) -> None:
        """Escape leaves a text box, so the single-key bindings work again."""
        self.set_focus(None)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_load(self) -> None:
        self.load_manifest(self.query_one("#manifest-path", Input).value.strip())

    def action_pick(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.query_one("#manifest-path", Input).value = str(path)
                self.load_manifest(str(path))

        self.push_screen(ManifestPicker(), chosen)

    def action_add(self) -> None:
        if self.run_number is None:
            self.notify("load a manifest first: trials are added to its run", severity="warning")
            return
        from energytui.app.machine import default_model_name

        def added(form: dict | None) -> None:
            if form is not None:
                self.add_trials(self.run_number, form)

        self.push_screen(AddTrialScreen(default_model_name()), added)

    def action_remove(self) -> None:
        if (trial_id := self._selected_trial()) is not None:
            self.edit_queue("remove", trial_id)

    def action_move(self, step: int) -> None:
        if (trial_id := self._selected_trial()) is not None:
            self.edit_queue("move", trial_id, step)

    def _selected_trial(self) -> int | None:
        table = self.query_one("#queue-table", DataTable)
        if self.query_one(TabbedContent).active != "queue" or not table.row_count:
            return None
        return int(table.get_row_at(table.cursor_row)[0])

    def action_start(self) -> None:
        if self.running:
            self.notify("a run is already going", severity="warning")
        elif self.run_number is None:
            self.notify("load a manifest first", severity="warning")
        else:
            self.stop_event.clear()
            self.abort_event.clear()
            self.running = True
            self.run_trials(self.run_number)

    def action_pause(self) -> None:
        if self.running:
            self.stop_event.set()
            self.notify("pausing after the current trial")

    def action_stop(self) -> None:
        if self.running:
            self.stop_event.set()
            self.abort_event.set()
            self.notify("stopping: the current trial is marked aborted")

    async def action_quit(self) -> None:
        """q and ctrl+q: quit, asking first during a run (the worker would otherwise run every remaining
        trial after the screen closed: asyncio waits for its executor's threads before the process ends)."""
        if not self.running:
            self.exit()
        elif not isinstance(self.screen, QuitScreen) and not self._quitting:
            self.push_screen(QuitScreen(), self._quit_answered)

    async def action_interrupt(self) -> None:
        """ctrl+c: during a run, as q; otherwise Textual's hint on how to quit."""
        if self.running:
            await self.action_quit()
        else:
            self.action_help_quit()

    def _quit_answered(self, stop: bool | None) -> None:
        if not stop:
            return
        if not self.running:  # the run ended while the question was shown: quit as without a run
            self.exit()
            return
        self._quitting = True
        self.stop_event.set()
        self.abort_event.set(QUIT_REASON)  # the worker stops at its next decode step and posts RunEnded
        self.notify("stopping the run to quit: the current trial is marked aborted")

    def action_toggle_configs(self) -> None:
        self._by_config = not self._by_config
        table = self.query_one("#results-table", DataTable)
        table.clear(columns=True)
        table.add_columns(*(CONFIG_COLUMNS if self._by_config else TRIAL_COLUMNS))
        self.show_results()

    def action_refresh(self) -> None:
        self.load_results()
        if self.run_number is not None:
            self.load_queue(self.run_number)

    @on(Button.Pressed, "#load, #start, #pause, #stop")
    def _queue_button(self, event: Button.Pressed) -> None:
        """The Queue's buttons do what their keys do (action_load, action_start, ...)."""
        getattr(self, f"action_{event.button.id}")()

    @on(Button.Pressed, "#export")
    def _export_pressed(self) -> None:
        self.export(self.query_one("#export-path", Input).value.strip())

    @on(Button.Pressed, "#advise")
    def _advise_pressed(self) -> None:
        values = {name: self.query_one(f"#adv-{name}", Input).value.strip()
                  for name in ("tokens", "prompt", "budget", "latency")}
        self.advise(values, str(self.query_one("#adv-objective", Select).value))

    @on(Input.Changed, "#results-filter")
    def _filter_changed(self) -> None:
        self.show_results()

    @on(DataTable.RowSelected, "#results-table")
    def _trial_selected(self, event: DataTable.RowSelected) -> None:
        if not self._by_config and event.row_key.value is not None:
            self.load_trace(int(event.row_key.value))

    @on(DataTable.HeaderSelected, "#results-table")
    def _sort_results(self, event: DataTable.HeaderSelected) -> None:
        self._sort_reverse = not self._sort_reverse
        event.data_table.sort(event.column_key, key=_sort_key, reverse=self._sort_reverse)

    # --- workers (threads): llama.cpp, SQLite and the advisor never run on the UI thread ---

    def _database(self):
        from energytui.app.queries import database

        return database(self.config.db_path)

    @work(thread=True, exclusive=True, group="load")
    def load_manifest(self, path: str) -> None:
        from energytui.app.runs import queue_file

        try:
            run, queued = queue_file(self.config.db_path, Path(path))
        except UserError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", markup=False, timeout=10)
            return
        self.run_number = run
        self.call_from_thread(self.notify, f"run {run}: {queued} trials queued from {path}")
        self.load_queue(run)

    @work(thread=True, exclusive=True, group="load")
    def add_trials(self, run: int, form: dict) -> None:
        from energytui.app.runs import add_form_trials

        try:
            added = add_form_trials(self.config.db_path, run, form_manifest(form))
        except UserError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", markup=False, timeout=10)
            return
        self.call_from_thread(self.notify, f"added {added} trial(s) to run {run}")
        self.load_queue(run)

    @work(thread=True, group="queue-edit")
    def edit_queue(self, action: str, trial_id: int, step: int = 0) -> None:
        with self._database() as store:
            done = store.remove_pending(trial_id) if action == "remove" else store.move_pending(trial_id, step)
        if not done:
            self.call_from_thread(self.notify, f"trial {trial_id}: only pending trials can be "
                                  f"{'removed' if action == 'remove' else 'moved'} (and not past the ends)",
                                  severity="warning")
        elif self.run_number is not None:
            self.load_queue(self.run_number)

    @work(thread=True, exclusive=True, group="runner")
    def run_trials(self, run: int) -> None:
        from energytui.app.runs import running

        status, error, counts = "failed", None, {}
        try:
            with running(self.config.db_path, self.config.meter or MeterOptions()) as live:
                status = live.run(run, lambda event: self.post_message(TrialEvent(event)),
                                  stop=self.stop_event, abort=self.abort_event)
                statuses = [t["status"] for t in live.trials(run)]
                counts = {s: statuses.count(s) for s in STATUSES if s in statuses}
        except UserError as exc:
            error = str(exc)
        self.post_message(RunEnded(status, error, counts))

    @work(thread=True, exclusive=True, group="queue")
    def load_queue(self, run: int) -> None:
        with self._database() as store:
            trials = sorted(store.trials(run=run), key=lambda t: t["seq"])  # run order, which moves change
        self.call_from_thread(self._fill, "queue-table", trials)  # the cursor follows a moved trial
        counts = {s: sum(t["status"] == s for t in trials) for s in STATUSES}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        self.call_from_thread(self.query_one("#queue-status", Static).update, f"run {run}: {summary}")

    @work(thread=True, exclusive=True, group="results")
    def load_results(self) -> None:
        with self._database() as store:
            self._results = store.trials()
        self.call_from_thread(self.show_results)

    @work(thread=True, exclusive=True, group="poll")
    def poll_database(self) -> None:
        """Reload tables only when the trials changed (e.g. `energytui run` in another terminal)."""
        with self._database() as store:
            version = store.change_stamp()
        if version != self._db_version:
            self._db_version = version
            self.call_from_thread(self.action_refresh)

    @work(thread=True, exclusive=True, group="trace")
    def load_trace(self, trial_id: int) -> None:
        from energytui.app.queries import trace

        with self._database() as store:
            shown = trace(store, trial_id)
        chart = self.query_one("#trace-chart", PowerChart)
        self.call_from_thread(chart.show, shown.samples, shown.marks, shown.label)

    @work(thread=True, exclusive=True, group="advisor")
    def advise(self, values: dict, objective: str) -> None:
        from energytui.advisor.recommend import Request, advise, parse_duration, parse_power, render
        from energytui.advisor.service import current_fit, has_gpu_trials, local_host_id

        try:
            tokens, prompt = _whole(values["tokens"], "tokens"), _whole(values["prompt"], "prompt tokens")
            budget = parse_power(values["budget"]) if values["budget"] else None
            latency = parse_duration(values["latency"]) if values["latency"] else None
            with self._database() as store:
                host = local_host_id(store)
                fit, _ = current_fit(store, host)
                request = Request(tokens, prompt, budget, latency, objective)
                result = advise(fit, request, has_gpu_trials(store, host))
        except UserError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", markup=False, timeout=10)
            self.call_from_thread(self.query_one("#advice-text", Static).update, f"Cannot advise: {exc}")
            return
        shown = [p for p in ([result.recommendation] if result.recommendation else []) + result.alternatives
                 + result.rejected if p.values]
        chart = self.query_one("#advice-chart", BarChart)
        self.call_from_thread(self.query_one("#advice-text", Static).update, render(result))
        self.call_from_thread(chart.show, [str(i + 1) for i in range(len(shown))],
                              [p.values["avg_power_w"] for p in shown],
                              "predicted average power (W) per candidate (1 = recommended) against the budget",
                              budget)

    @work(thread=True, exclusive=True, group="export")
    def export(self, path: str) -> None:
        from energytui.app.queries import export

        target = Path(path)
        if target.suffix not in (".csv", ".json"):
            self.call_from_thread(self.notify, f"export: {path!r} must end in .csv or .json", severity="error",
                                  markup=False)
            return
        with self._database() as store:
            text = export(store, target.suffix[1:])
        try:
            target.write_text(text)
        except OSError as exc:
            self.call_from_thread(self.notify, f"export: cannot write {path} ({exc.strerror})", severity="error",
                                  markup=False)
            return
        self.call_from_thread(self.notify, f"exported to {path}")

    @work(thread=True, exclusive=True, group="host")
    def probe_host(self) -> None:
        from energytui.app import machine

        described = machine.describe(self.config.meter or MeterOptions())
        host, report = described.host, described.power
        lines = [f"{host['hostname']}: {host['cpu']}, {host['cores']} CPUs, {host['ram_gb']} GiB RAM",
                 f"GPU: {host['gpu'] or 'none visible through NVML'}; llama-cpp-python {host['llama_cpp']}, "
                 f"GPU offload {'yes' if host['gpu_offload'] else 'no'}", "", "Power sources:"]
        for s in report.sources:
            lines.append(f"  ok  {', '.join(s['devices'])}: {s['tag']}, {s['achieved_hz']:.0f} Hz, "
                         f"updates every {s['update_period_ms']:.3g} ms — {s['method']}")
        for u in report.unavailable:
            lines.append(f"  missing  {u.name}: {u.reason}" + (f" — fix: {u.remedy}" if u.remedy else ""))
        lines.append("")
        lines.append("Energy is measured." if report.real else
                     "No power counter can be read: energy figures are ESTIMATES.")
        self.call_from_thread(self.query_one("#host-text", Static).update, "\n".join(lines))

    # --- messages from the runner ---

    def on_trial_event(self, message: TrialEvent) -> None:
        event = message.event
        trial = event.trial
        info = self.query_one("#live-info", Static)
        if event.kind in ("trial_start", "cooldown"):
            what = "cooling down before" if event.kind == "cooldown" else "running"
            info.update(f"{what} trial {event.index}/{event.total}: "
                        f"{config_label(trial)} · prompt {trial['prompt_id']}")
            self.load_queue(trial["run"])
        elif event.kind == "tokens":
            rate = f"{event.tokens_per_s:.1f} tok/s" if event.tokens_per_s else "…"
            info.update(f"trial {event.index}/{event.total}: {config_label(trial)} · prompt {trial['prompt_id']} · "
                        f"{event.tokens} tokens · {rate}")
            if event.samples:
                tags = sorted({s.source for s in event.samples})
                self.query_one(PowerChart).show([(s.t_ns, s.device, s.power_w) for s in event.samples],
                                                {"decode": event.t_first_ns}, "/".join(tags))
        elif event.kind == "trial_end":
            self._trial_ended(trial)

    def _trial_ended(self, trial: dict) -> None:
        recent = self.query_one("#recent-table", DataTable)
        recent.add_row(trial["id"], trial["prompt_id"], f"{trial['decode_tps'] or 0:.1f}",
                       f"{trial['ttft_ms'] or 0:.0f}",
                       f"{trial['j_per_token']:.4f} {TAG_LABELS.get(trial['energy_tag'], '')}"
                       if trial.get("j_per_token") is not None else trial["status"])
        rate = f" · sampled at {trial['sample_hz']:.0f} Hz" if trial.get("sample_hz") else ""
        self.query_one("#live-info", Static).update(
            f"trial {trial['id']} {trial['status']}{rate} · energy source {trial.get('energy_source') or '–'}")
        self.load_queue(trial["run"])
        self.load_results()

    def on_run_ended(self, message: RunEnded) -> None:
        self.running = False
        if self._quitting:
            self.exit(_quit_message(self.run_number, message))
            return
        if message.error:
            self.notify(message.error, severity="error", markup=False, timeout=10)
        else:
            self.notify(f"run {message.status}")
        if self.run_number is not None:
            self.load_queue(self.run_number)
        self.load_results()

    # --- tables and charts ---

    def _fill(self, table_id: str, trials: list[dict]) -> None:
        """Refill a table, keeping the cursor on the same trial (or the same row) when it can."""
        table = self.query_one(f"#{table_id}", DataTable)
        previous = table.get_row_at(table.cursor_row)[0] if table.row_count else None
        row = table.cursor_row
        table.clear()
        for t in trials:
            table.add_row(*trial_cells(t), key=str(t["id"]))
        ids = [t["id"] for t in trials]
        if trials:
            table.move_cursor(row=ids.index(previous) if previous in ids else min(row, len(ids) - 1))

    def show_results(self) -> None:
        needle = self.query_one("#results-filter", Input).value.strip().lower()
        shown = [t for t in self._results if not needle or needle in " ".join(map(str, trial_cells(t))).lower()]
        if self._by_config:
            self._fill_configs(shown)
        else:
            self._fill("results-table", shown)
        done = [t for t in shown if t["status"] == "done" and t.get("energy_j") is not None]
        tags = sorted({t["energy_tag"] for t in done if t.get("energy_tag")})
        tag = "ESTIMATED" if "estimated" in tags else "/".join(tags)
        self.query_one(ScatterChart).show([(t["e2e_ms"] / 1e3, t["energy_j"]) for t in done], tag)
        per_config: dict[str, list[float]] = {}
        for t in done:
            per_config.setdefault(config_label(t), []).append(t["j_per_token"])
        labels = list(per_config)
        self.query_one("#jpt-chart", BarChart).show(
            [str(i + 1) for i in range(len(labels))], [sum(v) / len(v) for v in per_config.values()],
            f"J/token per config{' ' + tag if tag else ''}")


    def _fill_configs(self, trials: list[dict]) -> None:
        table = self.query_one("#results-table", DataTable)
        table.clear()
        for row in summarise(trials):
            table.add_row(row["label"], f"{row['done']}/{row['trials']}", row["ttft_ms"].fmt(0),
                          row["decode_tps"].fmt(1), row["e2e_ms"].fmt(0), energy_cell(row, "j_per_token", 4),
                          energy_cell(row, "avg_power_w", 1), key=row["config_id"])


def _quit_message(run: int | None, ended: RunEnded) -> str:
    """What the terminal shows after quitting during a run: how the run ended, from the database."""
    if ended.error:
        return f"energytui: run {run} ended with an error: {ended.error}"
    counts = ", ".join(f"{n} {s}" for s, n in ended.counts.items())
    left = ended.counts.get("pending", 0) + ended.counts.get("aborted", 0)
    resume = "; load its manifest again (or `energytui run MANIFEST --resume`) to finish it" if left else ""
    return f"energytui: run {run} {ended.status}: {counts}{resume}"


def _whole(text: str, name: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"{name} {text!r}: give a whole number ≥ 1")
    return int(text)


def _sort_key(value):
    """Numbers sort as numbers, '–' last, text as text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def create_app(db_path: Path, manifest: Path | None = None, meter: MeterOptions | None = None) -> EnergyApp:
    """The app factory, shared by `energytui` and the tests."""
    return EnergyApp(AppConfig(Path(db_path), manifest, meter))
