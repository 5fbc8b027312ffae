"""The Results tab: every trial (or configuration), filtered and sorted, with charts, traces and export.

A reload prepares every row's cells (as Text: no markup to parse) and its filter text off the UI thread;
filtering and sorting then pick and order prepared rows in Python, and the table holds the first MAX_ROWS
of them only, because a DataTable measures every row it is given (10,000 rows: seconds; bench/tui.py
results_speed). The sort (column and direction, shown by an arrow in the header) is kept across reloads.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from rich.text import Text
from textual.timer import Timer
from textual.widgets import Button, DataTable, Input, Static

from energytui.app.views import config_key, config_labels, counted, energy_cell, steady_view, summarise

from ..charts import BarChart, PowerChart, ScatterChart
from ..pane import Pane
from ..trials import TRIAL_COLUMNS, FittedTable, Sort, add_columns, fill_rows, trial_cells

CONFIG_COLUMNS = ("configuration", "done", "TTFT ms", "decode tok/s", "e2e ms", "J/token", "avg W")
CHARTS = ("scatter", "jpt-box", "trace-chart")  # in the order g shows them one at a time
WIDE = 120  # columns from which the three charts fit side by side with their titles
MAX_ROWS = 200  # rows in the table at once: filling 200 takes ~0.1 s on a laptop core (bench/tui.py)
# The charts follow the filter once typing pauses this long: building their data from 10,000 trials would
# compete with the table's redraw after every key (bench/tui.py's filter target).
FILTER_CHARTS_DELAY_S = 0.3


class ResultsPane(Pane):
    DEFAULT_CSS = """
    #jpt-box { width: 1fr; height: 1fr; }
    #jpt-key { height: auto; max-height: 5; overflow-y: auto; }
    """
    BINDINGS = [Binding("c", "toggle_configs", "Trials/configs",
                        tooltip="Show trials, or configurations (mean ± stddev over their trials)"),
                Binding("g", "next_chart", "Chart", tooltip="Show the next chart (one at a time below 120 columns)"),
                Binding("t", "trace", "Trace", tooltip="The selected trial's power trace and its windows (enter too)"),
                Binding("e", "export", "Export", show=False,
                        tooltip="Export every trial to the file named in the export box (.csv or .json)")]

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self._results: list[dict] = []
        self._rows: list[tuple] = []  # each trial's cells, prepared by the reload
        self._search: list[str] = []  # each trial's cells as lower-case text, for the filter
        self._labels: dict[tuple, str] = {}  # configuration labels, told apart (config_labels)
        self._by_config = False
        self._sorts: dict[bool, Sort | None] = {False: None, True: None}  # per view: trials, configurations
        self._chart = CHARTS[0]  # the one shown on a narrow screen
        self._filter_charts: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Input(placeholder="filter: any text in the row", id="results-filter")
            yield Input(placeholder="export to .csv or .json", id="export-path")
            yield Button("Export", id="export")
        yield Static("", id="results-count", markup=False)
        yield FittedTable(id="results-table", zebra_stripes=True, cursor_type="row")
        with Horizontal(id="results-charts"):
            yield ScatterChart(id="scatter")
            with Vertical(id="jpt-box"):
                yield BarChart("J/token per configuration", unit="J/token", xlabel="configuration (key below)",
                               id="jpt-chart")
                yield Static("", id="jpt-key", markup=False)
            yield PowerChart(id="trace-chart", hint="enter on a trial: its trace")

    def on_mount(self) -> None:
        add_columns(self.query_one(DataTable), TRIAL_COLUMNS)

    def after_open(self) -> None:
        self.reload()

    def on_resize(self) -> None:
        self._layout_charts()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """g only when the charts are shown one at a time."""
        return self.size.width < WIDE if action == "next_chart" else True

    def _layout_charts(self) -> None:
        """All three charts when they fit; else the chosen one (g cycles), so that no title is cut."""
        wide = self.size.width >= WIDE
        for chart in CHARTS:
            self.query_one(f"#{chart}").display = wide or chart == self._chart

    def action_next_chart(self) -> None:
        self._chart = CHARTS[(CHARTS.index(self._chart) + 1) % len(CHARTS)]
        self._layout_charts()

    def action_toggle_configs(self) -> None:
        self._by_config = not self._by_config
        table = self.query_one(DataTable)
        table.clear(columns=True)
        add_columns(table, CONFIG_COLUMNS if self._by_config else TRIAL_COLUMNS)
        self.show_results()

    def action_trace(self) -> None:
        table = self.query_one(DataTable)
        if not self._by_config and table.row_count:
            self.load_trace(int(str(table.get_row_at(table.cursor_row)[0])))

    @on(Button.Pressed, "#export")
    def action_export(self) -> None:
        self.export(self.query_one("#export-path", Input).value.strip())

    @on(Input.Changed, "#results-filter")
    def _filter_changed(self) -> None:
        """The table at once, the charts when typing pauses."""
        self.show_results(charts=False)
        if self._filter_charts is not None:
            self._filter_charts.stop()
        self._filter_charts = self.set_timer(FILTER_CHARTS_DELAY_S, self._charts_after_filter)

    def _charts_after_filter(self) -> None:
        self._filter_charts = None
        self._show_charts([self._results[i] for i in self._kept()])

    @property
    def charts_pending(self) -> bool:
        """Whether the charts still wait for typing in the filter to pause."""
        return self._filter_charts is not None

    @on(DataTable.RowSelected, "#results-table")
    def _trial_selected(self, event: DataTable.RowSelected) -> None:
        if not self._by_config and event.row_key.value is not None:
            self.load_trace(int(event.row_key.value))
            self._chart = "trace-chart"
            self._layout_charts()

    @on(DataTable.HeaderSelected, "#results-table")
    def _sort(self, event: DataTable.HeaderSelected) -> None:
        """A header click sorts by its column, ascending first; a second click on it reverses."""
        column = str(event.column_key.value)
        current = self._sorts[self._by_config]
        descending = current is not None and current.column == column and not current.descending
        self._sorts[self._by_config] = Sort(column, descending)
        self.show_results(charts=False)  # over every kept row, not only the table's; the charts stay as they are

    # --- workers ---

    @work(thread=True, exclusive=True, group="results")
    def reload(self) -> None:
        with self.database() as store:
            trials = store.trials()
        labels = config_labels(trials)
        cells = [trial_cells(t, labels[config_key(t)]) for t in trials]
        search = [" ".join(map(str, row)).lower() for row in cells]
        rows = [tuple(Text(str(cell)) for cell in row) for row in cells]
        self.show_latest(self._loaded, trials, rows, search, labels)

    def _loaded(self, trials: list[dict], rows: list[tuple], search: list[str], labels: dict[tuple, str]) -> None:
        self._results, self._rows, self._search, self._labels = trials, rows, search, labels
        self.show_results()

    @work(thread=True, exclusive=True, group="trace")
    def load_trace(self, trial_id: int) -> None:
        from energytui.app.queries import trace

        with self.database() as store:
            shown = trace(store, trial_id)
        self.show_latest(lambda: self.query_one("#trace-chart", PowerChart).show(shown.samples, shown.marks,
                                                                            shown.label))

    @work(thread=True, exclusive=True, group="export")
    def export(self, path: str) -> None:
        from energytui.app.queries import export

        target = Path(path)
        if target.suffix not in (".csv", ".json"):
            self.tell(f"export: {path!r} must end in .csv or .json", error=True)
            return
        with self.database() as store:
            text = export(store, target.suffix[1:])
        try:
            target.write_text(text)
        except OSError as exc:
            self.tell(f"export: cannot write {path} ({exc.strerror})", error=True)
            return
        self.tell(f"exported to {path}")

    # --- tables and charts ---

    def show_results(self, charts: bool = True) -> None:
        """The trials (or configurations) the filter keeps, in the kept sort order, and (unless only the order
        changed) their charts."""
        kept = self._kept()
        shown = [self._results[i] for i in kept]
        if self._by_config:
            self._fill_configs(shown)
        else:
            self._fill_trials(kept)
        if charts:
            self._show_charts(shown)

    def _kept(self) -> list[int]:
        """The positions of the trials the filter keeps."""
        needle = self.query_one("#results-filter", Input).value.strip().lower()
        if not needle:
            return list(range(len(self._results)))
        return [i for i, text in enumerate(self._search) if needle in text]

    def _fill_trials(self, kept: list[int]) -> None:
        rows = [self._rows[i] for i in kept]
        keys = [str(self._results[i]["id"]) for i in kept]
        self._fill_sorted(rows, keys, TRIAL_COLUMNS)

    def _fill_configs(self, trials: list[dict]) -> None:
        summary = summarise(trials)
        rows = [(row["label"], f"{row['done']}/{row['trials']}", row["ttft_ms"].fmt(0), row["decode_tps"].fmt(1),
                 row["e2e_ms"].fmt(0), energy_cell(row, "j_per_token", 4), energy_cell(row, "avg_power_w", 1))
                for row in summary]
        self._fill_sorted(rows, [f"{row['host_id']}/{row['config_id']}" for row in summary], CONFIG_COLUMNS)

    def _fill_sorted(self, rows: list[tuple], keys: list[str], columns: tuple[str, ...]) -> None:
        table = self.query_one(DataTable)
        if (sort := self._sorts[self._by_config]) is not None:
            order = sort.order(rows, columns)
            rows, keys = [rows[i] for i in order], [keys[i] for i in order]
            sort.show(table)
        fill_rows(table, rows[:MAX_ROWS], keys[:MAX_ROWS])
        what = "configurations" if self._by_config else "trials"
        more = f"; the first {MAX_ROWS} in the table: filter or sort to reach others" if len(rows) > MAX_ROWS else ""
        self.query_one("#results-count", Static).update(f"{len(rows)} {what}{more}")

    def _show_charts(self, shown: list[dict]) -> None:
        done = [steady_view(t) for t in shown if counted(t)]  # a steady window's: its share
        done = [t for t in done if t.get("energy_j") is not None]
        tags = sorted({t["energy_tag"] for t in done if t.get("energy_tag")})
        tag = "ESTIMATED" if "estimated" in tags else "/".join(tags)  # an estimate never passes for a measurement
        if any(t.get("window_id") for t in done):
            tag += " (steady windows)"
        self.query_one(ScatterChart).show([(t["e2e_ms"] / 1e3, t["energy_j"]) for t in done], tag)
        per_config: dict[tuple, list[float]] = {}
        for t in done:
            if t.get("j_per_token") is not None:
                per_config.setdefault(config_key(t), []).append(t["j_per_token"])
        bars = self.query_one("#jpt-chart", BarChart)
        bars.show([self._labels[key] for key in per_config], [sum(v) / len(v) for v in per_config.values()],
                  f"mean J/token per configuration{' ' + tag if tag else ''}")
        self.query_one("#jpt-key", Static).update("\n".join(bars.key) or "no done trials with energy yet")
