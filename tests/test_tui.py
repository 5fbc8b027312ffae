"""The Textual app driven by its Pilot: a real trial of the default model from load to Results."""

import asyncio
import sqlite3
import threading
import time

from textual.widgets import DataTable, Input, Select, Static

from energytui.tui.app import QUIT_REASON, HelpScreen, QuitScreen, create_app
from energytui.tui.charts import ScatterChart
from energytui.tui.messages import RunEnded, TrialsChanged
from helpers import first_tries, read_terminal, reruns, unstolen_clock, until

MANIFEST = """defaults:
  model: {model}
  threads: 2
  n_ctx: 128
runs:
  - id: tui
    prompt_tokens: [16, 24{more}]
    max_tokens: 8
    ignore_eos: true
"""


def _text(app, selector) -> str:
    return str(app.query_one(selector, Static).render())


def test_load_run_and_see_results(write_manifest, model_path, tmp_path, quiet_meter):
    # 3 tokens: 2 decode steps, too few for a stall to stand out (runner.stalled_ms), so a loaded machine never
    # adds a re-run to the 2 trials counted below
    manifest = write_manifest(MANIFEST.format(model=model_path, more="").replace("max_tokens: 8", "max_tokens: 3"))
    db = tmp_path / "tui.db"

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.click("#load")
            queue = app.query_one("#queue-table", DataTable)
            await until(pilot, lambda: queue.row_count == 2)
            await pilot.press("escape", "s")
            await until(pilot, lambda: not app.running and first_tries(db) == ["done", "done"])
            results = app.query_one("#results-table", DataTable)
            await until(pilot, lambda: results.row_count == 2)
            row = results.get_row_at(0)
            assert str(row[1]) == "done" and str(row[-1]) == "ESTIMATED"  # energy source shown with every figure
            assert app.query_one("#recent-table", DataTable).row_count == 2
            assert "2 done" in _text(app, "#queue-status")
            await pilot.press("2")
            assert "energy source cpu:estimated" in _text(app, "#live-info")
            app.query_one("#results-filter", Input).value = "synthetic-24"
            await until(pilot, lambda: results.row_count == 1)
            scatter = app.query_one(ScatterChart)  # the charts follow once typing pauses
            await until(pilot, lambda: len(scatter.points) == 1)
            app.query_one("#results-filter", Input).value = ""
            await until(pilot, lambda: len(scatter.points) == 2)
            results.focus()
            await pilot.press("c")  # configurations, mean ± stddev
            await until(pilot, lambda: len(results.columns) == 7 and results.row_count == 2)
            assert "ESTIMATED" in str(results.get_row_at(0)[-1])
            await pilot.press("c")
            await until(pilot, lambda: len(results.columns) == 9 and results.row_count == 2)
            results.move_cursor(row=0)
            await pilot.press("enter")  # the selected trial's power trace with its windows
            trace = app.query_one("#trace-chart")
            await until(pilot, lambda: trace.series.get("cpu") and set(trace.marks) == {"prefill", "decode", "end"})

    asyncio.run(scenario())


def test_pause_after_the_current_trial(write_manifest, model_path, tmp_path, quiet_meter):
    manifest = write_manifest(MANIFEST.format(model=model_path, more=", 32, 40"))
    db = tmp_path / "pause.db"

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test() as pilot:
            await pilot.click("#load")
            await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == 4, timeout=20)
            await pilot.press("s")
            await until(pilot, lambda: "running" in first_tries(db) or "done" in first_tries(db))
            await pilot.press("p")
            await until(pilot, lambda: not app.running)
        statuses = first_tries(db)
        assert "pending" in statuses and "done" in statuses and "running" not in statuses

    asyncio.run(scenario())


def test_runner_messages_after_the_app_shut_down_are_ignored(tmp_path, write_manifest, model_path, quiet_meter):
    """A run can end (or post its last event) just as the app quits: the message then finds no screen."""
    app = create_app(tmp_path / "late.db", write_manifest(MANIFEST.format(model=model_path, more="")), quiet_meter)

    async def scenario():
        async with app.run_test() as pilot:
            await pilot.pause()

    asyncio.run(scenario())
    assert not app.is_running and not app.screen_stack
    app.on_run_ended(RunEnded("done"))
    app.on_trials_changed(TrialsChanged())


