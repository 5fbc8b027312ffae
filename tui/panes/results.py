"""The Results tab: every trial (or configuration), filtered and sorted, with charts, traces and export."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input

from energytui.app.views import config_label, energy_cell, summarise

from ..charts import BarChart, PowerChart, ScatterChart
from ..pane import Pane
from ..trials import TRIAL_COLUMNS, fill_trials, sort_key, trial_cells

CONFIG_COLUMNS = ("configuration", "done", "TTFT ms", "decode tok/s", "e2e ms", "J/token", "avg W")


class ResultsPane(Pane):
    BINDINGS = [Binding("c", "toggle_configs", "Trials/configs",
                        tooltip="Show trials, or configurations (mean ± stddev over their trials)")]

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self._results: list[dict] = []
        self._by_config = False
        self._sort_reverse = False

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Input(placeholder="filter: any text in the row", id="results-filter")
            yield Input(placeholder="export to .csv or .json", id="export-path")
            yield Button("Export", id="export")
        yield DataTable(id="results-table", zebra_stripes=True, cursor_type="row")
        with Horizontal(id="results-charts"):
            yield ScatterChart(id="scatter")
            yield BarChart("J/token per configuration", id="jpt-chart")
            yield PowerChart(id="trace-chart", hint="enter on a trial: its trace")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*TRIAL_COLUMNS)

    def after_open(self) -> None:
        self.reload()

    def action_toggle_configs(self) -> None:
        self._by_config = not self._by_config
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns(*(CONFIG_COLUMNS if self._by_config else TRIAL_COLUMNS))
        self.show_results()

    @on(Button.Pressed, "#export")
    def _export_pressed(self) -> None:
        self.export(self.query_one("#export-path", Input).value.strip())

    @on(Input.Changed, "#results-filter")
    def _filter_changed(self) -> None:
        self.show_results()

    @on(DataTable.RowSelected, "#results-table")
    def _trial_selected(self, event: DataTable.RowSelected) -> None:
        if not self._by_config and event.row_key.value is not None:
            self.load_trace(int(event.row_key.value))

    @on(DataTable.HeaderSelected, "#results-table")
    def _sort(self, event: DataTable.HeaderSelected) -> None:
        self._sort_reverse = not self._sort_reverse
        event.data_table.sort(event.column_key, key=sort_key, reverse=self._sort_reverse)

    # --- workers ---

    @work(thread=True, exclusive=True, group="results")
    def reload(self) -> None:
        with self.database() as store:
            self._results = store.trials()
        self.app.call_from_thread(self.show_results)

    @work(thread=True, exclusive=True, group="trace")
    def load_trace(self, trial_id: int) -> None:
        from energytui.app.queries import trace

        with self.database() as store:
            shown = trace(store, trial_id)
        self.app.call_from_thread(self.query_one("#trace-chart", PowerChart).show, shown.samples, shown.marks,
                                  shown.label)

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

    def show_results(self) -> None:
        needle = self.query_one("#results-filter", Input).value.strip().lower()
        shown = [t for t in self._results if not needle or needle in " ".join(map(str, trial_cells(t))).lower()]
        if self._by_config:
            self._fill_configs(shown)
        else:
            fill_trials(self.query_one(DataTable), shown)
        done = [t for t in shown if t["status"] == "done" and t.get("energy_j") is not None]
        tags = sorted({t["energy_tag"] for t in done if t.get("energy_tag")})
        tag = "ESTIMATED" if "estimated" in tags else "/".join(tags)
        self.query_one(ScatterChart).show([(t["e2e_ms"] / 1e3, t["energy_j"]) for t in done], tag)
        per_config: dict[str, list[float]] = {}
        for t in done:
            per_config.setdefault(config_label(t), []).append(t["j_per_token"])
        self.query_one("#jpt-chart", BarChart).show(
            [str(i + 1) for i in range(len(per_config))], [sum(v) / len(v) for v in per_config.values()],
            f"J/token per config{' ' + tag if tag else ''}")

    def _fill_configs(self, trials: list[dict]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in summarise(trials):
            table.add_row(row["label"], f"{row['done']}/{row['trials']}", row["ttft_ms"].fmt(0),
                          row["decode_tps"].fmt(1), row["e2e_ms"].fmt(0), energy_cell(row, "j_per_token", 4),
                          energy_cell(row, "avg_power_w", 1), key=row["config_id"])
