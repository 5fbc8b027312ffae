"""The energytui app: Queue, Live, Results, Advisor and Host in tabs, over one SQLite database.

Each tab is a pane (tui/panes/) that owns its widgets, keys and workers; this class only composes them,
routes the runner's messages between them and handles quitting. Trials run in a worker thread through the
application layer (the same `running` as `energytui run`), database reads and advisor fits in workers too,
so the UI thread never waits on llama.cpp, SQLite or scikit-learn. The database stays the source of truth:
trials queued by `energytui run` in another terminal appear within POLL_S.
"""

from __future__ import annotations

import gc
from pathlib import Path

from typing import TYPE_CHECKING, Iterable

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from energytui.app import UserError

from .commands import help_lines, palette
from .dialogs import AddTrialScreen, HelpScreen, ManifestPicker, QuitScreen
from .messages import RunEnded, TrialEvent, TrialsChanged
from .pane import AppConfig, Pane, taken_down
from .panes.advisor import AdvisorPane
from .panes.host import HostPane
from .panes.live import LivePane
from .panes.queue import QueuePane
from .panes.results import ResultsPane

if TYPE_CHECKING:
    from energytui.app.machine import MeterOptions

__all__ = ["AddTrialScreen", "AppConfig", "EnergyApp", "HelpScreen", "ManifestPicker", "QUIT_REASON", "QuitScreen",
           "create_app"]

POLL_S = 2.0  # how often the app looks for trials written by another process (`energytui run`)
QUIT_REASON = "stopped by the user: the app was quit"
HOME = {"queue": "#queue-table", "live": "#recent-table", "results": "#results-table", "advisor": "#advise",
        "host": "#host-scroll"}  # what has focus in each tab: keys reach the tab's bindings, not a text box


