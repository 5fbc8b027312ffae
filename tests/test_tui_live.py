"""The Live tab through Textual's Pilot with the real model: prefill drawn as it happens, a new trace per trial,
the capped recent table, and a run of another process followed from the database."""

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

from textual.widgets import DataTable, Static

from energytui.engine.queue import LiveTrial
from energytui.tui.app import create_app
from energytui.tui.charts import PowerChart, phase_segments
from energytui.tui.panes import live as live_pane
from helpers import reruns, until

# 3 tokens: 2 decode steps, too few for a stall to stand out (runner.stalled_ms), so a loaded machine never adds a
# re-run, with a prefill of its own, to the one trial whose prefill is followed
LONG_PROMPT = """defaults:
  model: {model}
  threads: 1
  n_ctx: 512
runs:
  - id: long-prompt
    prompt_tokens: 200
    max_tokens: 3
    ignore_eos: true
"""
TINY = """defaults:
  model: {model}
  threads: 2
  n_ctx: 128
runs:
  - id: tiny
    prompt_tokens: 8
    max_tokens: {tokens}
    ignore_eos: true
    repetitions: {trials}
"""


def _info(app) -> str:
    return str(app.query_one("#live-info", Static).render())


def _record_draws(monkeypatch) -> list[dict]:
    """Every PowerChart.show: when, the phases marked, the samples' x range and the title's tag."""
    draws: list[dict] = []
    original = PowerChart.show

    def recorded(self, samples, marks_ns, tag="", origin_ns=None):
        original(self, samples, marks_ns, tag, origin_ns)
        xs = [x for points in self.series.values() for x, _ in points]
        draws.append({"at": time.monotonic(), "chart": self.id, "marks": list(self.marks), "origin": origin_ns,
                      "samples": len(xs), "min_x": min(xs, default=0.0), "tag": tag, "ylim": self.y_limits})

    monkeypatch.setattr(PowerChart, "show", recorded)
    return draws


async def _load_and_start(pilot, app, trials: int) -> None:
    await pilot.click("#load")
    await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == trials)
    await pilot.press("escape", "2", "s")


def test_prefill_is_drawn_as_it_happens_before_the_first_token(write_manifest, model_path, tmp_path, quiet_meter,
                                                                 monkeypatch):
    """200 prompt tokens on 1 thread: about 2 s of prefill without a token event, redrawn at ≥ 4 Hz."""
    draws = _record_draws(monkeypatch)
    infos: list[str] = []
    app = create_app(tmp_path / "prefill.db", write_manifest(LONG_PROMPT.format(model=model_path)), quiet_meter)

    async def scenario():
        async with app.run_test(size=(120, 40)) as pilot:
            await _load_and_start(pilot, app, 1)
            await until(pilot, lambda: app.running)
            while app.running:
                infos.append(_info(app))
                await pilot.pause(0.1)
            return app.query_one("#recent-table", DataTable).get_row_at(0)

    row = asyncio.run(scenario())
    prefill = [d for d in draws if d["chart"] == "power-chart" and d["marks"] == ["loading", "idle", "re-warm",
                                                                                  "prefill"]]
    ttft_s = float(row[4]) / 1e3
    assert ttft_s > 1.0, "the prompt should keep prefill busy for over a second"
    span = prefill[-1]["at"] - prefill[0]["at"]
    assert len(prefill) - 1 >= 4.0 * span * 0.9 and span >= ttft_s * 0.7, (len(prefill), span, ttft_s)
    counts = [d["samples"] for d in prefill]
    assert counts == sorted(counts) and counts[-1] >= counts[0] + 5  # the estimate's 10 Hz readings, during prefill
    shown = [d for d in draws if d["chart"] == "power-chart"]
    assert all(d["ylim"][0] == 0 and d["min_x"] >= 0 for d in shown)
    assert {d["tag"] for d in shown if d["samples"]} == {"cpu ESTIMATED"}  # the source of every watt drawn
    assert any(text.startswith("trial 1/1: ") and " · prefill · " in text and "tokens" not in text
               for text in infos)
    # the re-warm before prefill is drawn as itself, not as prefill (the app's own 5 Hz redraws: the test's loop
    # above may sample the info line too seldom on a loaded machine to catch its half-second)
    assert any(d["marks"] == ["loading", "idle", "re-warm"] for d in shown)
    assert any(" · decode · " in text or "idle window after" in text for text in infos)