def test_bad_manifest_is_a_notification_not_a_crash(tmp_path, write_manifest, quiet_meter):
    bad = write_manifest("runs: [\n")

    async def scenario():
        app = create_app(tmp_path / "bad.db", bad, quiet_meter)
        async with app.run_test() as pilot:
            await pilot.pause(0.3)
            await pilot.press("l")  # the table has focus at start, so single keys are bindings
            await until(pilot, lambda: any("line" in str(n.message) for n in app._notifications))
            assert app.query_one("#queue-table", DataTable).row_count == 0

    asyncio.run(scenario())


def test_help_screen_and_every_tab_in_80x24(tmp_path, quiet_meter):
    async def scenario():
        app = create_app(tmp_path / "small.db", None, quiet_meter)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            for key, tab in (("2", "live"), ("3", "results"), ("4", "advisor"), ("5", "host"), ("1", "queue")):
                await pilot.press(key)
                assert app.query_one("TabbedContent").active == tab
            await until(pilot, lambda: "Power sources" in _text(app, "#host-text"))
            assert "ESTIMATES" in _text(app, "#host-text")

    asyncio.run(scenario())


def test_queue_editing_add_remove_move_and_the_file_picker(write_manifest, model_path, tmp_path, quiet_meter):
    from energytui.tui.app import AddTrialScreen, ManifestPicker

    manifest = write_manifest(MANIFEST.format(model=model_path, more=", 32"))
    db = tmp_path / "edit.db"

    def prompts():
        with sqlite3.connect(db) as conn:
            return [p for (p,) in conn.execute("SELECT prompt_id FROM trials ORDER BY seq")]

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.click("#load")
            queue = app.query_one("#queue-table", DataTable)
            await until(pilot, lambda: queue.row_count == 3)
            await pilot.press("escape")
            app.query_one("#queue-table", DataTable).focus()

            await pilot.press("a")
            assert isinstance(app.screen, AddTrialScreen)
            app.screen.query_one("#add-prompt", Input).value = "sd"
            app.screen.query_one("#add-threads", Input).value = "1,2"
            await pilot.click("#add-ok")
            await until(pilot, lambda: queue.row_count == 5)  # threads 1,2 expand into two trials
            assert prompts()[-2:] == ["sd-01", "sd-01"]

            queue.move_cursor(row=0)
            await pilot.press("shift+down")
            await until(pilot, lambda: prompts()[:2] == ["synthetic-24", "synthetic-16"])
            shown = lambda: [str(queue.get_row_at(row)[4]) for row in range(queue.row_count)]  # noqa: E731
            await until(pilot, lambda: shown() == prompts())  # the table in run order, not by id
            assert queue.cursor_row == 1 and queue.get_row_at(1)[4] == "synthetic-16"  # the moved trial
            queue.move_cursor(row=4)
            await pilot.press("delete", "y")  # y: the answer to "Remove trial N (...)? y/n"
            await until(pilot, lambda: queue.row_count == 4)

            await pilot.press("o")
            assert isinstance(app.screen, ManifestPicker)
            await pilot.press("escape")
            assert not isinstance(app.screen, ManifestPicker)

    asyncio.run(scenario())


async def _load_and_start(pilot, app, trials: int) -> None:
    """Load the app's manifest, wait for its `trials` in the queue, and start the run."""
    await pilot.click("#load")
    await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == trials)
    await pilot.press("escape", "s")


def test_stop_aborts_the_current_trial_and_keeps_finished_ones(write_manifest, model_path, tmp_path, quiet_meter):
    manifest = write_manifest(MANIFEST.format(model=model_path, more=", 32").replace("max_tokens: 8", "max_tokens: 400")
                              .replace("n_ctx: 128", "n_ctx: 512"))
    db = tmp_path / "stop.db"

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test() as pilot:
            await _load_and_start(pilot, app, 3)
            await until(pilot, lambda: first_tries(db)[:2] == ["done", "running"])
            await pilot.press("x")
            await until(pilot, lambda: not app.running)
        assert first_tries(db) == ["done", "aborted", "pending"]
        with sqlite3.connect(db) as conn:
            assert (conn.execute("SELECT error FROM trials WHERE status='aborted'").fetchone()[0]
                    == "stopped by the user")
            assert conn.execute("SELECT status FROM runs").fetchone()[0] == "stopped"

    asyncio.run(scenario())


