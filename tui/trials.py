"""Trial tables shared by the Queue and Results panes: their columns, cells, refill and sort order."""

from __future__ import annotations

from textual.widgets import DataTable

from energytui.app.views import TAG_LABELS, config_label

TRIAL_COLUMNS = ("id", "status", "run", "configuration", "prompt", "tok/s", "TTFT ms", "J/token", "energy source")
STATUSES = ("pending", "running", "done", "failed", "aborted")


def trial_cells(t: dict) -> tuple:
    tag = TAG_LABELS.get(t["energy_tag"], "–") if t.get("energy_tag") else "–"
    return (t["id"], t["status"], t["run_id"], config_label(t), t["prompt_id"],
            f"{t['decode_tps']:.1f}" if t.get("decode_tps") else "–",
            f"{t['ttft_ms']:.0f}" if t.get("ttft_ms") else "–",
            f"{t['j_per_token']:.4f}" if t.get("j_per_token") is not None else "–", tag)


def fill_trials(table: DataTable, trials: list[dict]) -> None:
    """Refill a table, keeping the cursor on the same trial (or the same row) when it can."""
    previous = table.get_row_at(table.cursor_row)[0] if table.row_count else None
    row = table.cursor_row
    table.clear()
    for t in trials:
        table.add_row(*trial_cells(t), key=str(t["id"]))
    ids = [t["id"] for t in trials]
    if trials:
        table.move_cursor(row=ids.index(previous) if previous in ids else min(row, len(ids) - 1))


def sort_key(value):
    """Numbers sort as numbers, '–' last, text as text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def status_counts(trials: list[dict]) -> dict[str, int]:
    return {s: n for s in STATUSES if (n := sum(t["status"] == s for t in trials))}
