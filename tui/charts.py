"""Charts as PlotextPlot widgets: data in through `show(...)`, drawing in a declarative `plot()`.

Long traces are thinned for display only (never in storage).
"""

from __future__ import annotations

from textual_plotext import PlotextPlot

MAX_POINTS = 400


def thin(points: list, limit: int = MAX_POINTS) -> list:
    """Every k-th point so that at most `limit` remain, always keeping the last."""
    if len(points) <= limit:
        return points
    step = -(-len(points) // limit)
    return points[::step] + ([points[-1]] if (len(points) - 1) % step else [])


class _Chart(PlotextPlot):
    title = ""

    def on_mount(self) -> None:
        self.replot()

    def replot(self) -> None:
        self.plt.clear_data()
        self.plt.clear_figure()
        self.plt.title(self.title)
        self.plot()
        self.refresh()

    def plot(self) -> None:
        raise NotImplementedError


class PowerChart(_Chart):
    """Power per device over time, with the prefill/decode boundary and the trial's windows marked."""

    title = "power (W)"

    def __init__(self, hint: str = "", **kwargs):
        super().__init__(**kwargs)
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.marks: dict[str, float] = {}
        self.tag = hint

    def show(self, samples: list, marks_ns: dict[str, int | None], tag: str = "") -> None:
        """samples: (t_ns, device, power_w) rows; marks_ns: label -> time of a window edge."""
        origin = min((s[0] for s in samples), default=0)
        self.series = {}
        for t_ns, device, power_w in samples:
            if power_w is not None:
                self.series.setdefault(device, []).append(((t_ns - origin) / 1e9, power_w))
        self.marks = {label: (t - origin) / 1e9 for label, t in marks_ns.items() if t is not None and samples}
        self.tag = tag
        self.replot()

    def plot(self) -> None:
        self.plt.title(f"power (W){' ' + self.tag if self.tag else ''}")
        self.plt.xlabel("seconds")
        for device, points in self.series.items():
            points = thin(points)
            self.plt.plot([p[0] for p in points], [p[1] for p in points], label=device, marker="braille")
        for label, x in self.marks.items():
            self.plt.vline(x)
            self.plt.text(label, x=x, y=max((p[1] for pts in self.series.values() for p in pts), default=1))


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
