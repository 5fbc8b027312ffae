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


async def _settle(pilot, predicate):
    for _ in range(300):
        if predicate():
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
        await pilot.pause(0.2)

    assert snap_compare(app, run_before=load, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_live_following_imported_trials(snap_compare, imported_db, quiet_meter, size):
    """The Live tab with no run of its own: the database's latest run, whose imported trials have no trace."""
    app = create_app(imported_db, None, quiet_meter)

    async def show(pilot):
        await pilot.press("2")
        await _settle(pilot, lambda: app.query_one("#recent-table").row_count == 12)

    assert snap_compare(app, run_before=show, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_results_with_imported_trials(snap_compare, imported_db, quiet_meter, size):
    app = create_app(imported_db, None, quiet_meter)

    async def show(pilot):
        await pilot.press("3")
        await _settle(pilot, lambda: app.query_one("#results-table").row_count == 24)

    assert snap_compare(app, run_before=show, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_advisor_form(snap_compare, tmp_path, quiet_meter, size):
    assert snap_compare(create_app(tmp_path / "a.db", None, quiet_meter), press=["4"], terminal_size=size)


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
        await pilot.press("5")
        await _settle(pilot, lambda: "Power sources" in str(app.query_one("#host-text").render()))

    assert snap_compare(app, run_before=show, terminal_size=size)


def test_help_in_80x24(snap_compare, tmp_path, quiet_meter):
    app = create_app(tmp_path / "k.db", None, quiet_meter)
    assert snap_compare(app, press=["question_mark"], terminal_size=(80, 24))
