"""However the app ends during a run (SIGINT, SIGTERM, a closed terminal, q, a crash), the current trial is
aborted, finished ones are kept, the runs it opened are closed saying how (as `energytui run` closes its run)
and the process exits with the usual code. The signals go to the real `energytui` on a pseudo-terminal."""

import asyncio
import fcntl
import os
import pty
import signal
import sqlite3
import struct
import sys
import termios
import time

import pytest
from textual.widgets import DataTable

from energytui.app import describe_signal
from energytui.tui.app import QUIT_REASON, create_app
from energytui.tui.charts import BarChart, PowerChart, ScatterChart
from conftest import copy_model
from helpers import default_signals, first_tries, read_terminal, until
from test_tui_tables import _show_results

# Tiny trials: 9 of about half a second each in the app's tests, a second each with the default meter.
MANIFEST = """defaults:
  model: {model}
  threads: 1
  n_ctx: 64
  repetitions: 3
runs:
  - id: signals
    prompt_tokens: 8
    max_tokens: [2, 4, 8]
    ignore_eos: true
"""
TRIALS = 9
RESUME = "; load its manifest again (or `energytui run MANIFEST --resume`) to finish it"


def _statuses(db) -> list[str]:
    with sqlite3.connect(db) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'trials'").fetchone():
            return []
        return [s for (s,) in conn.execute("SELECT status FROM trials ORDER BY seq")]


def _runs(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, status, ended_by FROM runs").fetchall()


def _aborted_errors(db) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [e for (e,) in conn.execute("SELECT error FROM trials WHERE status = 'aborted'")]


def _mid_run(db) -> bool:
    """A trial done and others left: the run is going."""
    statuses = _statuses(db)
    return "done" in statuses and "pending" in statuses


def _assert_stopped_mid_run(db, done_before: int, reason: str) -> None:
    """No trial left running, every finished one kept, at most the current one aborted (saying why), the rest
    pending for a resume: of the trials asked for (re-runs of stalled ones wait at the end, never started)."""
    statuses = first_tries(db)
    assert len(statuses) == TRIALS and "running" not in statuses, statuses
    assert statuses.count("done") >= done_before and statuses.count("aborted") <= 1, statuses
    assert set(statuses) <= {"done", "aborted", "pending"} and "pending" in statuses, statuses
    assert set(_aborted_errors(db)) <= {reason}


def _counts_said(db) -> str:
    statuses = _statuses(db)
    return ", ".join(f"{statuses.count(s)} {s}" for s in ("pending", "done", "aborted") if s in statuses)


# --- the app driven by its Pilot ---


async def _load(pilot, app) -> None:
    """Load the app's manifest: its trials in the queue."""
    await pilot.click("#load")
    await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == TRIALS)


def test_quitting_closes_a_run_loaded_and_never_started(write_manifest, model_path, tmp_path, quiet_meter):
    db = tmp_path / "loaded.db"

    async def scenario():
        app = create_app(db, write_manifest(MANIFEST.format(model=model_path)), quiet_meter)
        async with app.run_test() as pilot:
            await _load(pilot, app)
            assert _runs(db) == [(1, "running", None)]  # a run's row is open from its queueing on
            await pilot.press("escape", "q")
            await until(pilot, lambda: not app.is_running)
        return app

    app = asyncio.run(scenario())
    assert _runs(db) == [(1, "stopped", QUIT_REASON)]
    assert _statuses(db) == ["pending"] * TRIALS
    assert app.exit_status == 0
    assert app.farewell == [f"energytui: run 1 stopped: {TRIALS} pending{RESUME}"]


def test_pause_then_quit_closes_the_paused_run(write_manifest, model_path, tmp_path, quiet_meter):
    db = tmp_path / "paused.db"

    async def scenario():
        app = create_app(db, write_manifest(MANIFEST.format(model=model_path)), quiet_meter)
        async with app.run_test() as pilot:
            await _load(pilot, app)
            await pilot.press("escape", "s")
            await until(pilot, lambda: "done" in _statuses(db))
            await pilot.press("p")
            await until(pilot, lambda: not app.running)
            assert _runs(db) == [(1, "paused", None)]
            await pilot.press("q")  # no run going: quits without asking
            await until(pilot, lambda: not app.is_running)
        return app

    app = asyncio.run(scenario())
    assert _runs(db) == [(1, "stopped", QUIT_REASON)]
    statuses = _statuses(db)
    assert set(statuses) == {"done", "pending"}
    assert app.exit_status == 0 and app.farewell == [f"energytui: run 1 stopped: {_counts_said(db)}{RESUME}"]


