"""The energytui app: Queue, Live, Results, Advisor and Host in tabs, over one SQLite database.

Each tab is a pane (tui/panes/) that owns its widgets, keys and workers; this class only composes them,
routes the runner's messages between them and handles quitting. Trials run in a worker thread through the
application layer (the same `running` as `energytui run`), database reads and advisor fits in workers too,
so the UI thread never waits on llama.cpp, SQLite or scikit-learn. The database stays the source of truth:
trials queued by `energytui run` in another terminal appear within POLL_S.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import signal
import sys
import termios
import threading
import time
from pathlib import Path

from typing import TYPE_CHECKING, Iterable

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from energytui.app import UserError, describe_signal

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
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # as `energytui run` handles (engine/interrupts.py)
HUNG_UP_GRACE_S = 5.0  # after a hang-up, how long the app may take to close before the process just ends
HOME = {"queue": "#queue-table", "live": "#recent-table", "results": "#results-table", "advisor": "#advise",
        "host": "#host-scroll"}  # what has focus in each tab: keys reach the tab's bindings, not a text box


class EnergyApp(App[str]):
    """Returns (from run) what to tell the terminal after quitting during a run, else None; `farewell` holds
    every line to tell it once the app is gone (that one included), `exit_status` the process's exit code.

    However it ends (q, SIGINT, SIGTERM, SIGHUP, a crash), a run going is stopped through the Stop action's
    path (the current trial aborted, finished ones kept) before the app goes, and the runs it queued or ran
    are closed saying how: `stopped` (quit), `interrupted` (a signal), `failed` (a crash), as `energytui run`
    closes its run. A signal exits 128 + its number once the run has stopped, a crash 1."""

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
        self.signalled: int | None = None  # the signal that stopped the app
        self.crash: str | None = None  # why the app failed, as a run's ended_by says it
        self.farewell: list[str] = []  # lines for the terminal once the app is gone
        self._previous_handlers: dict = {}
        self._unmounted = threading.Event()  # on_unmount has stopped the run and closed the rows

    def get_driver_class(self):
        """Textual's own driver; on Linux and macOS one that also comes back from a stop it did not make."""
        driver = super().get_driver_class()
        from textual.drivers.linux_driver import LinuxDriver

        if driver is LinuxDriver:
            from .driver import ContinuedDriver

            return ContinuedDriver
        return driver

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
        self._handle_signals()

    # --- how the app ends ---

    def _handle_signals(self) -> None:
        """SIGINT, SIGTERM and SIGHUP stop the app as quitting does (a signal the caller's shell ignores stays
        ignored, as for `energytui run`). The handler only notes the signal and hands it to the event loop."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()

        def handler(signum: int, _frame) -> None:
            first = self.signalled is None
            self.signalled = self.signalled or signum
            if _terminal_hung_up():  # now, before Textual's SIGCONT handler (a hang-up sends both) writes to it
                _write_to_nowhere()
            if first:
                try:
                    loop.call_soon_threadsafe(self._stop_for_signal, signum)
                except RuntimeError:  # the loop has closed (the app went without unmounting): as if never here
                    self._restore_signals()
                    signal.raise_signal(signum)

        for signum in SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                self._previous_handlers[signum] = signal.signal(signum, handler)

    def _restore_signals(self) -> None:
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous)
        self._previous_handlers = {}

    def _stop_for_signal(self, signum: int) -> None:
        """A signal: stop the run as Stop does, then exit (on_run_ended); without a run, exit now."""
        if self.running:
            self._quitting = True
            self.queue.stop(describe_signal(signum), "interrupted")
        if _terminal_hung_up():
            self._watch_the_exit(128 + signum)
        if self.is_running and not self.running:
            self.exit(return_code=128 + signum)

    def _watch_the_exit(self, code: int) -> None:
        """The terminal was closed. Textual's writes go to /dev/null now, but one that hit the closed terminal
        first kills Textual's writer thread, and the app then blocks on its next write for good: should the app
        not close in time, a watchdog closes the runs itself once the runner has stopped, and ends the process
        (nothing is left to show)."""

        def watchdog() -> None:
            self.queue.runner_done.wait()
            if self._unmounted.wait(HUNG_UP_GRACE_S):
                time.sleep(HUNG_UP_GRACE_S)  # the rest of the exit; stuck past this, on the terminal
            else:
                try:
                    self.queue.close_opened_runs(*self._ending())
                except UserError:
                    pass
            os._exit(code)

        threading.Thread(target=watchdog, name="energytui-hung-up", daemon=True).start()

    @property
    def exit_status(self) -> int:
        """The process's exit code: 128 + the signal's number, 1 after a crash, else the app's return code."""
        if self.signalled is not None:
            return 128 + self.signalled
        return 1 if self.crash is not None else self.return_code or 0

    def _ending(self) -> tuple[str, str]:
        """(run status, ended_by) for what the app leaves open as it goes: how `energytui run` says it."""
        if self.signalled is not None:
            return "interrupted", describe_signal(self.signalled)
        if self.crash is not None:
            return "failed", self.crash
        return "stopped", QUIT_REASON

    def _handle_exception(self, error: Exception) -> None:
        """A crash: the run going is stopped at once (Textual then closes the app, and on_unmount waits for the
        runner), never left to go on behind a closed screen."""
        self._crashed(f"energytui stopped: {getattr(error, 'error', error)!r}")  # WorkerFailed: the worker's error
        super()._handle_exception(error)

    def panic(self, *renderables) -> None:
        """Textual's own failures (its terminal input thread died) end the app as a crash does."""
        self._crashed("energytui stopped: the app failed")
        super().panic(*renderables)

    def _crashed(self, reason: str) -> None:
        if self.crash is None:
            self.crash = reason
        status, reason = self._ending()  # a signal that came first (SIGHUP closes the terminal too) says why
        self.queue.stop(reason, status)

    def on_unmount(self) -> None:
        """The app's last step, however it ends: a runner thread still working is stopped and waited for (it
        aborts its trial within a decode step), and the runs this app opened and left open are closed."""
        status, reason = self._ending()
        queue, said = self.queue, []
        if self.signalled is not None:
            said.append(f"energytui: {reason}; finished trials are kept")
        if self.return_value:  # how the run that the app stopped to quit ended
            said.append(self.return_value)
        if not queue.runner_done.is_set():
            queue.stop(reason, status)
            queue.runner_done.wait()
        if queue.ended is not None and queue.run_number is not None:  # a run's end that the app did not show
            said.append(_quit_message(queue.run_number, queue.ended))
        try:
            closed = queue.close_opened_runs(status, reason)
        except UserError as exc:  # the database went away or cannot be written: nothing more to close
            said.append(f"energytui: {exc}")
            closed = {}
        self.farewell = said + [_quit_message(run, ended) for run, ended in closed.items()]
        self._restore_signals()
        self._unmounted.set()

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
        if not self.is_running:  # a run that ended as the app quit: the run row already says how (on_unmount too)
            return
        self.queue.ended = None  # told here, now
        self.refresh_bindings()
        self.live.run_ended()
        if self._quitting:
            self.exit(_quit_message(self.run_number, message), return_code=self.exit_status)
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


def _terminal_hung_up() -> bool:
    """Whether the app's terminal was closed: its calls then fail with EIO (Textual writes on stderr)."""
    if sys.__stderr__ is None:
        return False
    try:
        termios.tcgetattr(sys.__stderr__.fileno())
    except termios.error as exc:
        return exc.args[0] == errno.EIO
    except (ValueError, OSError):  # not a file (closed, or a test's stand-in)
        return False
    return False


def _write_to_nowhere() -> None:
    """stdout and stderr to /dev/null (system calls only: safe in a signal handler)."""
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(null, fd)
    os.close(null)


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
