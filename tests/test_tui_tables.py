"""The Queue and Results tables: the run selector, confirmed removal, sort arrows kept across refreshes,
distinct configuration labels and the J/token chart's key. No trial runs here: the runs are queued only,
or imported from the import test's deterministic logs."""

import asyncio
import sqlite3

import pytest
from textual.widgets import DataTable, Select, Static

from energytui.app.runs import load_manifest, queue_checked
from energytui.app.views import config_labels, summarise
from energytui.engine.store import Store
from energytui.tui.app import create_app
from energytui.tui.confirm import ConfirmScreen

from helpers import until


MANIFEST = """defaults:
  model: {model}
  threads: 2
  n_ctx: 128
runs:
  - id: {run_id}
    prompt_tokens: {tokens}
    max_tokens: 8
    repetitions: {repetitions}
"""


@pytest.fixture
def two_runs(tmp_path, write_manifest, model_path):
    """Run 1 (early.yaml): 2 pending trials; run 2 (late.yaml): 3 pending trials."""
    db = tmp_path / "runs.db"
    for name, repetitions in (("early", 2), ("late", 3)):
        manifest = write_manifest(MANIFEST.format(model=model_path, run_id=name, tokens=16, repetitions=repetitions),
                                  f"{name}.yaml")
        queue_checked(db, load_manifest(manifest))
    return db


async def _show_results(pilot) -> None:
    """Tab 3, once the app's first layout has landed (a key pressed before it can be undone by the start,
    which takes longer on a loaded machine: so press until it holds)."""
    tabs = pilot.app.query_one("TabbedContent")
    for _ in range(20):
        await pilot.pause(0.3)
        await pilot.press("3")
        if tabs.active == "results":
            return
    raise AssertionError(f"tab 3 never became active; focus on {pilot.app.focused}")


async def _finish(pilot) -> None:
    """Let the first database poll and the workers' table refills land before the app closes (a refill
    after it has no table to fill)."""
    await until(pilot, lambda: pilot.app._db_version is not None)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


def _messages(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def _pending_ids(db, run) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [i for (i,) in conn.execute("SELECT id FROM trials WHERE run = ? AND status = 'pending' ORDER BY seq",
                                           [run])]


# --- Queue ---------------------------------------------------------------------------------------------

def test_the_run_selector_lists_earlier_runs_and_reaches_their_pending_trials(two_runs, quiet_meter):
    async def scenario():
        app = create_app(two_runs, None, quiet_meter)
        async with app.run_test(size=(120, 32)) as pilot:
            queue, select = app.query_one("#queue-table", DataTable), app.query_one("#run-select", Select)
            await until(pilot, lambda: queue.row_count == 3)
            assert app.run_number == 2 and select.value == 2  # the latest run with pending trials
            assert [str(prompt) for prompt, _ in select._options[1:]] == [
                "run 2 · late.yaml · not started · 3/3 pending", "run 1 · early.yaml · not started · 2/2 pending"]

            select.value = 1
            await until(pilot, lambda: queue.row_count == 2)
            assert app.run_number == 1
            assert [int(queue.get_row_at(r)[0]) for r in range(2)] == _pending_ids(two_runs, 1)
            assert str(app.query_one("#queue-status", Static).render()) == "run 1: 2 pending"
            await _finish(pilot)

    asyncio.run(scenario())


def test_a_reload_that_finds_the_same_trials_leaves_the_queue_table_as_it_is(two_runs, quiet_meter):
    """What the 2 s poll does after the app's own writes: the rows are the same, so the table is not cleared and
    refilled (a redraw between the two showed header-wide columns), and a changed trial still is."""
    async def scenario():
        app = create_app(two_runs, None, quiet_meter)
        async with app.run_test(size=(120, 32)) as pilot:
            queue, pane = app.query_one("#queue-table", DataTable), app.query_one("QueuePane")
            await until(pilot, lambda: queue.row_count == 3)
            await pilot.app.workers.wait_for_complete()
            shown, cleared = [], []
            show, clear = pane._show_queue, queue.clear
            pane._show_queue = lambda run, trials: shown.append(run) or show(run, trials)
            queue.clear = lambda *args, **kwargs: cleared.append(1) or clear(*args, **kwargs)

            app.action_refresh()
            await until(pilot, lambda: shown == [2])
            assert cleared == [] and queue.row_count == 3

            Store(two_runs).remove_pending(_pending_ids(two_runs, 2)[0])
            app.action_refresh()
            await until(pilot, lambda: shown == [2, 2])
            assert cleared == [1] and queue.row_count == 2
            await _finish(pilot)

    asyncio.run(scenario())


def test_on_start_the_latest_run_with_pending_trials_is_shown(two_runs, quiet_meter):
    store = Store(two_runs)
    for trial_id in _pending_ids(two_runs, 2):
        store.remove_pending(trial_id)
    store.close()

    async def scenario():
        app = create_app(two_runs, None, quiet_meter)
        async with app.run_test(size=(120, 32)) as pilot:
            await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == 2)
            assert app.run_number == 1 and app.query_one("#run-select", Select).value == 1
            await _finish(pilot)

    asyncio.run(scenario())


