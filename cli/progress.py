"""The progress display of `energytui run`: a rich progress bar on a terminal, one line per trial elsewhere."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.progress import BarColumn, Progress, ProgressColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from energytui.app.views import TAG_LABELS, config_label

from .tables import console, terminal_width, wrap

if TYPE_CHECKING:  # the runs module loads llama.cpp; progress only reads its events
    from energytui.app.runs import Event

_BAR = 20
REFRESH_HZ = 2  # redraws while a trial runs: cheap beside llama.cpp and the power sampler on a few cores


def for_stream(stream, columns: int | None = None):
    """The bar on a terminal; on a file, a pipe or a terminal that cannot move its cursor (TERM=dumb), one
    line per finished trial."""
    if stream.isatty() and os.environ.get("TERM") != "dumb":
        return BarProgress(stream, columns)
    return LineProgress(stream, columns)


def trial_title(event: Event) -> str:
    """'trial 3/8 quick: Q4_1 cpu t=2 … sd-01 r0': which trial, its configuration and prompt."""
    trial = event.trial
    prompt = "" if trial["prompt_id"] == (trial["suite"] or trial["prompt_id"]) else f" {trial['prompt_id']}"
    retry = f" (trial {trial['retry_of']} again: it stalled)" if trial.get("retry_of") is not None else ""
    return f"trial {event.index}/{event.total} {config_label(trial)}{prompt} r{trial['repetition']}{retry}"


def trial_outcome(event: Event) -> str:
    """A finished trial's tokens, speed and energy, or why it did not finish."""
    trial = event.trial
    if trial["status"] != "done":
        return f"{trial['status'].upper()}: {trial['error']}"
    energy = ""
    if trial.get("j_per_token") is not None:
        energy = f", {trial['j_per_token']:.4f} J/tok {TAG_LABELS.get(trial['energy_tag'], trial['energy_tag'])}"
    stalled = f"; STALLED {trial['stalled_ms'] / 1e3:.1f} s: left out of the means" if trial.get("stalled_ms") else ""
    return (f"{trial['gen_tokens']} tok, TTFT {trial['ttft_ms']:.0f} ms, "
            f"decode {trial['decode_tps'] or 0:.1f} tok/s{energy}{stalled}")


def window_outcome(event: Event) -> str:
    """A closed steady window's figures: its requests, steady powers and energy per token, with its source."""
    window = event.window
    assert window is not None
    extra = sum(r.trial_id is None for r in window.requests)
    head = (f"steady window of {config_label(event.trial)}: {len(window.requests)} requests ({extra} extra) "
            f"over {window.window_s:.1f} s")
    if window.busy_power_w is None:
        return f"{head}: no energy ({'; '.join(window.notes)})"
    tag = TAG_LABELS.get(window.source or "", window.source)
    busy = f"{window.busy_power_w:.1f} ± {window.busy_uncertainty_w or 0:.1f} W busy"
    tokens, gross = max(window.tokens, 1), window.busy_power_w * window.busy_s
    if window.idle_power_w is None or window.net_j is None:
        return f"{head}: {busy}, {gross / tokens:.4f} J/tok {tag}"
    net_u = (window.net_uncertainty_w or 0) * window.busy_s / tokens
    return (f"{head}: {busy}, {window.idle_power_w:.1f} W idle → {gross / tokens:.4f} J/tok, "
            f"net {window.net_j / tokens:.4f} ± {net_u:.4f} J/tok {tag}")


