"""The app's responsiveness: first paint, live chart refresh rate during a run, slowest UI callback.

    .venv/bin/python bench/tui.py

- first paint: wall time from starting `energytui` on a pseudo-terminal to its first screen
  on it, side by side with a bare Textual app in the same run. Target ≤ 1.0 s.
- during a run of real trials (default model, ~2 s of prefill each), how often the Live power chart
  repaints during prefill and during decode (target ≥ 4 Hz each) and the slowest UI-thread handler of
  the Live tab: its redraw tick, runner messages, database follow-up, the chart's render (target ≤ 50 ms).
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import statistics
import struct
import sys
import termios
import tempfile
import time
from pathlib import Path

BARE_APP = """
from textual.app import App
from textual.widgets import Footer, Header, Static

class Bare(App):
    BINDINGS = [("q", "quit", "Quit")]

    def compose(self):
        yield Header()
        yield Static("Load a manifest")
        yield Footer()

Bare().run()
"""
FIRST_SCREEN = b"Load a manifest"  # the Queue tab's first line, in both apps
TARGET_PAINT_S, TARGET_HZ, TARGET_CALLBACK_S = 1.0, 4.0, 0.050


def first_paint(argv: list[str]) -> float:
    """Seconds from starting `argv` on a 120x36 pseudo-terminal until its first screen is on it, as a user
    starting the app in a terminal sees it; then q quits it."""
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
        os.environ["TERM"] = "xterm-256color"
        os.execv(argv[0], argv)
    screen = b""
    while FIRST_SCREEN not in screen:
        chunk, closed = _read(fd, 0.01)
        if closed:
            raise SystemExit(f"{argv[0]} ended before its first screen: {screen[-500:]!r}")
        screen += chunk
    painted = time.monotonic() - started
    os.write(fd, b"q")
    while not _read(fd, 0.2)[1]:
        pass
    os.waitpid(pid, 0)
    os.close(fd)
    return painted


def _read(fd: int, seconds: float) -> tuple[bytes, bool]:
    """What the terminal shows within `seconds`, and whether the process closed it."""
    output = b""
    if select.select([fd], [], [], seconds)[0]:
        try:
            output = os.read(fd, 65536)
        except OSError:
            return output, True
        return output, not output
    return output, False


def paint_times(rounds: int = 5) -> tuple[float, float]:
    """Median first paint of `energytui` (the installed command, a fresh database) and of a bare Textual app,
    alternated in one run."""
    folder = Path(tempfile.mkdtemp(prefix="energytui-bench-paint-"))
    bare = folder / "bare.py"
    bare.write_text(BARE_APP)
    energytui = str(Path(sys.executable).with_name("energytui"))
    ours, theirs = [], []
    for round_ in range(rounds):
        ours.append(first_paint([energytui, "--db", str(folder / f"p{round_}.db")]))
        theirs.append(first_paint([sys.executable, str(bare)]))
    return statistics.median(ours), statistics.median(theirs)


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
    paint, bare = paint_times()
    rates, slowest, which = live_run()
    phases = [rates.get("prefill", 0.0), rates.get("decode", 0.0)]
    ok_paint, ok_hz, ok_cb = paint <= TARGET_PAINT_S, min(phases) >= TARGET_HZ, slowest <= TARGET_CALLBACK_S
    print(f"first paint in a terminal: energytui {paint:.2f} s, a bare Textual app {bare:.2f} s (median of 5, "
          f"alternated) target ≤ {TARGET_PAINT_S} s {'PASS' if ok_paint else 'FAIL'}")
    print(f"live power chart repaints: {phases[0]:.1f}/s during prefill, {phases[1]:.1f}/s during decode "
          f"(all phases: {', '.join(f'{p} {r:.1f}' for p, r in sorted(rates.items()))}) target ≥ {TARGET_HZ} "
          f"{'PASS' if ok_hz else 'FAIL'}")
    print(f"slowest UI-thread handler: {slowest * 1e3:.1f} ms ({which}) target ≤ "
          f"{TARGET_CALLBACK_S * 1e3:.0f} ms {'PASS' if ok_cb else 'FAIL'}")
    return 0 if ok_paint and ok_hz and ok_cb else 1


if __name__ == "__main__":
    raise SystemExit(main())