def test_remove_asks_first_n_keeps_y_removes_and_says_so(two_runs, quiet_meter):
    first, second, third = _pending_ids(two_runs, 2)
    named = f"trial {first} (late: Q4_1 cpu t=2 nb=512 B=1 synthetic-16, synthetic-16)"

    async def scenario():
        app = create_app(two_runs, None, quiet_meter)
        async with app.run_test(size=(120, 32)) as pilot:
            queue = app.query_one("#queue-table", DataTable)
            await until(pilot, lambda: queue.row_count == 3)
            queue.focus()
            queue.move_cursor(row=0)

            await pilot.press("delete")
            assert isinstance(app.screen, ConfirmScreen)
            assert str(app.screen.query_one("#confirm-question", Static).render()) == f"Remove {named}? y/n"
            await pilot.press("n")
            assert not isinstance(app.screen, ConfirmScreen)
            await until(pilot, lambda: f"kept {named}" in _messages(app))
            assert _pending_ids(two_runs, 2) == [first, second, third]

            await pilot.press("delete", "y")
            await until(pilot, lambda: queue.row_count == 2)
            assert _pending_ids(two_runs, 2) == [second, third]
            assert f"removed {named} from run 2" in _messages(app)

            await pilot.press("shift+down")  # the cursor follows the moved trial, and a message says so
            await until(pilot, lambda: _pending_ids(two_runs, 2) == [third, second])
            await until(pilot, lambda: int(queue.get_row_at(queue.cursor_row)[0]) == second)
            assert queue.cursor_row == 1
            assert any(m.startswith(f"moved trial {second} (") and m.endswith(") later") for m in _messages(app))
            await _finish(pilot)

    asyncio.run(scenario())


# --- configuration labels ----------------------------------------------------------------------------

def _trial(config_id, **settings) -> dict:
    base = {"id": 1, "status": "pending", "run_id": "sweep", "config_id": config_id, "host_id": "h1", "imported": 0,
            "model_path": "/models/SmolLM2-135M-Instruct.Q4_1.gguf", "quant": "Q4_1", "backend": "cpu",
            "threads": 4, "gpu_layers": 0, "n_batch": 512, "batch_size": 1, "n_ctx": 2048, "suite": "sd",
            "prompt_id": "sd-01", "max_tokens": 128, "temperature": 0.0, "seed": 42, "chat": 1, "ignore_eos": 0,
            "gpu_build": 0}
    return {**base, **settings}


def test_configurations_alike_but_for_the_model_file_or_n_ctx_get_distinct_labels():
    trials = [_trial("a"), _trial("b", model_path="/models/Qwen2.5-0.5B-Instruct.Q4_1.gguf"),
              _trial("c", n_ctx=4096), _trial("d", run_id="other")]
    assert config_labels(trials) == {
        ("h1", "a"): "sweep: Q4_1 cpu t=4 nb=512 B=1 sd model=SmolLM2-135M-Instruct.Q4_1 ctx=2048",
        ("h1", "b"): "sweep: Q4_1 cpu t=4 nb=512 B=1 sd model=Qwen2.5-0.5B-Instruct.Q4_1 ctx=2048",
        ("h1", "c"): "sweep: Q4_1 cpu t=4 nb=512 B=1 sd model=SmolLM2-135M-Instruct.Q4_1 ctx=4096",
        ("h1", "d"): "other: Q4_1 cpu t=4 nb=512 B=1 sd",  # alone with its label: stays short
    }
    assert [row["label"] for row in summarise(trials)] == list(config_labels(trials).values())  # the CLI report


