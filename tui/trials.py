"""Trial tables shared by the Queue, Live and Results panes: the table, its columns, cells, refill and sort order."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from energytui.app.views import TAG_LABELS, config_key, config_labels, stalled

TRIAL_COLUMNS = ("id", "status", "run", "configuration", "prompt", "tok/s", "TTFT ms", "J/token", "energy source")
STATUSES = ("pending", "running", "done", "failed", "aborted")
ARROWS = {False: " ▲", True: " ▼"}  # ascending, descending
ARROW_ROOM = "  "  # each header is added this much wider, so that an arrow never widens its column


class FittedTable(DataTable):
    """A DataTable whose rows are drawn again once its columns are measured. Textual (8.2.8) measures new rows when
    the app is next idle, and keys the lines it has drawn by a count that measuring leaves alone: rows drawn before
    that (a loaded machine repaints first) kept header-wide columns, labels cut short, until the cursor moved."""

    async def _on_idle(self, event: events.Idle) -> None:
        widths = [column.content_width for column in self.columns.values()]
        await super()._on_idle(event)
        if [column.content_width for column in self.columns.values()] != widths:
            self._clear_caches()
            self.refresh()


def shown_status(trial: dict) -> str:
    """A trial's status as the tables show it: `stalled` for a done trial left out of the means."""
    return "stalled" if stalled(trial) else trial["status"]


def trial_cells(t: dict, label: str) -> tuple:
    """A trial's row; `label`: its configuration's label among the trials shown (config_labels)."""
    tag = TAG_LABELS.get(t["energy_tag"], "–") if t.get("energy_tag") else "–"
    return (t["id"], shown_status(t), t["run_id"], label, t["prompt_id"],
            f"{t['decode_tps']:.1f}" if t.get("decode_tps") else "–",
            f"{t['ttft_ms']:.0f}" if t.get("ttft_ms") else "–",
            f"{t['j_per_token']:.4f}" if t.get("j_per_token") is not None else "–", tag)


def trial_rows(trials: list[dict]) -> list[tuple]:
    """Every trial's cells, with configuration labels that tell the configurations apart."""
    labels = config_labels(trials)
    return [trial_cells(t, labels[config_key(t)]) for t in trials]


def add_columns(table: DataTable, names: tuple[str, ...]) -> None:
    """Columns keyed by their names, with room for a sort arrow."""
    for name in names:
        table.add_column(name + ARROW_ROOM, key=name)


def fill_trials(table: DataTable, trials: list[dict]) -> None:
    """Refill a table, keeping the cursor on the same trial (or the same row) when it can."""
    fill_rows(table, trial_rows(trials), [str(t["id"]) for t in trials])


def fill_rows(table: DataTable, rows: list[tuple], keys: list[str]) -> None:
    """Refill a table with keyed rows, keeping the cursor on the same key (or the same row) when it can; a table
    that already holds exactly these rows is left alone (the app's own writes come back through its database poll:
    a refill would clear it and re-measure its columns for nothing, and a redraw between the two shows header-wide
    columns)."""
    if keys == [key.value for key in table.rows] and all(
            table.get_row(key) == list(cells) for cells, key in zip(rows, keys)):
        return
    previous = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
    row = table.cursor_row
    table.clear()
    for cells, key in zip(rows, keys):
        table.add_row(*cells, key=key)
    if keys:
        kept = isinstance(previous, str) and previous in table.rows
        table.move_cursor(row=table.get_row_index(previous) if isinstance(previous, str) and kept
                          else min(row, len(keys) - 1))


def sort_key(value):
    """Numbers sort as numbers, '–' last, text as text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


@dataclass
class Sort:
    """A table's sort: by which column, which way; kept across refills."""

    column: str
    descending: bool = False

    def show(self, table: DataTable) -> None:
        """The arrow on this column's header, and only there."""
        for key, column in table.columns.items():
            name = str(key.value)
            column.label = Text(name + (ARROWS[self.descending] if name == self.column else ARROW_ROOM))
        table.refresh()

    def order(self, rows: list[tuple], names: tuple[str, ...]) -> list[int]:
        """The positions of `rows` (cells in the order of `names`) in this sort's order."""
        if self.column not in names:
            return list(range(len(rows)))
        at = names.index(self.column)
        return sorted(range(len(rows)), key=lambda i: sort_key(str(rows[i][at])), reverse=self.descending)


def status_counts(trials: list[dict]) -> dict[str, int]:
    return {s: n for s in STATUSES if (n := sum(t["status"] == s for t in trials))}
