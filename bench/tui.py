"""The app's responsiveness: first paint, live chart refresh rate during a run, slowest UI callback.

    .venv/bin/python bench/tui.py

- first paint: wall time from a fresh process to the app's first screen being ready
  (headless), side by side with a bare Textual app in the same run. Target ≤ 1.5 s.
- during a run of real trials (default model), how often the Live power chart redraws
  (target ≥ 4 Hz) and the slowest handler of a runner message on the UI thread
  (target ≤ 100 ms).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_PAINT = """
import sys, time
started = time.perf_counter()
{setup}
class Probe(App_):
    def on_ready(self):
        print(time.perf_counter() - started + {boot})
        self.exit()
Probe({args}).run(headless=True)
"""
TARGET_PAINT_S, TARGET_HZ, TARGET_CALLBACK_S = 1.5, 4.0, 0.100


def first_paint(setup: str, args: str) -> float:
    """Seconds from interpreter start to on_ready (interpreter boot measured separately and added)."""
    boot = _boot()
    code = FIRST_PAINT.format(setup=setup, args=args, boot=boot)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def _boot() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def live_run() -> tuple[float, float, int]:
    import asyncio

    from energytui.engine.metering import MeterOptions
    from energytui.engine.models import default_model_name, resolve_model
    from energytui.tui.app import EnergyApp, create_app
    from energytui.tui.charts import PowerChart

    redraws: list[float] = []
    slowest = [0.0]
    original_show, original_handler = PowerChart.show, EnergyApp.on_trial_event

    def counted_show(self, *args, **kwargs):
        redraws.append(time.perf_counter())
        return original_show(self, *args, **kwargs)

    def timed_handler(self, message):
        started = time.perf_counter()
        original_handler(self, message)
        slowest[0] = max(slowest[0], time.perf_counter() - started)

    PowerChart.show, EnergyApp.on_trial_event = counted_show, timed_handler
    folder = Path(tempfile.mkdtemp(prefix="energytui-bench-tui-"))
    manifest = folder / "m.yaml"
    manifest.write_text(f"defaults:\n  model: {resolve_model(default_model_name())}\n  threads: 2\n  n_ctx: 512\n"
                        "runs:\n  - id: live\n    prompt_tokens: 16\n    max_tokens: 256\n    ignore_eos: true\n"
                        "    repetitions: 3\n")

    async def scenario():
        app = create_app(folder / "b.db", manifest, MeterOptions())
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.click("#load")
            while app.run_id is None or app.query_one("#queue-table").row_count < 3:
                await pilot.pause(0.1)
            await pilot.press("escape", "2", "s")
            while not app.running:
                await pilot.pause(0.05)
            while app.running:
                await pilot.pause(0.1)

    asyncio.run(scenario())
    gaps = [b - a for a, b in zip(redraws, redraws[1:]) if b - a < 1.0]  # within trials, not across idle windows
    return (1 / statistics.fmean(gaps) if gaps else 0.0), slowest[0], len(redraws)


def main() -> int:
    bare = [first_paint("from textual.app import App as App_", "") for _ in range(3)]
    ours = [first_paint("from energytui.tui.app import EnergyApp as App_, AppConfig\nfrom pathlib import Path\n"
                        "import tempfile", "AppConfig(Path(tempfile.mkdtemp()) / 'p.db')") for _ in range(3)]
    paint = statistics.median(ours)
    hz, slowest, redraws = live_run()
    ok_paint, ok_hz, ok_cb = paint <= TARGET_PAINT_S, hz >= TARGET_HZ, slowest <= TARGET_CALLBACK_S
    print(f"first paint: energytui {paint:.2f} s, bare Textual app {statistics.median(bare):.2f} s "
          f"(ratio {paint / statistics.median(bare):.1f}x; median of 3) target ≤ {TARGET_PAINT_S} s "
          f"{'PASS' if ok_paint else 'FAIL'}")
    print(f"live power chart: {hz:.1f} redraws/s during decoding ({redraws} redraws) target ≥ {TARGET_HZ} "
          f"{'PASS' if ok_hz else 'FAIL'}")
    print(f"slowest runner-message handler on the UI thread: {slowest * 1e3:.1f} ms target ≤ "
          f"{TARGET_CALLBACK_S * 1e3:.0f} ms {'PASS' if ok_cb else 'FAIL'}")
    return 0 if ok_paint and ok_hz and ok_cb else 1


if __name__ == "__main__":
    raise SystemExit(main())