def test_configurations_alike_in_every_named_setting_are_told_apart_by_their_id():
    trials = [_trial("0123456789ab"), _trial("ba9876543210", prompt_file="x")]  # e.g. a different prompt file
    assert config_labels(trials) == {("h1", "0123456789ab"): "sweep: Q4_1 cpu t=4 nb=512 B=1 sd #012345",
                                     ("h1", "ba9876543210"): "sweep: Q4_1 cpu t=4 nb=512 B=1 sd #ba9876"}


# --- Results -------------------------------------------------------------------------------------------


def _click_header(table: DataTable, name: str) -> None:
    """What a click on the column's header posts."""
    index = [str(k.value) for k in table.columns].index(name)
    key = list(table.columns)[index]
    table.post_message(DataTable.HeaderSelected(table, key, index, table.columns[key].label))


def _headers(table: DataTable) -> list[str]:
    return [column.label.plain for column in table.columns.values()]


def _column(table: DataTable, name: str) -> list[str]:
    return [str(cell) for cell in table.get_column(name)]


def test_the_sort_arrow_shows_and_the_sort_survives_a_reload(imported_db, quiet_meter):
    async def scenario():
        app = create_app(imported_db, None, quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            await _show_results(pilot)
            table = app.query_one("#results-table", DataTable)
            await until(pilot, lambda: table.row_count == 24)
            values = sorted(_column(table, "J/token"), key=float)

            _click_header(table, "J/token")
            await until(pilot, lambda: "J/token ▲" in _headers(table))
            assert _column(table, "J/token") == values
            _click_header(table, "J/token")
            await until(pilot, lambda: "J/token ▼" in _headers(table))
            assert _column(table, "J/token") == values[::-1]
            assert [h for h in _headers(table) if h.endswith(("▲", "▼"))] == ["J/token ▼"]  # one arrow only

            pane = app.query_one("ResultsPane")
            before = pane._results
            app.action_refresh()  # what the 2 s poll does when the database changed
            await until(pilot, lambda: pane._results is not before)
            await pilot.pause(0.1)
            assert "J/token ▼" in _headers(table) and _column(table, "J/token") == values[::-1]

            await pilot.press("c")  # configurations: their own sort, none yet
            await until(pilot, lambda: table.row_count == 4)
            assert not [h for h in _headers(table) if h.endswith(("▲", "▼"))]
            await _finish(pilot)

    asyncio.run(scenario())


def test_the_j_per_token_chart_has_a_key_from_bar_number_to_configuration(imported_db, quiet_meter):
    async def scenario():
        app = create_app(imported_db, None, quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            await _show_results(pilot)
            await until(pilot, lambda: app.query_one("#results-table", DataTable).row_count == 24)
            key = str(app.query_one("#jpt-key", Static).render())
            assert key.splitlines() == [
                "1  cpu-t4 (imported): Q4_0 cpu gpu-build t=4 B=1 sd",
                "2  cpu-t8 (imported): Q4_0 cpu gpu-build t=8 B=1 sd",
                "3  gpu-l22 (imported): Q4_0 gpu t=? ngl=22 B=1 sd",
                "4  hyb-l11 (imported): Q4_0 hybrid t=8 ngl=11 B=1 sd"]
            assert [round(v, 4) for v in app.query_one("#jpt-chart").values] == [1.1525, 1.1525, 0.7606, 1.2101]
            await _finish(pilot)

    asyncio.run(scenario())


def test_rows_drawn_before_their_columns_are_measured_are_drawn_again_at_full_width():
    """Textual measures new rows when the app is next idle; a loaded machine can draw them first, header-wide, and
    a plain DataTable then kept those lines (labels cut short) until the cursor moved: snapshots caught it."""
    from textual.app import App

    from energytui.tui.trials import FittedTable

    class OneTable(App):
        CSS = "FittedTable { height: 1fr; }"

        def compose(self):
            yield FittedTable()

    async def drawn() -> tuple[str, str]:
        app = OneTable()
        async with app.run_test(size=(40, 6)) as pilot:
            table = app.query_one(FittedTable)
            table.add_columns("a", "b")
            await pilot.pause(0.1)
            table.add_row("a long cell", "x")
            early = table.render_lines(table.region.reset_offset)[1].text  # drawn before the app is idle
            await pilot.pause(0.2)
            return early, table.render_lines(table.region.reset_offset)[1].text

    early, late = asyncio.run(drawn())
    assert early.split() == ["a", "x"]  # header-wide: the case this table exists for
    assert late.split() == ["a", "long", "cell", "x"]
