"""The Textual app driven by its Pilot: a real trial of the default model from load to Results."""

import asyncio
import sqlite3

import pytest
from textual.widgets import Button, DataTable, Input, Static

from energytui.engine.metering import MeterOptions
from energytui.tui.app import HelpScreen, create_app

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


@pytest.fixture
def quiet_meter(tmp_path):
    empty = tmp_path / "no-powercap"
    empty.mkdir()
    return MeterOptions(idle_s=0.1, powercap_root=str(empty))


def _statuses(db):
    with sqlite3.connect(db) as conn:
        return [s for (s,) in conn.execute("SELECT status FROM trials ORDER BY seq")]


async def _until(pilot, predicate, timeout=180.0):
    waited = 0.0
    while not predicate():
        assert waited < timeout, ("timed out waiting for the app; "
                                  f"notifications: {[str(n.message) for n in pilot.app._notifications]}")
        await pilot.pause(0.2)
        waited += 0.2


def _text(app, selector) -> str:
    return str(app.query_one(selector, Static).render())


def test_load_run_and_see_results(write_manifest, model_path, tmp_path, quiet_meter):
    manifest = write_manifest(MANIFEST.format(model=model_path, more=""))
    db = tmp_path / "tui.db"

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.click("#load")
            queue = app.query_one("#queue-table", DataTable)
            await _until(pilot, lambda: queue.row_count == 2)
            await pilot.press("escape", "s")
            await _until(pilot, lambda: not app.running and _statuses(db) == ["done", "done"])
            results = app.query_one("#results-table", DataTable)
            await _until(pilot, lambda: results.row_count == 2)
            row = results.get_row_at(0)
            assert row[1] == "done" and row[-1] == "ESTIMATED"  # energy source shown with every figure
            assert app.query_one("#recent-table", DataTable).row_count == 2
            assert "2 done" in _text(app, "#queue-status")
            await pilot.press("2")
            assert "energy source cpu:estimated" in _text(app, "#live-info")
            app.query_one("#results-filter", Input).value = "synthetic-24"
            await _until(pilot, lambda: results.row_count == 1)
            app.query_one("#results-filter", Input).value = ""
            results.focus()
            await pilot.press("c")  # configurations, mean ± stddev
            await _until(pilot, lambda: len(results.columns) == 7 and results.row_count == 2)
            assert "ESTIMATED" in str(results.get_row_at(0)[-1])
            await pilot.press("c")
            await _until(pilot, lambda: len(results.columns) == 9 and results.row_count == 2)
            results.move_cursor(row=0)
            await pilot.press("enter")  # the selected trial's power trace with its windows
            trace = app.query_one("#trace-chart")
            await _until(pilot, lambda: trace.series.get("cpu") and set(trace.marks) == {"prefill", "decode", "end"})

    asyncio.run(scenario())


def test_pause_after_the_current_trial(write_manifest, model_path, tmp_path, quiet_meter):
    manifest = write_manifest(MANIFEST.format(model=model_path, more=", 32, 40"))
    db = tmp_path / "pause.db"

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test() as pilot:
            await pilot.click("#load")
            await _until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == 4, timeout=20)
            await pilot.press("s")
            await _until(pilot, lambda: "running" in _statuses(db) or "done" in _statuses(db))
            await pilot.press("p")
            await _until(pilot, lambda: not app.running)
        statuses = _statuses(db)
        assert "pending" in statuses and "done" in statuses and "running" not in statuses

    asyncio.run(scenario())


def test_bad_manifest_is_a_notification_not_a_crash(tmp_path, write_manifest, quiet_meter):
    bad = write_manifest("runs: [\n")

    async def scenario():
        app = create_app(tmp_path / "bad.db", bad, quiet_meter)
        async with app.run_test() as pilot:
            await pilot.pause(0.3)
            await pilot.press("l")  # the table has focus at start, so single keys are bindings
            await _until(pilot, lambda: any("line" in str(n.message) for n in app._notifications))
            assert app.query_one("#queue-table", DataTable).row_count == 0

    asyncio.run(scenario())