def test_a_new_trace_per_trial_and_a_capped_recent_table_newest_first(write_manifest, model_path, tmp_path,
                                                                      quiet_meter, monkeypatch):
    draws = _record_draws(monkeypatch)
    trials = live_pane.RECENT_ROWS + 2
    app = create_app(tmp_path / "many.db", write_manifest(TINY.format(model=model_path, tokens=2, trials=trials)),
                     quiet_meter)

    async def scenario():
        async with app.run_test(size=(120, 40)) as pilot:
            await _load_and_start(pilot, app, trials)
            await until(pilot, lambda: not app.running and app.query_one(live_pane.LivePane).live is None)
            await pilot.pause(0.3)
            table = app.query_one("#recent-table", DataTable)
            return ([tuple(table.get_row_at(i)[:2]) for i in range(table.row_count)],
                    app.query_one("#power-chart").size.height)

    rows, chart_height = asyncio.run(scenario())
    assert rows == [(trial_id, "done") for trial_id in range(trials, 2, -1)]  # ids 14..3: the newest 12
    assert chart_height >= 15
    live = [d for d in draws if d["chart"] == "power-chart" and d["origin"] is not None]
    assert len({d["origin"] for d in live}) == trials  # one trace per trial, each from its own start
    assert all(d["min_x"] >= 0 for d in live)
    for before, after in zip(live, live[1:]):  # a trace only grows until the next trial's starts empty-handed
        if after["origin"] != before["origin"]:
            assert after["marks"][0] == "loading" and "decode" not in after["marks"]
            assert after["samples"] < before["samples"]


def test_follows_a_run_of_another_process_from_the_database(write_manifest, model_path, tmp_path, quiet_meter):
    manifest = write_manifest(TINY.format(model=model_path, tokens=300, trials=3).replace("threads: 2", "threads: 1"))
    db = tmp_path / "shared.db"
    seen: list[str] = []
    app = create_app(db, None, quiet_meter)

    async def scenario():
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("2")
            runner = subprocess.Popen(
                [sys.executable, "-m", "energytui", "run", str(manifest), "--db", str(db), "--idle-s", "0.1"],
                env={**os.environ, "ENERGYTUI_POWERCAP_ROOT": quiet_meter.powercap_root},
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                while runner.poll() is None:
                    seen.append(_info(app))
                    await pilot.pause(0.2)
                assert runner.returncode == 0, runner.stderr.read() if runner.stderr else ""
            finally:
                if runner.poll() is None:
                    runner.kill()
            table = app.query_one("#recent-table", DataTable)
            await until(pilot, lambda: table.row_count == 3 + len(reruns(db)) and
                        _info(app).startswith("No trial running"), timeout=10)
            chart = app.query_one("#power-chart", PowerChart)
            return ([tuple(table.get_row_at(i)[:2]) for i in range(table.row_count)], _info(app), chart.tag,
                    set(chart.marks))

    rows, info, tag, marks = asyncio.run(scenario())
    # A trial stalled by a loaded machine is shown `stalled` and queued once more at the end: trial 1's re-run
    # before trial 2 starts, later ones after it.
    with closing(sqlite3.connect(db)) as conn:
        stalled = {i for (i,) in conn.execute("SELECT id FROM trials WHERE stalled_ms > 0")}
    rerun = reruns(db)
    last = 3 + len(rerun)
    running = [text for text in seen if "another process runs it" in text]
    assert any("run 1, from the database" in text and f"trial 2/{3 + (1 in rerun)} running since" in text
               for text in running)
    assert rows == [(i, "stalled" if i in stalled else "done") for i in range(last, 0, -1)]
    assert info.startswith(f"No trial running. Last: trial {last} done") and "energy source cpu:estimated" in info
    assert tag == f"last finished: trial {last} ESTIMATED" and marks == {"prefill", "decode", "end"}


def test_the_live_trial_counts_tokens_and_phases_exactly():
    live = LiveTrial(None)
    assert live.view() is None
    live.begin(2, 5, {"id": 7}, "loading")
    live.enter("idle", 1_000)
    live.enter("prefill", 2_000)
    live.token(1, 3_000_000_000)
    live.token(11, 5_000_000_000)
    view = live.view()
    assert view is not None
    assert (view.index, view.total, view.phase, view.tokens, view.tokens_per_s, view.samples) == (2, 5, "decode",
                                                                                                  11, 5.0, [])
    assert list(view.marks) == ["loading", "idle", "prefill", "decode"] and view.marks["decode"] == 3_000_000_000
    live.end({"id": 7, "status": "done"})
    assert live.view().phase == "done"


def test_phase_segments_join_at_each_boundary():
    points = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
    assert phase_segments(points, [("prefill", 0.5), ("decode", 2.0)]) == [
        ("", [(0.0, 1.0)]), ("prefill", [(0.0, 1.0), (1.0, 2.0)]), ("decode", [(1.0, 2.0), (2.0, 3.0), (3.0, 4.0)])]