def test_a_crash_during_a_run_stops_it_and_closes_its_row_failed(write_manifest, model_path, tmp_path, quiet_meter):
    """An exception in the app (here a callback that raises) during a run: the run stops at once, never going on
    behind the closed screen; its row says `failed` and why, as `energytui run` says an error; exit status 1."""
    db = tmp_path / "crash.db"
    seen = {}

    def boom() -> None:
        raise RuntimeError("boom")

    async def scenario():
        app = create_app(db, write_manifest(MANIFEST.format(model=model_path)), quiet_meter)
        with pytest.raises(RuntimeError, match="boom"):  # run_test raises the app's exception as it closes
            async with app.run_test() as pilot:
                await _load(pilot, app)
                await pilot.press("escape", "s")
                await until(pilot, lambda: _mid_run(db))
                seen["done"] = _statuses(db).count("done")
                app.call_later(boom)
                await until(pilot, lambda: not app.is_running)
        return app

    app = asyncio.run(scenario())
    reason = "energytui stopped: RuntimeError('boom')"
    assert _runs(db) == [(1, "failed", reason)]
    _assert_stopped_mid_run(db, seen["done"], reason)
    assert app.return_code == 1 and app.exit_status == 1
    assert app.farewell == [f"energytui: run 1 failed: {_counts_said(db)}{RESUME}"]


def test_sigint_without_a_run_going_closes_the_loaded_run_and_exits_130(write_manifest, model_path, tmp_path,
                                                                        quiet_meter):
    """The app's own handler, in this process: restored once the app is gone. Over default handling, whatever
    the caller inherited (a background job of a non-interactive shell starts with SIGINT ignored)."""
    db = tmp_path / "sigint.db"
    inherited = default_signals()
    before = signal.getsignal(signal.SIGINT)

    async def scenario():
        app = create_app(db, write_manifest(MANIFEST.format(model=model_path)), quiet_meter)
        async with app.run_test() as pilot:
            await _load(pilot, app)
            os.kill(os.getpid(), signal.SIGINT)
            await until(pilot, lambda: not app.is_running)
        return app

    try:
        app = asyncio.run(scenario())
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        for signum, handler in inherited.items():
            signal.signal(signum, handler)
    assert _runs(db) == [(1, "interrupted", "interrupted by the user (Ctrl-C)")]
    assert app.exit_status == 130
    assert app.farewell == ["energytui: interrupted by the user (Ctrl-C); finished trials are kept",
                            f"energytui: run 1 interrupted: {TRIALS} pending{RESUME}"]


@pytest.mark.parametrize("size", [(20, 8), (30, 10), (40, 12)])
def test_the_charts_degrade_to_a_line_in_a_tiny_terminal(imported_db, quiet_meter, size):
    """plotext's bar chart raised (ValueError) a few columns wide, and the app went down: each chart now says
    that it is too small, or draws."""

    async def scenario():
        app = create_app(imported_db, None, quiet_meter)
        async with app.run_test(size=size) as pilot:
            await _show_results(pilot)
            await until(pilot, lambda: app.query_one("#results-table", DataTable).row_count == 24)
            for _ in range(3):  # one chart at a time below 120 columns: g shows the next
                shown_id = app.query_one("ResultsPane")._chart
                chart = next(c for c in app.query(f"#{shown_id}, #{shown_id} BarChart")  # noqa: B023
                             if isinstance(c, (ScatterChart, BarChart, PowerChart)))
                await until(pilot, lambda: chart._built.plain != "")  # noqa: B023
                assert "┌" in chart._built.plain or "too small to chart" in chart._built.plain
                await pilot.press("g")
            assert app.is_running

    asyncio.run(scenario())


def test_a_chart_too_small_to_draw_says_so_on_one_line(imported_db, quiet_meter):
    """The J/token bar chart with its 4 bars built a few columns wide (as the first layout of a tiny terminal does
    before one chart is chosen): plotext raised ValueError there."""

    async def scenario():
        app = create_app(imported_db, None, quiet_meter)
        async with app.run_test(size=(140, 40)) as pilot:  # wide enough for the three charts side by side
            await _show_results(pilot)
            bars = app.query_one("#jpt-chart", BarChart)
            await until(pilot, lambda: len(bars.values) == 4 and "██" in bars._built.plain)
            assert bars.title.startswith("mean J/token per configuration")
            for width, height in ((6, 8), (7, 20), (15, 30), (40, 4), (1, 1)):
                with bars._figure_lock:  # as a build holds it (the app's own builds may run meanwhile)
                    built = bars.figure(width, height, "textual-dark")
                assert built.plain == f"{bars.title}: too small to chart ({width}×{height}); widen the terminal"
            with bars._figure_lock:  # at its own size: drawn
                assert "██" in bars.figure(bars.size.width, bars.size.height, "textual-dark").plain
            assert app.is_running

    asyncio.run(scenario())