def test_advisor_form_with_good_and_bad_input(measured_db, quiet_meter):
    async def scenario():
        app = create_app(measured_db, None, quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("4")
            app.query_one("#adv-tokens", Input).value = "ten"
            app.query_one("#advise", Button).press()
            await _until(pilot, lambda: "Cannot advise" in _text(app, "#advice-text"))
            assert "tokens 'ten': give a whole number" in _text(app, "#advice-text")
            app.query_one("#adv-tokens", Input).value = "10"
            app.query_one("#adv-budget", Input).value = "0.05kW"
            await pilot.pause(0.2)
            app.query_one("#advise", Button).press()
            await _until(pilot, lambda: "Recommended:" in _text(app, "#advice-text"))
            assert "ESTIMATED energy" in _text(app, "#advice-text")

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
            await _until(pilot, lambda: "Power sources" in _text(app, "#host-text"))
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
            await _until(pilot, lambda: queue.row_count == 3)
            await pilot.press("escape")
            app.query_one("#queue-table", DataTable).focus()

            await pilot.press("a")
            assert isinstance(app.screen, AddTrialScreen)
            app.screen.query_one("#add-prompt", Input).value = "sd"
            app.screen.query_one("#add-threads", Input).value = "1,2"
            await pilot.click("#add-ok")
            await _until(pilot, lambda: queue.row_count == 5)  # threads 1,2 expand into two trials
            assert prompts()[-2:] == ["sd-01", "sd-01"]

            queue.move_cursor(row=0)
            await pilot.press("shift+down")
            await _until(pilot, lambda: prompts()[:2] == ["synthetic-24", "synthetic-16"])
            queue.move_cursor(row=4)
            await pilot.press("delete")
            await _until(pilot, lambda: queue.row_count == 4)

            await pilot.press("a")
            app.screen.query_one("#add-max", Input).value = "lots"
            await pilot.click("#add-ok")
            await _until(pilot, lambda: any("key 'max_tokens'" in str(n.message) for n in app._notifications))
            assert queue.row_count == 4

            await pilot.press("o")
            assert isinstance(app.screen, ManifestPicker)
            await pilot.press("escape")
            assert not isinstance(app.screen, ManifestPicker)

    asyncio.run(scenario())


def test_stop_aborts_the_current_trial_and_keeps_finished_ones(write_manifest, model_path, tmp_path, quiet_meter):
    manifest = write_manifest(MANIFEST.format(model=model_path, more=", 32").replace("max_tokens: 8", "max_tokens: 400")
                              .replace("n_ctx: 128", "n_ctx: 512"))
    db = tmp_path / "stop.db"

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test() as pilot:
            await pilot.click("#load")
            await _until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == 3)
            await pilot.press("escape", "s")
            await _until(pilot, lambda: _statuses(db)[:2] == ["done", "running"])
            await pilot.press("x")
            await _until(pilot, lambda: not app.running)
        assert _statuses(db) == ["done", "aborted", "pending"]
        with sqlite3.connect(db) as conn:
            assert (conn.execute("SELECT error FROM trials WHERE status='aborted'").fetchone()[0]
                    == "stopped by the user")
            assert conn.execute("SELECT status FROM runs").fetchone()[0] == "stopped"

    asyncio.run(scenario())


def test_an_imported_trial_says_why_it_has_no_power_trace(tmp_path, quiet_meter):
    """Enter on an imported trial: the trace panel names the reason instead of staying empty."""
    import test_import
    from energytui.engine.importer import import_logs
    from energytui.engine.store import Store

    db = tmp_path / "imported.db"
    store = Store(db)
    import_logs(store, test_import._log(tmp_path, energy_in_log=True), test_import.EXAMPLE_MAP)
    store.close()

    async def scenario():
        app = create_app(db, None, quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("3")
            results = app.query_one("#results-table", DataTable)
            await _until(pilot, lambda: results.row_count == 24)
            results.focus()
            results.move_cursor(row=0)
            await pilot.press("enter")
            trace = app.query_one("#trace-chart")
            await _until(pilot, lambda: "imported from a log that recorded energy per prompt" in trace.tag)
            assert trace.series == {}

    asyncio.run(scenario())
