"""The app's responsiveness: first paint, live chart refresh rate during a run, slowest UI callback.

    .venv/bin/python bench/tui.py

- first paint: wall time from a fresh process to the app's first screen being ready
  (headless), side by side with a bare Textual app in the same run. Target ≤ 1.5 s.
- during a run of real trials (default model, ~2 s of prefill each), how often the Live power chart
  repaints during prefill and during decode (target ≥ 4 Hz each) and the slowest UI-thread handler of
  the Live tab: its redraw tick, runner messages, database follow-up, the chart's render (target ≤ 50 ms).
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
TARGET_PAINT_S, TARGET_HZ, TARGET_CALLBACK_S = 1.5, 4.0, 0.050


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


def live_run() -> tuple[dict[str, float], float, str]:
    """Real trials with ~2 s of prefill (200 prompt tokens, 1 thread) through the app: the Live chart's
    repaints per second by the phase they showed, and the slowest UI-thread handler (and which)."""
    import asyncio

    from energytui.engine.metering import MeterOptions
    from energytui.engine.models import default_model_name, resolve_model
    from energytui.tui.app import EnergyApp, create_app
    from energytui.tui.charts import PowerChart
    from energytui.tui.panes.live import LivePane

    repaints: dict[str, list[float]] = {}
    slowest = (0.0, "")
    durations: list[tuple[float, str]] = []

    def timed(cls, name):
        original = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            nonlocal slowest
            started = time.perf_counter()
            result = original(self, *args, **kwargs)
            took = time.perf_counter() - started
            slowest = max(slowest, (took, f"{cls.__name__}.{name}"))
            durations.append((took, f"{cls.__name__}.{name}"))
            if cls is PowerChart and self.id == "power-chart":
                pane = self.app.query_one(LivePane)
                phase = pane._drawn[1] if pane.live is not None and pane._drawn else "other"
                repaints.setdefault(phase, []).append(time.perf_counter())
            return result

        setattr(cls, name, wrapper)

    for cls, name in ((PowerChart, "render"), (LivePane, "redraw"), (LivePane, "show"),
                      (LivePane, "_show_database"), (EnergyApp, "on_trial_event")):
        timed(cls, name)
    folder = Path(tempfile.mkdtemp(prefix="energytui-bench-tui-"))
    manifest = folder / "m.yaml"
    manifest.write_text(f"defaults:\n  model: {resolve_model(default_model_name())}\n  threads: 1\n  n_ctx: 512\n"
                        "runs:\n  - id: live\n    prompt_tokens: 200\n    max_tokens: 128\n    ignore_eos: true\n"
                        "    repetitions: 3\n")

    async def scenario():
        app = create_app(folder / "b.db", manifest, MeterOptions())
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.click("#load")
            while app.run_number is None or app.query_one("#queue-table").row_count < 3:
                await pilot.pause(0.1)
            await pilot.press("escape", "2", "s")
            while not app.running:
                await pilot.pause(0.05)
            while app.running:
                await pilot.pause(0.1)

    asyncio.run(scenario())
    ranked = sorted(durations, reverse=True)
    print("slowest 8 handler calls:", ", ".join(f"{name} {took * 1e3:.0f} ms" for took, name in ranked[:8]),
          f"of {len(durations)}; median {statistics.median(d for d, _ in durations) * 1e3:.1f} ms")
    return {phase: _rate(times) for phase, times in repaints.items()}, slowest[0], slowest[1]


def _rate(times: list[float]) -> float:
    """Repaints per second within a phase (gaps over 1 s span another phase or trial and are left out)."""
    gaps = [b - a for a, b in zip(times, times[1:]) if b - a < 1.0]
    return 1 / statistics.fmean(gaps) if gaps else 0.0


def main() -> int:
    bare = [first_paint("from textual.app import App as App_", "") for _ in range(3)]
    ours = [first_paint("from energytui.tui.app import EnergyApp as App_, AppConfig\nfrom pathlib import Path\n"
                        "import tempfile", "AppConfig(Path(tempfile.mkdtemp()) / 'p.db')") for _ in range(3)]
    paint = statistics.median(ours)
    rates, slowest, which = live_run()
    phases = [rates.get("prefill", 0.0), rates.get("decode", 0.0)]
    ok_paint, ok_hz, ok_cb = paint <= TARGET_PAINT_S, min(phases) >= TARGET_HZ, slowest <= TARGET_CALLBACK_S
    print(f"first paint: energytui {paint:.2f} s, bare Textual app {statistics.median(bare):.2f} s "
          f"(ratio {paint / statistics.median(bare):.1f}x; median of 3) target ≤ {TARGET_PAINT_S} s "
          f"{'PASS' if ok_paint else 'FAIL'}")
    print(f"live power chart repaints: {phases[0]:.1f}/s during prefill, {phases[1]:.1f}/s during decode "
          f"(all phases: {', '.join(f'{p} {r:.1f}' for p, r in sorted(rates.items()))}) target ≥ {TARGET_HZ} "
          f"{'PASS' if ok_hz else 'FAIL'}")
    print(f"slowest UI-thread handler: {slowest * 1e3:.1f} ms ({which}) target ≤ "
          f"{TARGET_CALLBACK_S * 1e3:.0f} ms {'PASS' if ok_cb else 'FAIL'}")
    return 0 if ok_paint and ok_hz and ok_cb else 1

if __name__ == "__main__":
    raise SystemExit(main())
