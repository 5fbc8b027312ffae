"""The Live tab: the running trial's phase, tokens and power trace, and the latest finished trials.

A run of this app: the runner thread updates a LiveTrial (energytui.app.runs) at each phase and token, and
this pane redraws from it on its own timer (REDRAW_HZ), so prefill and the idle windows, which send no token
events, are seen as they happen. A run of another process (`energytui run` on the same database): the pane
reads the database whenever the app sees it change (tui/app.py's poll); it holds the running trial's row,
and each finished trial with its trace.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from energytui.app.views import TAG_LABELS, config_label

from ..charts import PowerChart
from ..pane import Pane
from ..trials import FittedTable, shown_status

if TYPE_CHECKING:  # the runs module loads llama.cpp; the pane gets its objects from the runner's events
    from energytui.app.queries import Trace
    from energytui.app.runs import Event, LiveTrial, LiveView

REDRAW_HZ = 5.0  # the power chart and the info line, from the running trial's samples so far
RECENT_ROWS = 12  # finished trials listed, newest first: the table never grows past this
FINISHED = ("done", "failed", "aborted")
PHASE_WORDS = {"cooldown": "cooldown", "loading": "loading the model and warming up",
               "idle": "idle window (idle power)", "re-warm": "re-warm before prefill (busy, in no window)",
               "prefill": "prefill", "decode": "decode",
               "idle after": "idle window after the last token",
               "extra requests": "extra requests to fill the steady-state window"}


class LivePane(Pane):
    DEFAULT_CSS = """
    LivePane #recent-table { height: 1fr; max-height: 14; }
    """

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.live: LiveTrial | None = None  # this app's run, while it runs
        self._drawn: tuple | None = None  # what the chart shows now, to skip redrawing the same
        self._traced: int | None = None  # the finished trial whose stored trace the chart shows

    def compose(self) -> ComposeResult:
        yield Static("No trial running.", id="live-info", markup=False)
        yield PowerChart(id="power-chart")
        yield FittedTable(id="recent-table", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("trial", "status", "prompt", "tok/s", "TTFT ms", "J/token")
        self.set_interval(1 / REDRAW_HZ, self.redraw)

    def after_open(self) -> None:
        self.follow()

    # --- this app's run ---

    def show(self, event: Event) -> None:
        """A runner event: its LiveTrial is polled from now on; a finished trial joins the recent table."""
        self.live = event.live
        if event.kind == "trial_end":
            self._add_recent(event.trial)
        if event.kind != "tokens":  # a new trace or a final state at once; tokens wait for the timer's tick
            self.redraw()

    def run_ended(self) -> None:
        """The app's run ended: draw its last state, then follow the database again."""
        self.redraw()
        self.live = None

    def redraw(self) -> None:
        """The timer's tick: chart and info line from the running trial now (nothing when nothing changed)."""
        view = self.live.view() if self.live is not None else None
        if view is None:
            return
        last = view.samples[-1].t_ns if view.samples else 0
        drawn = (view.index, view.phase, view.since_ns, view.tokens, len(view.samples), last)
        if drawn == self._drawn:
            return
        self._drawn, self._traced = drawn, None
        self.query_one(PowerChart).show([(s.t_ns, s.device, s.power_w) for s in view.samples], dict(view.marks),
                                        source_tag(view.samples), origin_ns=view.since_ns)
        self.query_one("#live-info", Static).update(live_text(view, time.monotonic_ns()))

    def _add_recent(self, trial: dict) -> None:
        table = self.query_one(DataTable)
        rows = [trial_row(trial)] + [tuple(table.get_row_at(i)) for i in range(min(table.row_count, RECENT_ROWS - 1))]
        fill_recent(table, rows)

    # --- a run of another process, read from the database ---

    def follow(self) -> None:
        """Show the database's latest run, unless this app runs one (its own view is better)."""
        if self.live is None and self.config.db_path.is_file():
            self.read_database()

    @work(thread=True, exclusive=True, group="live-follow")
    def read_database(self) -> None:
        from energytui.app.queries import trace

        with self.database() as store:
            running = store.running_trials()
            fleet = len(running) > 1 or any(t.get("host_name") for t in running)
            if fleet:  # every host's run
                trials = [t for run in sorted({t["run"] for t in running}) for t in store.trials(run=run)]
            else:
                runs = store.run_numbers()
                run = running[-1]["run"] if running else (runs[-1] if runs else None)
                trials = store.trials(run=run) if run is not None else []
            finished = sorted((t for t in trials if t["status"] in FINISHED),
                              key=lambda t: (t["finished_at"] or "", t["id"]), reverse=True)[:RECENT_ROWS]
            newest = finished[0]["id"] if finished else None
            shown = trace(store, newest) if newest is not None and newest != self._traced else None
        self.show_latest(self._show_database, running, len(trials), finished, shown, newest)

    def _show_database(self, running: list[dict], total: int, finished: list[dict], shown: Trace | None,
                       newest: int | None) -> None:
        if self.live is not None:  # this app started a run meanwhile: its own view is better
            return
        fill_recent(self.query_one(DataTable), [trial_row(t) for t in finished])
        if shown is not None:
            self._traced, self._drawn = newest, None
            self.query_one(PowerChart).show(shown.samples, shown.marks, f"last finished: {shown.label}")
        if len(running) > 1 or any(t.get("host_name") for t in running):
            text = "\n".join(["A fleet's run, from the database (another process runs it), per host:"] +
                             [f"  {t.get('host_name') or t['host_id']}: run {t['run']}, "
                              f"{_running_text(t, t['run_total'])}" for t in running])
        elif running:
            text = f"run {running[0]['run']}, from the database (another process runs it): " \
                   f"{_running_text(running[0], total)}"
        elif finished:
            text = f"No trial running. Last: {finished_text(finished[0])}"
        else:
            text = "No trial running."
        self.query_one("#live-info", Static).update(text)


