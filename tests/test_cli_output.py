"""The CLI's terminal output: rich tables folded to a width, `--columns`, and the progress display."""

import re

import pytest

from energytui.engine.report import summarise, table_cells
from energytui.engine.store import Store
from energytui.tables import fold

HEADERS = ["configuration", "done", "TTFT ms", "J/token"]
BODY = [["quick: Q4_1 cpu t=2 synthetic-16", "2/2", "472.9 ± 12.0", "1.3904 ± 0.0012"],
        ["chat: Q4_1 cpu t=2 sd", "1/2", "802.7", "–"]]


def test_a_table_wider_than_the_width_folds_repeating_the_key_column():
    assert fold(HEADERS, BODY, width=52) == (
        "configuration                     done  TTFT ms\n"
        "--------------------------------- ----- ------------\n"
        "quick: Q4_1 cpu t=2 synthetic-16  2/2   472.9 ± 12.0\n"
        "chat: Q4_1 cpu t=2 sd             1/2   802.7\n"
        "\n"
        "configuration                     J/token\n"
        "--------------------------------- ---------------\n"
        "quick: Q4_1 cpu t=2 synthetic-16  1.3904 ± 0.0012\n"
        "chat: Q4_1 cpu t=2 sd             –")


def test_without_a_width_a_table_is_one_and_each_row_one_line_for_grep():
    lines = fold(HEADERS, BODY).splitlines()
    assert len(lines) == 4 and lines[2] == "quick: Q4_1 cpu t=2 synthetic-16  2/2   472.9 ± 12.0  1.3904 ± 0.0012"


def test_where_no_column_fits_beside_the_key_the_key_wraps_and_numbers_stay_whole():
    out = fold(HEADERS, BODY, width=30)
    assert max(map(len, out.splitlines())) <= 30
    assert out.split("\n\n")[-1] == ("configuration  J/token\n"
                                      "-------------- ---------------\n"
                                      "quick: Q4_1    1.3904 ± 0.0012\n"
                                      "cpu t=2\n"
                                      "synthetic-16\n"
                                      "chat: Q4_1     –\n"
                                      "cpu t=2 sd")


def test_cells_are_text_never_markup_and_escape_codes_only_when_styled():
    headers, body = ["configuration", "note"], [["[bold]x[/bold] :smile:", "1.0"]]
    plain = fold(headers, body, width=80)
    assert "[bold]x[/bold] :smile:  1.0" in plain and "\x1b" not in plain
    styled = fold(headers, body, width=80, styled=True)
    assert "\x1b[1mconfiguration" in styled and "[bold]x[/bold] :smile:" in styled


def test_the_summary_of_a_real_run_folds_into_80_columns(measured_db):
    store = Store(measured_db, read_only=True)
    try:
        headers, body, _ = table_cells(summarise(store.trials()), compact=True)
    finally:
        store.close()
    tables = [table.splitlines() for table in fold(headers, body, width=80).split("\n\n")]
    assert len(tables) > 1 and max(len(line) for table in tables for line in table) <= 80
    shown = [_header_cells(table[0], table[1]) for table in tables]
    assert all(cells[0] == "configuration" for cells in shown)  # the key column starts every fold
    assert [h for cells in shown for h in cells[1:]] == headers[1:]  # each other column once, in order
    for table in tables:  # every row's cells whole, on its row's line, under their header
        for row, line in zip(body, table[2:]):
            assert line.startswith(row[0])
            for header, start in zip(_header_cells(table[0], table[1]), _starts(table[1])):
                assert line[start:].startswith(row[headers.index(header)])


def _starts(rule: str) -> list[int]:
    return [match.start() for match in re.finditer(r"-+", rule)]


def _header_cells(header_line: str, rule: str) -> list[str]:
    starts = _starts(rule)
    return [header_line[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]


@pytest.mark.parametrize("width", [60, 80, 100, 120])
def test_every_fold_fits_the_width(width):
    headers = ["configuration", *(f"column {i}" for i in range(12))]
    body = [[f"run-{r}: Q4_1 cpu t={r} nb=512 B=1 synthetic-{r}", *(f"{r * 1000 + i:.2f} ± 0.01" for i in range(12))]
            for r in range(3)]
    out = fold(headers, body, width=width)
    assert max(map(len, out.splitlines())) <= width
    assert sum(line.startswith("configuration") for line in out.splitlines()) == out.count("\n\n") + 1