# --- the real process on a pseudo-terminal ---


def _on_a_terminal(argv: list, react, timeout: float = 180, last=None) -> tuple[int, str]:
    """`python ARGV` on an 80×24 pseudo-terminal with default signal handling: (exit code, what it wrote).
    `react(pid, fd, output)` runs between reads; when it returns True the terminal is closed (hung up), as
    when its window is closed. `last(fd)` runs once the reading ends, before the terminal is closed."""
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        default_signals()
        os.execv(sys.executable, [sys.executable, *map(str, argv)])
    output, deadline, status = b"", time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline:
            if react(pid, fd, output):
                break
            chunk, closed = read_terminal(fd, 0.1)
            output += chunk
            if closed:
                break
    finally:
        if last is not None:
            last(fd)
        os.close(fd)  # a hang-up, when the process still runs
    while status is None and time.monotonic() < deadline:
        reaped, waited = os.waitpid(pid, os.WNOHANG)
        status = waited if reaped else time.sleep(0.05)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


class _Scenario:
    """Load (l), start (s), then once a trial is done and others wait: `act(pid, fd)`."""

    def __init__(self, db, act):
        self.db, self.act, self.step, self.done_before = db, act, 0, 0

    def __call__(self, pid, fd, output) -> bool:
        if self.step == 0 and b"load a manifest" in output:
            os.write(fd, b"l")
            self.step = 1
        elif self.step == 1 and self.db.is_file() and _statuses(self.db) == ["pending"] * TRIALS:
            os.write(fd, b"s")
            self.step = 2
        elif self.step == 2 and _mid_run(self.db):
            self.done_before = _statuses(self.db).count("done")
            self.step = 3
            return bool(self.act(pid, fd))
        return False


@pytest.fixture
def terminal_env(isolated_home, tmp_path, monkeypatch):
    (tmp_path / "no-powercap").mkdir()
    monkeypatch.setenv("ENERGYTUI_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.setenv("TERM", "xterm-256color")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_during_a_run_aborts_its_trial_closes_the_run_and_exits_128_plus_n(
        write_manifest, model_path, tmp_path, terminal_env, signum, code):
    """kill -TERM / -INT (a supervisor, `timeout`), or the terminal closed (SIGHUP, its window closed: the
    terminal hangs up under the app): the current trial aborted, the finished ones kept, the run `interrupted`
    with the signal's words, exit 128 + n. It used to die at once (TERM, HUP) or go on running every trial
    behind the closed screen and exit 0 (INT)."""
    manifest = write_manifest(MANIFEST.format(model=model_path))
    db = tmp_path / "signal.db"

    def act(pid, fd) -> bool:
        if signum == signal.SIGHUP:
            return True  # close the terminal: the kernel hangs it up and sends SIGHUP
        os.kill(pid, signum)
        return False

    scenario = _Scenario(db, act)
    exit_code, output = _on_a_terminal(["-m", "energytui", "--db", db, "--manifest", manifest], scenario)
    reason = describe_signal(signum)
    assert scenario.step == 3, output[-2000:]
    assert exit_code == code, output[-2000:]
    assert _runs(db) == [(1, "interrupted", reason)]
    _assert_stopped_mid_run(db, scenario.done_before, reason)
    if signum != signal.SIGHUP:  # where the terminal is still there, it says how the run ended
        text = output.replace("\r\n", "\n")
        assert text.endswith(f"energytui: {reason}; finished trials are kept\n"
                             f"energytui: run 1 interrupted: {_counts_said(db)}{RESUME}\n"), text[-600:]


CRASHING_APP = """import sys
from energytui.main import main
from energytui.tui import app

def action_tab(self, tab):
    raise ValueError("not enough values to unpack (expected 2, got 1)")

app.EnergyApp.action_tab = action_tab
sys.exit(main())
"""


def test_a_crash_of_the_real_app_during_a_run_exits_1_with_the_run_closed(write_manifest, model_path, tmp_path,
                                                                          terminal_env):
    """A key whose action raises (as plotext's chart build did) during a run: the traceback, the run stopped and
    closed `failed`, how it ended on the terminal, exit 1 (it used to go on running every trial, then exit 0)."""
    manifest = write_manifest(MANIFEST.format(model=model_path))
    db = tmp_path / "crash.db"
    scenario = _Scenario(db, lambda pid, fd: os.write(fd, b"3") and False)  # the Results tab: its action raises
    exit_code, output = _on_a_terminal(["-c", CRASHING_APP, "--db", db, "--manifest", manifest], scenario)
    reason = "energytui stopped: ValueError('not enough values to unpack (expected 2, got 1)')"
    assert scenario.step == 3, output[-2000:]
    assert exit_code == 1, output[-2000:]
    assert "ValueError" in output
    assert _runs(db) == [(1, "failed", reason)]
    _assert_stopped_mid_run(db, scenario.done_before, reason)
    text = output.replace("\r\n", "\n")
    assert text.endswith(f"energytui: run 1 failed: {_counts_said(db)}{RESUME}\n"), text[-600:]