def test_an_older_read_never_paints_over_a_newer_one(write_manifest, model_path, tmp_path, quiet_meter,
                                                    monkeypatch):
    """A quick x, s: the stop's reload of the run selector can finish after the start's, and the run's row read
    `stopped` while its next trial ran. The older read, slowed here on purpose, is dropped."""
    from energytui.app import queries

    manifest = write_manifest(MANIFEST.format(model=model_path, more=""))
    db = tmp_path / "reads.db"
    read_as_is = queries.run_summaries
    older_read, newer_shown = threading.Event(), threading.Event()

    def run_summaries(store):
        runs = read_as_is(store)
        if older_read.is_set():
            return runs
        older_read.set()
        newer_shown.wait(30)  # the newer read is shown first
        return [dict(run, status="stopped") for run in runs]

    def labels(app) -> list[str]:
        return [str(label) for label, _ in app.query_one("#run-select", Select)._options]

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test() as pilot:
            await pilot.click("#load")
            await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == 2)
            monkeypatch.setattr(queries, "run_summaries", run_summaries)
            older = app.queue.load_runs()
            await until(pilot, older_read.is_set)
            newer = app.queue.load_runs()
            await until(pilot, lambda: newer.is_finished)
            await pilot.pause()
            newer_shown.set()
            await until(pilot, lambda: older.is_finished)
            await pilot.pause()
            assert any("run 1 · " in label and "not started" in label for label in labels(app)), labels(app)
            assert not any("stopped" in label for label in labels(app)), labels(app)

    asyncio.run(scenario())