class EnergyApp(App[str]):
    """Returns (from run) what to tell the terminal after quitting during a run, else None."""

    TITLE = "energytui"
    CSS = """
    TabPane { padding: 0 1; height: 1fr; }
    .row { height: auto; }
    .row Input { width: 1fr; }
    .row Button { margin-left: 1; min-width: 8; }
    #queue-table, #results-table { height: 1fr; min-height: 6; }
    #live-info, #queue-status, #advice-text, #host-text { height: auto; }
    PowerChart, ScatterChart, BarChart { height: 1fr; min-height: 8; }
    #results-charts { height: 1fr; }
    HelpScreen { align: center middle; }
    #help-box { width: 100; max-width: 100%; height: auto; max-height: 100%; border: round $accent;
                background: $surface; padding: 0 1; }
    QuitScreen { align: center middle; }
    #quit-box { width: 60; height: auto; border: round $error; background: $surface; padding: 0 1; }
    #quit-question { text-style: bold; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Quit (asks first during a run, whose current trial is then aborted)"),
        Binding("ctrl+c", "interrupt", show=False),
        Binding("question_mark", "help", "Help", tooltip="Every key and what it does"),
        *(Binding(str(number), f"tab('{tab}')", f"Show the {tab.capitalize()} tab", show=False,
                  tooltip=f"The {tab.capitalize()} tab") for number, tab in enumerate(HOME, start=1)),
        Binding("s", "start", "Start", tooltip="Start (or resume) the loaded run's pending trials"),
        Binding("p", "pause", "Pause", tooltip="Pause the run after the current trial"),
        Binding("x", "stop", "Stop", tooltip="Stop the run now: the current trial is marked aborted, finished "
                "ones are kept"),
        Binding("r", "refresh", "Refresh", show=False,
                tooltip="Reload the tables from the database (done every 2 s anyway when it changed)"),
        Binding("escape", "leave_input", "Leave input", show=False,
                tooltip="Leave a text box for the tab's table, so that single keys work again"),
    ]

    def __init__(self, config: AppConfig):
        super().__init__()
        self.config = config
        self.queue, self.live = QueuePane(config), LivePane(config)
        self.results, self.advisor, self.host = ResultsPane(config), AdvisorPane(config), HostPane(config)
        self.panes: dict[str, Pane] = {"queue": self.queue, "live": self.live, "results": self.results,
                                       "advisor": self.advisor, "host": self.host}  # by tab id, in tab order
        self._quitting = False  # the run was stopped to quit: exit once it has ended
        self._db_version: tuple | None = None
        self.database_error: UserError | None = None  # the database cannot be opened: the app exits with it

    @property
    def running(self) -> bool:
        return self.queue.running

    @property
    def run_number(self) -> int | None:
        return self.queue.run_number

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="queue"):
            for tab_id, pane in self.panes.items():
                with TabPane(tab_id.capitalize(), id=tab_id):
                    yield pane
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._focus_home()

    def on_ready(self) -> None:
        """The first screen is painted: only now open the database (sqlite_utils takes a few tenths of a
        second to import), off the UI thread, then the panes read it."""
        _spare_from_collection()
        self.open_database()

    @work(thread=True, exclusive=True, group="open")
    def open_database(self) -> None:
        from energytui.app.queries import database

        try:
            with database(self.config.db_path):  # checked, created or migrated before any pane reads it
                pass
        except UserError as exc:
            self.database_error = exc
            self.call_from_thread(self.exit)
            return
        self.call_from_thread(self._database_open)

    def _database_open(self) -> None:
        _spare_from_collection()  # what opening it imported (sqlite_utils, numpy)
        for pane in self.panes.values():
            pane.after_open()
        self.set_interval(POLL_S, self.poll_database)

    def _focus_home(self) -> None:
        self.query_one(HOME[self.query_one(TabbedContent).active]).focus()

    def on_tabbed_content_tab_activated(self) -> None:
        self._focus_home()

    # --- actions ---

    def action_leave_input(self) -> None:
        """Escape leaves a text box for the tab's table (or button), so the single-key bindings work again."""
        self._focus_home()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_lines(self)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from palette(self, screen)
        yield from (c for c in super().get_system_commands(screen) if c.title != "Quit")  # ours asks first

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Start while no run goes (greyed until a run is loaded), pause and stop during one: the footer
        shows what can be done now."""
        if action == "start":
            return False if self.running else (None if self.run_number is None else True)
        if action in ("pause", "stop"):
            return self.running
        return True

    def action_start(self) -> None:
        self.queue.start()
        self.refresh_bindings()

    def action_pause(self) -> None:
        self.queue.pause()

    def action_stop(self) -> None:
        self.queue.stop()

    def action_refresh(self) -> None:
        self.results.reload()
        self.queue.reload()
        self.live.follow()

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
        self.queue.stop(QUIT_REASON)  # the worker stops at its next decode step and posts RunEnded
        self.notify("stopping the run to quit: the current trial is marked aborted")

    # --- messages between the panes ---

    def on_trial_event(self, message: TrialEvent) -> None:
        if not self.is_running:  # the runner's message arrived while the app shut down: its screens are gone
            return
        self.refresh_bindings()
        self.live.show(message.event)
        if message.event.kind == "trial_end":
            self.results.reload()

    def on_trials_changed(self, message: TrialsChanged) -> None:
        if not self.is_running:
            return
        self.refresh_bindings()
        self.results.reload()

    def on_run_ended(self, message: RunEnded) -> None:
        if not self.is_running:  # a run that ended as the app quit: the run row already says how
            return
        self.refresh_bindings()
        self.live.run_ended()
        if self._quitting:
            self.exit(_quit_message(self.run_number, message))
            return
        if message.error:
            self.notify(message.error, severity="error", markup=False, timeout=10)
        else:
            self.notify(f"run {message.status}")
        self.results.reload()

    @work(thread=True, exclusive=True, group="poll")
    def poll_database(self) -> None:
        """Reload tables only when the trials changed (e.g. `energytui run` in another terminal)."""
        from energytui.app.queries import database

        with database(self.config.db_path) as store:
            version = store.change_stamp()
        if version != self._db_version:
            self._db_version = version
            self.call_from_thread(self._refresh_unless_closing)

    def _refresh_unless_closing(self) -> None:
        if not taken_down(self.screen):
            self.action_refresh()


def _spare_from_collection() -> None:
    """Exempt what the app has built and imported so far from the cyclic garbage collector's full passes:
    over the whole heap those paused the UI thread for up to 0.1 s, mid-redraw (bench/tui.py). Objects
    still go when their last reference does."""
    gc.freeze()


def _quit_message(run: int | None, ended: RunEnded) -> str:
    """What the terminal shows after quitting during a run: how the run ended, from the database."""
    if ended.error:
        return f"energytui: run {run} ended with an error: {ended.error}"
    counts = ", ".join(f"{n} {s}" for s, n in ended.counts.items())
    left = ended.counts.get("pending", 0) + ended.counts.get("aborted", 0)
    resume = "; load its manifest again (or `energytui run MANIFEST --resume`) to finish it" if left else ""
    return f"energytui: run {run} {ended.status}: {counts}{resume}"


def create_app(db_path: Path, manifest: Path | None = None, meter: MeterOptions | None = None) -> EnergyApp:
    """The app factory, shared by `energytui` and the tests."""
    return EnergyApp(AppConfig(Path(db_path), manifest, meter))