def test_the_app_exit_code_reaches_the_shell(monkeypatch, tmp_path, capsys):
    """`energytui` with no command returns the app's exit status and prints its farewell on stderr."""
    from energytui.main import main
    from energytui.tui import app as tui_app

    class Ended:
        database_error = None
        farewell = ["energytui: stopped by SIGTERM; finished trials are kept"]
        exit_status = 143

        def run(self):
            return None

    monkeypatch.setattr(tui_app, "create_app", lambda *args, **kwargs: Ended())
    assert main(["--db", str(tmp_path / "x.db")]) == 143
    assert capsys.readouterr().err == "energytui: stopped by SIGTERM; finished trials are kept\n"


def test_the_app_stopped_without_ctrl_z_and_continued_still_quits(write_manifest, model_path, tmp_path,
                                                                  terminal_env):
    """SIGSTOP then SIGCONT mid-run (kill -STOP/-CONT; or `energytui &` stopped by SIGTTIN, then `fg`), no SIGTSTP
    first: Textual resumed application mode it had never left, a second input thread beside the first, and after q
    and Enter the app printed its farewell but never exited (killed here after 60 s; it exits at once now)."""
    db, asked = tmp_path / "stop.db", {"at": 0}

    def stop_and_continue(pid, fd) -> None:
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.3)
        os.kill(pid, signal.SIGCONT)
        time.sleep(1.0)  # drawn again
        os.write(fd, b"q")

    scenario = _Scenario(db, stop_and_continue)

    def react(pid, fd, output) -> bool:
        if scenario.step < 3:
            scenario(pid, fd, output)
            asked["at"] = len(output)
        elif asked["at"] is not None and b"Stop the run and quit?" in output[asked["at"]:]:
            os.write(fd, b"\r")
            asked["at"] = None
        return False

    exit_code, output = _on_a_terminal(["-m", "energytui", "--db", db, "--manifest", write_manifest(
        MANIFEST.format(model=model_path))], react, timeout=60)
    assert scenario.step == 3 and asked["at"] is None, output[-600:]
    assert exit_code == 0 and output.endswith(f"energytui: run 1 stopped: {_counts_said(db)}{RESUME}\r\n"), \
        output[-600:]


def test_a_model_cut_short_mid_trial_leaves_the_terminal_as_the_app_found_it(write_manifest, model_path, tmp_path,
                                                                            terminal_env):
    """Nothing in Python runs after such a read (engine/sigbus.py): the driver gave the C handler the terminal's
    settings from before the app took it and the codes that leave the app's modes, so the shell reads normally
    after the handler's line. Before, the terminal stayed raw, on the alternate screen."""
    from energytui.engine import sigbus
    from energytui.tui.driver import LEAVE_APP_MODES

    model = copy_model(model_path, tmp_path / "cut.gguf")
    manifest = write_manifest(f"defaults:\n  model: {model}\n  threads: 1\n  n_ctx: 512\n  ignore_eos: true\n"
                              "runs:\n  - id: cut\n    prompt_tokens: 8\n    max_tokens: [2, 400]\n")
    db = tmp_path / "cut.db"
    seen: dict = {}

    def react(pid, fd, output) -> bool:
        seen.setdefault("before", termios.tcgetattr(fd))  # the first call: the child is still starting Python
        if "loaded" not in seen and b"load a manifest" in output:
            seen["loaded"] = os.write(fd, b"l")
        elif "started" not in seen and db.is_file() and _statuses(db) == ["pending", "pending"]:
            seen["started"] = os.write(fd, b"s")
        elif "cut" not in seen and _statuses(db) == ["done", "running"]:
            time.sleep(1.0)  # past the file check, the idle window and prefill, inside 400 decode steps
            os.truncate(model, 4096)
            seen["cut"] = True
        return False

    exit_code, output = _on_a_terminal(["-m", "energytui", "--db", db, "--manifest", manifest], react,
                                       last=lambda fd: seen.setdefault("after", termios.tcgetattr(fd)))
    assert "cut" in seen and exit_code == 128 + signal.SIGBUS, output[-2000:]
    assert output.endswith(LEAVE_APP_MODES + sigbus.message([str(model)]).replace("\n", "\r\n")), repr(output[-800:])
    assert seen["after"] == seen["before"]
    assert _statuses(db) == ["done", "running"]  # the next run aborts it and offers --resume