def test_an_imported_trial_says_why_it_has_no_power_trace(imported_db, quiet_meter):
    """Enter on an imported trial: the trace panel names the reason instead of staying empty."""

    async def scenario():
        app = create_app(imported_db, None, quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("3")
            results = app.query_one("#results-table", DataTable)
            await until(pilot, lambda: results.row_count == 24)
            results.focus()
            results.move_cursor(row=0)
            await pilot.press("enter")
            trace = app.query_one("#trace-chart")
            await until(pilot, lambda: "imported from a log that recorded energy per prompt" in trace.tag)
            assert trace.series == {}

    asyncio.run(scenario())


def _long_run_manifest(write_manifest, model_path, max_tokens=400):
    """Three trials of 400 tokens: each runs for seconds, long enough to quit in the middle of one. One thread:
    on a busy machine two llama.cpp threads wait on each other, and a decode step (where the abort is seen)
    can take a third of a second."""
    return write_manifest(MANIFEST.format(model=model_path, more=", 32").replace("threads: 2", "threads: 1")
                          .replace("max_tokens: 8", f"max_tokens: {max_tokens}").replace("n_ctx: 128", "n_ctx: 512"))


def _run_row(db):
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, status, ended_by FROM runs").fetchall()


def test_quit_during_a_run_asks_then_aborts_the_trial_and_exits_at_once(write_manifest, model_path, tmp_path,
                                                                        quiet_meter):
    """q during a run: the question; Enter: the current trial aborted, the app gone within 1 s (it used to
    run every remaining trial behind a blank screen first)."""
    from energytui.app.runs import load_manifest, queue_checked

    manifest = _long_run_manifest(write_manifest, model_path)
    db = tmp_path / "quit.db"
    timing = {}

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test() as pilot:
            await _load_and_start(pilot, app, 3)
            await until(pilot, lambda: first_tries(db) == ["done", "running", "pending"])
            await pilot.press("q")
            assert isinstance(app.screen, QuitScreen)
            assert str(app.screen.query_one("#quit-question", Static).render()) == "Stop the run and quit?"
            assert first_tries(db) == ["done", "running", "pending"]  # asking stops nothing
            confirmed = unstolen_clock()
            await pilot.press("enter")
            while app.is_running and unstolen_clock() - confirmed < 10:
                await asyncio.sleep(0.01)
            timing["exit_s"] = unstolen_clock() - confirmed
        return app.return_value

    said = asyncio.run(scenario())
    assert timing["exit_s"] < 1.0, timing
    assert first_tries(db) == ["done", "aborted", "pending"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT error FROM trials WHERE status='aborted'").fetchall() == [(QUIT_REASON,)]
    assert QUIT_REASON == "stopped by the user: the app was quit"
    assert _run_row(db) == [(1, "stopped", QUIT_REASON)]
    pending = 1 + len(reruns(db))  # and the first trial's re-run, queued if a loaded machine stalled it
    assert said == (f"energytui: run 1 stopped: {pending} pending, 1 done, 1 aborted; load its manifest again "
                    "(or `energytui run MANIFEST --resume`) to finish it")
    assert queue_checked(db, load_manifest(manifest)) == 1  # resumable: the same run, its aborted trial queued again
    assert first_tries(db) == ["done", "pending", "pending"]


def test_cancelling_the_quit_question_lets_the_run_finish(write_manifest, model_path, tmp_path, quiet_meter):
    """ctrl+q then n, ctrl+c then Esc: the run goes on to the end; q after it quits without asking."""
    manifest = _long_run_manifest(write_manifest, model_path, max_tokens=96)
    db = tmp_path / "cancel.db"

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test() as pilot:
            await _load_and_start(pilot, app, 3)
            await until(pilot, lambda: first_tries(db)[0] == "running")
            for ask, cancel in (("ctrl+q", "n"), ("ctrl+c", "escape")):
                await pilot.press(ask)
                assert isinstance(app.screen, QuitScreen), ask
                await pilot.press(cancel)
                assert not isinstance(app.screen, QuitScreen), cancel
                assert app.running and app.is_running
            await until(pilot, lambda: not app.running)
            assert first_tries(db) == ["done", "done", "done"]
            assert _run_row(db) == [(1, "done", None)]
            assert app.is_running  # still there after the run
            await pilot.press("q")  # no run: quits without asking
            await until(pilot, lambda: not app.is_running, timeout=5)
        return app.return_value

    assert asyncio.run(scenario()) is None


def test_the_energytui_command_in_a_terminal_quits_during_a_run(write_manifest, model_path, tmp_path, isolated_home,
                                                                monkeypatch):
    """The real process in a pseudo-terminal: l, s, then q and Enter in the middle of a trial. It exits 0
    within 1 s and says how the run ended, which the database confirms."""
    import fcntl
    import os
    import struct
    import subprocess
    import sys
    import termios

    manifest = _long_run_manifest(write_manifest, model_path)
    db = tmp_path / "pty.db"
    (tmp_path / "no-powercap").mkdir()
    monkeypatch.setenv("ENERGYTUI_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.setenv("TERM", "xterm-256color")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "energytui", "--db", str(db), "--manifest", str(manifest)],
                               stdin=slave, stdout=slave, stderr=slave, start_new_session=True, cwd=tmp_path)
    os.close(slave)
    screen = bytearray()

    def read(seconds: float) -> None:
        screen.extend(read_terminal(master, seconds)[0])

    def until(predicate, what: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline and process.poll() is None, (what, bytes(screen[-2000:]))
            read(0.1)

    try:
        until(lambda: b"load a manifest" in screen, "the app's first screen")
        os.write(master, b"l")
        until(lambda: db.is_file() and first_tries(db) == ["pending"] * 3, "the manifest queued")
        os.write(master, b"s")
        until(lambda: first_tries(db) == ["done", "running", "pending"], "the second trial running")
        read(0.5)  # into its decode steps
        os.write(master, b"q")
        until(lambda: b"Stop the run and quit?" in screen, "the question")
        assert process.poll() is None and first_tries(db) == ["done", "running", "pending"]
        confirmed = unstolen_clock()
        os.write(master, b"\r")
        while process.poll() is None and unstolen_clock() - confirmed < 20:
            read(0.01)
        exit_s = unstolen_clock() - confirmed
        read(0.2)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(master)
    assert process.returncode == 0
    assert exit_s < 1.0, exit_s
    assert first_tries(db) == ["done", "aborted", "pending"]
    assert _run_row(db) == [(1, "stopped", QUIT_REASON)]
    said = (f"energytui: run 1 stopped: {1 + len(reruns(db))} pending, 1 done, 1 aborted; load its manifest again "
            "(or `energytui run MANIFEST --resume`) to finish it")
    assert bytes(screen).replace(b"\r\n", b"\n").endswith(said.encode() + b"\n")
