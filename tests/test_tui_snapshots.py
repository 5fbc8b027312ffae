"""Snapshots (pytest-textual-snapshot) of every tab, at 80x24 and at 120x36, with fixed data.

Update after an intended change of the layout: `pytest tests/test_tui_snapshots.py --snapshot-update`,
then look at the SVGs in tests/__snapshots__/ before committing them. The Host screen shows
this machine's own facts, so its snapshot replaces them with fixed ones.
"""

from pathlib import Path

import pytest

from energytui.tui.app import create_app


ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = Path("config/manifests/quickstart.yaml")  # relative: the path is on screen


@pytest.fixture(autouse=True)
def colours(monkeypatch):
    """Snapshots are in colour: a NO_COLOR in the environment must not change them."""
    monkeypatch.delenv("NO_COLOR", raising=False)


async def _press(pilot, key: str, shown) -> None:
    """Press `key` until `shown()` (a key pressed while the app is still starting can be lost on a loaded
    machine)."""
    for _ in range(20):
        await pilot.pause(0.2)
        await pilot.press(key)
        if shown():
            return
    raise AssertionError(f"{key} had no effect")


def _tab(app, tab: str):
    return lambda: app.query_one("TabbedContent").active == tab


def _polled(app) -> bool:
    """The app's 2 s database poll has seen the file as it is now, so its next tick refreshes nothing. Until
    then a tick refills the tables, and a snapshot taken in between showed header-wide columns."""
    from energytui.app.queries import database

    if app._db_version is None:
        return False
    with database(app.config.db_path) as store:
        return store.change_stamp() == app._db_version


def _measured(table) -> bool:
    """Whether a table's columns are as wide as their cells: Textual measures new rows when the app is next
    idle, and a table in a tab not shown yet can still be header-wide when its tab is."""
    from rich.cells import cell_len

    if table._require_update_dimensions:
        return False
    return all(not column.auto_width or column.content_width >= max(
        (cell_len(str(cell)) for cell in table.get_column(key)), default=0) for key, column in table.columns.items())


async def _columns_measured(pilot) -> None:
    """Wait (10 s at most) until every table's columns are as wide as their cells."""
    from textual.widgets import DataTable

    for _ in range(100):
        await pilot.pause(0.1)
        if all(_measured(table) for table in pilot.app.query(DataTable)):
            return
    narrow = {table.id: [(str(key.value), column.content_width) for key, column in table.columns.items()]
              for table in pilot.app.query(DataTable) if not _measured(table)}
    raise AssertionError(f"columns still narrower than their cells after 10 s: {narrow}")


async def _settle(pilot, predicate):
    """Wait for the state to snapshot and the database poll's refresh, then for the app's workers and the
    tables' column widths (measured when the app is next idle: a loaded machine can snapshot a table before
    that)."""

    from energytui.tui.panes.results import ResultsPane

    for _ in range(300):
        if predicate() and _polled(pilot.app) and not any(pane.charts_pending for pane in pilot.app.query(ResultsPane)):
            for _ in range(2):  # the poll's worker, then the reloads it started on its way out
                await pilot.app.workers.wait_for_complete()
                await pilot.pause()
            await _columns_measured(pilot)
            await pilot.pause(0.3)
            return
        await pilot.pause(0.1)
    raise AssertionError("the app did not reach the state to snapshot")


SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 36), id="120x36")]


@pytest.mark.parametrize("size", SIZES)
def test_queue_with_the_quickstart_loaded(snap_compare, tmp_path, quiet_meter, monkeypatch, model_path, size):
    monkeypatch.chdir(ROOT)
    app = create_app(tmp_path / "q.db", QUICKSTART, quiet_meter)

    async def load(pilot):
        await pilot.pause(0.3)  # let the first layout land before loading
        await pilot.press("l")
        await _settle(pilot, lambda: app.query_one("#queue-table").row_count == 24)
        app.clear_notifications()
        await _columns_measured(pilot)  # the last step before the capture

    assert snap_compare(app, run_before=load, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_live_following_imported_trials(snap_compare, imported_db, quiet_meter, size):
    """The Live tab with no run of its own: the database's latest run, whose imported trials have no trace."""
    app = create_app(imported_db, None, quiet_meter)

    async def show(pilot):
        await _press(pilot, "2", _tab(app, "live"))
        await _settle(pilot, lambda: app.query_one("#recent-table").row_count == 12)

    assert snap_compare(app, run_before=show, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_results_with_imported_trials(snap_compare, imported_db, quiet_meter, size):
    app = create_app(imported_db, None, quiet_meter)

    async def show(pilot):
        await _press(pilot, "3", _tab(app, "results"))
        await _settle(pilot, lambda: app.query_one("#results-table").row_count == 24)

    assert snap_compare(app, run_before=show, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_advisor_form(snap_compare, tmp_path, quiet_meter, size):
    app = create_app(tmp_path / "a.db", None, quiet_meter)

    async def show(pilot):
        await _press(pilot, "4", _tab(app, "advisor"))
        await _settle(pilot, lambda: True)

    assert snap_compare(app, run_before=show, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_host_with_fixed_facts(snap_compare, tmp_path, quiet_meter, monkeypatch, size):
    from energytui.engine import host, metering
    from energytui.engine.telemetry import Unavailable

    facts = {"hostname": "lab-laptop", "cpu": "Example CPU 8-core", "cores": 16, "ram_gb": 32.0, "gpu": None,
             "llama_cpp": "0.3.36", "gpu_offload": 0}
    report = metering.ProbeReport(
        sources=[{"name": "cpu-estimate", "devices": ("cpu",), "tag": "estimated", "achieved_hz": 100.0,
                  "update_period_ms": 10.0, "method": "estimated: CPU utilisation × 65 W / 16 threads (example)",
                  "assumption": None, "errors": 0}],
        unavailable=[Unavailable("rapl", "energy_uj is readable by root only",
                                 "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj")],
        real=False)
    monkeypatch.setattr(host, "describe_host", lambda: facts)
    monkeypatch.setattr(metering, "probe_sources", lambda options: report)
    app = create_app(tmp_path / "h.db", None, quiet_meter)

    async def show(pilot):
        await _press(pilot, "5", _tab(app, "host"))
        await _settle(pilot, lambda: "Power sources" in str(app.query_one("#host-text").render()))

    assert snap_compare(app, run_before=show, terminal_size=size)


def test_help_in_80x24(snap_compare, tmp_path, quiet_meter):
    app = create_app(tmp_path / "k.db", None, quiet_meter)

    async def show(pilot):
        await _press(pilot, "question_mark", lambda: type(app.screen).__name__ == "HelpScreen")
        await _settle(pilot, lambda: True)

    assert snap_compare(app, run_before=show, terminal_size=(80, 24))
