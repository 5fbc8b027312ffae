"""Charts as PlotextPlot widgets: data in through `show(...)`, drawing in a declarative `plot()`.

Long traces are thinned for display only (never in storage).
"""

from __future__ import annotations

import threading

from rich.text import Text
from textual import work
from textual.app import RenderResult
from textual_plotext import PlotextPlot

MAX_POINTS = 400
MIN_SIZE = (16, 5)  # columns, rows: plotext draws nothing useful below this, and some charts raise there


def thin(points: list, limit: int = MAX_POINTS) -> list:
    """Every k-th point so that at most `limit` remain, always keeping the last."""
    if len(points) <= limit:
        return points
    step = -(-len(points) // limit)
    return points[::step] + ([points[-1]] if (len(points) - 1) % step else [])


class _Chart(PlotextPlot):
    """A chart whose figure plotext builds in a worker thread: at 120 columns a build takes 25-75 ms of pure
    Python, which on the UI thread held up the Live tab's redraws (bench/tui.py). The last finished build is
    what the widget renders; a newer request makes an older build's result stale."""

    title = ""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._built = Text("")
        self._requested = 0  # replot requests so far: a build shows only if none came after it
        self._figure_lock = threading.Lock()  # plotext's figure is one object: one build at a time

    def on_mount(self) -> None:
        self.replot()

    def on_resize(self) -> None:
        self.replot()

    def replot(self) -> None:
        if not self.is_mounted or not self.size.area:
            return
        self._requested += 1
        self._build(self._requested, self.size.width, self.size.height, self._get_plotext_theme_name(self.app.theme))

    @work(thread=True, group="chart-build")
    def _build(self, request: int, width: int, height: int, theme: str) -> None:
        with self._figure_lock:
            if request != self._requested:  # a newer request is queued: build that one instead
                return
            built = self.figure(width, height, theme)
        self.app.call_from_thread(self._show_built, request, built)

    def figure(self, width: int, height: int, theme: str) -> Text:
        """The chart drawn at this size, or one line saying why it cannot be (hold _figure_lock)."""
        if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
            return self._message(f"too small to chart ({width}×{height}); widen the terminal")
        try:
            return self._draw(width, height, theme)
        except Exception as exc:  # plotext fails on some shapes (a bar chart a few columns wide)
            return self._message(f"cannot chart this at {width}×{height} ({type(exc).__name__}); widen the terminal")

    def _draw(self, width: int, height: int, theme: str) -> Text:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        self.plot()
        plt.plotsize(width, height)
        plt._set_size(width, height)  # as PlotextPlot.render does (textual-plotext issue 5)
        plt.theme(theme)
        return Text.from_ansi(plt.build())

    def _message(self, text: str) -> Text:
        """One line in place of the chart, cut to its width."""
        return Text(f"{self.title.split(' ·')[0]}: {text}" if self.title else text, no_wrap=True,
                    overflow="ellipsis")

    def _show_built(self, request: int, built: Text) -> None:
        if request == self._requested:
            self._built = built
            self.refresh()

    def render(self) -> RenderResult:
        return self._built

    def plot(self) -> None:
        raise NotImplementedError


PHASE_COLORS = {"prefill": "orange", "decode": "green"}  # the idle windows, re-warm, loading and cooldown: gray
OTHER_PHASE_COLOR = "gray"
DEVICE_MARKERS = ("braille", "dot", "+", "x")  # devices differ by marker: colours say the phase


class PowerChart(_Chart):
    """Power per device over time from 0 W up, coloured by phase (prefill, decode, the rest), the phases'
    starts marked above the data, and where the watts come from (measured or ESTIMATED) in the title."""

    title = "power (W)"

    def __init__(self, hint: str = "", **kwargs):
        super().__init__(**kwargs)
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.marks: dict[str, float] = {}
        self.tag = hint
        self.y_limits = (0.0, 1.0)

    def show(self, samples: list, marks_ns: dict[str, int | None], tag: str = "",
             origin_ns: int | None = None) -> None:
        """samples: (t_ns, device, power_w) rows; marks_ns: phase -> when it began; origin_ns: the time shown
        as 0 s (default: the first sample's)."""
        origin = origin_ns if origin_ns is not None else min((s[0] for s in samples), default=0)
        self.series = {}
        for t_ns, device, power_w in samples:
            if power_w is not None:
                self.series.setdefault(device, []).append(((t_ns - origin) / 1e9, power_w))
        self.marks = {label: (t - origin) / 1e9 for label, t in marks_ns.items()
                      if t is not None and (samples or origin_ns is not None)}
        self.tag = tag
        self.replot()

    def plot(self) -> None:
        top = max((p[1] for points in self.series.values() for p in points), default=0.0)
        top = top * 1.25 if top > 0 else 1.0  # headroom above the data for the phase labels
        self.plt.title(f"power (W){' · ' + self.tag if self.tag else ''} · "
                       f"{' '.join(f'{c}: {p}' for p, c in PHASE_COLORS.items())}, {OTHER_PHASE_COLOR}: idle, re-warm")
        self.plt.xlabel("seconds since the trial's start")
        self.plt.ylabel("W")
        self.y_limits = (0.0, top)
        self.plt.ylim(*self.y_limits)
        edges = sorted(self.marks.items(), key=lambda mark: mark[1])
        for device, marker in zip(self.series, DEVICE_MARKERS * len(self.series)):
            limit = min(MAX_POINTS, 2 * max(self.size.width, 40))  # braille: two points per column at most
            for phase, points in phase_segments(thin(self.series[device], limit), edges):
                self.plt.plot([p[0] for p in points], [p[1] for p in points], marker=marker,
                              color=PHASE_COLORS.get(phase, OTHER_PHASE_COLOR))
        for label, x in edges:
            self.plt.vline(x, "gray")
            self.plt.text(label, x=x, y=top, alignment="left")


def phase_segments(points: list[tuple[float, float]], edges: list[tuple[str, float]]) -> list[tuple[str, list]]:
    """Consecutive runs of points in the same phase (the last edge at or before them); each run starts with
    the previous run's last point, so that the trace stays joined across a boundary."""
    segments: list[tuple[str, list]] = []
    for point in points:
        phase = next((label for label, x in reversed(edges) if x <= point[0]), "")
        if segments and segments[-1][0] == phase:
            segments[-1][1].append(point)
        else:
            segments.append((phase, [segments[-1][1][-1], point] if segments else [point]))
    return segments


class ScatterChart(_Chart):
    """Energy per request against latency, one point per done trial."""

    title = "energy (J) vs latency (s)"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.points: list[tuple[float, float]] = []
        self.tag = ""

    def show(self, points: list[tuple[float, float]], tag: str) -> None:
        """points: (e2e seconds, joules per request) of done trials; tag: their energy source (ESTIMATED...)."""
        self.points, self.tag = points, tag
        self.replot()

    def plot(self) -> None:
        self.plt.title(f"{self.title}{' ' + self.tag if self.tag else ''}")
        self.plt.xlabel("latency (s)")
        self.plt.ylabel("energy (J)")
        points = thin(self.points)  # display only: 10,000 dots would slow every redraw
        if points:
            self.plt.scatter([p[0] for p in points], [p[1] for p in points], marker="dot")


class BarChart(_Chart):
    """One numbered bar per label (a long label would not fit under its bar): `key` says which is which.
    An optional horizontal limit line (e.g. the power budget); `unit` and `xlabel` name the axes."""

    def __init__(self, title: str, unit: str = "", xlabel: str = "", **kwargs):
        super().__init__(**kwargs)
        self.title, self.unit, self.xlabel = title, unit, xlabel
        self.labels: list[str] = []
        self.values: list[float] = []
        self.limit: float | None = None

    def show(self, labels: list[str], values: list[float], title: str | None = None,
             limit: float | None = None) -> None:
        self.labels, self.values, self.limit = labels, values, limit
        if title:
            self.title = title
        self.replot()

    @property
    def key(self) -> list[str]:
        """Bar number → label, one line each, in bar order."""
        return [f"{number}  {label}" for number, label in enumerate(self.labels, start=1)]

    def plot(self) -> None:
        self.plt.ylabel(self.unit)
        self.plt.xlabel(self.xlabel)
        if self.values:
            self.plt.bar([str(n) for n in range(1, len(self.values) + 1)], self.values)
            if self.limit is not None:
                self.plt.hline(self.limit)