class LineProgress:
    """One line per finished trial, wrapped to $COLUMNS when set: for logs, pipes and tests. A fleet's events
    name their host (`run --cluster`), which starts the line."""

    def __init__(self, stream, columns: int | None = None):
        self.stream = stream
        self.columns = columns or terminal_width()

    def on_event(self, event: Event, host: str | None = None, phase: str | None = None) -> None:
        if event.kind == "trial_end":
            filled = _BAR * (event.index - 1) // max(event.total, 1)
            line = f"[{'#' * filled}{'.' * (_BAR - filled)}] {trial_title(event)}  {trial_outcome(event)}"
        elif event.kind == "window":
            line = window_outcome(event)
        else:
            return
        self.stream.write(wrap(_from(host) + line, self.columns, "    ") + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


def _from(host: str | None) -> str:
    return f"{host}: " if host else ""


def fleet_progress(stream, hosts: list[str | None], columns: int | None = None):
    """A fleet's progress (`run --cluster`): a bar per host on a terminal, else one line per finished trial
    starting with its host's name. Its on_event(event, host, phase) takes the events the hosts send the head."""
    if stream.isatty() and os.environ.get("TERM") != "dumb":
        return BarProgress(stream, columns, hosts=hosts)
    return LineProgress(stream, columns)


class BarProgress:
    """On a terminal: trials done/total on a bar with the time elapsed and left, the running trial beneath
    it with live tokens/s, and each finished trial's line printed above. Redraws at REFRESH_HZ; events
    only change what the next redraw shows. A fleet's (`hosts`): a bar and a running trial per host, each
    line starting with its host's name."""

    def __init__(self, stream, columns: int | None = None, clock=None, hosts: list[str | None] | None = None):
        self.console = console(stream, columns, terminal=True)
        named = [TextColumn("{task.description}", table_column=Column(no_wrap=True))] if hosts else []
        self.bar = _TrialBar(
            *named, TextColumn("{task.completed}/{task.total} trials", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=20 if hosts else 24), TimeElapsedColumn(), _TimeLeft(),
            console=self.console, refresh_per_second=REFRESH_HZ, redirect_stdout=False, get_time=clock,
            running=dict.fromkeys(hosts or [None], ("", "")))
        self.tasks: dict[str | None, TaskID] = {}

    def on_event(self, event: Event, host: str | None = None, phase: str | None = None) -> None:
        if event.kind == "window":
            self.console.print(Text(wrap(_from(host) + window_outcome(event), self.console.width, "    ")))
            return
        finished = event.kind == "trial_end"
        self.bar.running[host] = ("", "") if finished else (_from(host) + trial_title(event),
                                                            _live_figures(event, phase))
        if host not in self.tasks:  # the total is known from the host's first event
            self.tasks[host] = self.bar.add_task(host or "trials", total=event.total, completed=event.index - 1,
                                                 done_before=event.index - 1)
            if len(self.tasks) == 1:
                self.bar.start()
        self.bar.update(self.tasks[host], total=event.total)  # a stalled trial's re-run at the end adds one
        if finished:  # the bar first, so that the line printed above it is not followed by a stale one
            self.bar.update(self.tasks[host], completed=event.index, refresh=True)
            line = wrap(f"{_from(host)}{trial_title(event)}  {trial_outcome(event)}", self.console.width, "    ")
            self.console.print(Text(line))

    def close(self) -> None:
        """Stop redrawing and leave the last state on screen (also on Ctrl-C or an error)."""
        try:
            self.bar.stop()
        except OSError:  # the terminal is gone (SIGHUP): nothing left to draw on
            pass


def _live_figures(event: Event, phase: str | None = None) -> str:
    """The running trial's figures; `phase`: its phase where the event carries no LiveTrial (a fleet's)."""
    if event.kind == "cooldown":
        return f"cooldown {event.trial['cooldown_s']:g} s"
    phase = phase or (event.live.phase if event.live is not None else None)
    if phase in ("idle", "extra requests"):
        return f"{phase}…"
    if event.kind == "tokens":
        rate = f"{event.tokens_per_s:.1f}" if event.tokens_per_s else "…"
        return f"{event.tokens} tok  {rate} tok/s"
    return "prefill…"


class _TrialBar(Progress):
    """rich's progress rows, and beneath them the running trials: (title, figures) each."""

    def __init__(self, *columns, running: dict[str | None, tuple[str, str]], **options):
        self.running = running  # each host's running trial (key None: a local run's); drawn from the start
        super().__init__(*columns, **options)

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        for title, figures in self.running.values():
            yield _RunningTrial(title, figures)


class _RunningTrial:
    """One line: the trial's title cut to fit the width, then its live figures whole."""

    def __init__(self, title: str, figures: str):
        self.title, self.figures = title, figures

    def __rich_console__(self, console, options):
        line = Text(self.title, no_wrap=True)
        room = options.max_width - (cell_len(self.figures) + 2 if self.figures else 0)
        line.truncate(max(room, 1), overflow="ellipsis")
        yield Text.assemble(line, "  ", self.figures, no_wrap=True) if self.figures else line


class _TimeLeft(ProgressColumn):
    """Time left at this run's pace so far: seconds per trial finished here × trials left. (rich's own
    estimate measures between trial ends and says nothing until two trials have ended.)"""

    def render(self, task) -> Text:
        finished_here = task.completed - task.fields["done_before"]
        if not finished_here or task.elapsed is None:
            return Text("left -:--:--", style="progress.remaining")
        left = task.elapsed / finished_here * (task.total - task.completed)
        return Text(f"left {timedelta(seconds=round(left))}", style="progress.remaining")
