"""The app's responsiveness: first paint, live chart refresh rate during a run, slowest UI callback.

    .venv/bin/python bench/tui.py

- first paint: wall time from starting `energytui` on a pseudo-terminal to its first screen
  on it, side by side with a bare Textual app in the same run. Target ≤ 1.0 s.
- during a run of real trials (default model), how often the Live power chart redraws
  (target ≥ 4 Hz) and the slowest handler of a runner message on the UI thread
  (target ≤ 100 ms).
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
TARGET_PAINT_S, TARGET_HZ, TARGET_CALLBACK_S = 1.0, 4.0, 0.100


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
    paint, bare = paint_times()
    hz, slowest, redraws = live_run()
    ok_paint, ok_hz, ok_cb = paint <= TARGET_PAINT_S, hz >= TARGET_HZ, slowest <= TARGET_CALLBACK_S
    print(f"first paint in a terminal: energytui {paint:.2f} s, a bare Textual app {bare:.2f} s (median of 5, "
          f"alternated) target ≤ {TARGET_PAINT_S} s {'PASS' if ok_paint else 'FAIL'}")
    print(f"live power chart: {hz:.1f} redraws/s during decoding ({redraws} redraws) target ≥ {TARGET_HZ} "
          f"{'PASS' if ok_hz else 'FAIL'}")
    print(f"slowest runner-message handler on the UI thread: {slowest * 1e3:.1f} ms target ≤ "
          f"{TARGET_CALLBACK_S * 1e3:.0f} ms {'PASS' if ok_cb else 'FAIL'}")
    return 0 if ok_paint and ok_hz and ok_cb else 1


if __name__ == "__main__":
    raise SystemExit(main())