def _running_text(trial: dict, total: int) -> str:
    return (f"trial {trial['seq'] + 1}/{total} running since {(trial['started_at'] or '')[11:19]} · "
            f"{config_label(trial)} · prompt {trial['prompt_id']} · its tokens and power are stored, and shown "
            "here, when it ends")


def live_text(view: LiveView, now_ns: int) -> str:
    """The info line: which trial, its phase and for how long, its tokens and decode rate."""
    trial = view.trial
    what = f"{config_label(trial)} · prompt {trial['prompt_id']}"
    if view.phase in FINISHED:
        return f"trial {view.index}/{view.total}: {finished_text(trial)}"
    if view.phase == "cooldown":
        return f"cooldown before trial {view.index}/{view.total} ({what}) · {_elapsed(view, now_ns)}"
    text = f"trial {view.index}/{view.total}: {what} · {PHASE_WORDS.get(view.phase, view.phase)} · " \
           f"{_elapsed(view, now_ns)}"
    if view.tokens:
        rate = f"{view.tokens_per_s:.1f} tok/s" if view.tokens_per_s else "… tok/s"
        text += f" · {view.tokens} tokens · {rate}"
    return text


def _elapsed(view: LiveView, now_ns: int) -> str:
    started = view.marks.get(view.phase, view.since_ns)
    return f"{max(now_ns - started, 0) / 1e9:.1f} s"


def finished_text(trial: dict) -> str:
    """A finished trial in one line, its energy source named (estimated or measured)."""
    rate = f" · sampled at {trial['sample_hz']:.0f} Hz" if trial.get("sample_hz") else ""
    tokens = f" · {trial['gen_tokens']} tokens" if trial.get("gen_tokens") else ""
    speed = f" · {trial['decode_tps']:.1f} tok/s" if trial.get("decode_tps") else ""
    return (f"trial {trial['id']} {trial['status']}{tokens}{speed}{rate} · "
            f"energy source {trial.get('energy_source') or '–'}")


def source_tag(samples: list) -> str:
    """Where the watts come from, per device: e.g. 'cpu ESTIMATED'."""
    pairs = sorted({(s.device, s.source) for s in samples})
    return ", ".join(f"{device} {TAG_LABELS.get(source, source)}" for device, source in pairs)


def trial_row(trial: dict) -> tuple:
    energy = (f"{trial['j_per_token']:.4f} {TAG_LABELS.get(trial['energy_tag'], '')}".strip()
              if trial.get("j_per_token") is not None else "–")
    which = f"{trial['id']} {trial['host_name']}" if trial.get("host_name") else trial["id"]  # a fleet's: its host
    return (which, shown_status(trial), trial["prompt_id"], _figure(trial.get("decode_tps"), ".1f"),
            _figure(trial.get("ttft_ms"), ".0f"), energy)


def _figure(value: float | None, spec: str) -> str:
    """A measured figure, or – where there is none (a failed trial, or a log that did not record it)."""
    return "–" if value is None else format(value, spec)


def fill_recent(table: DataTable, rows: list[tuple]) -> None:
    """The newest RECENT_ROWS rows, newest first, unless the table shows them already."""
    rows = rows[:RECENT_ROWS]
    if [tuple(table.get_row_at(i)) for i in range(table.row_count)] == [tuple(r) for r in rows]:
        return
    table.clear()
    table.add_rows(rows)
