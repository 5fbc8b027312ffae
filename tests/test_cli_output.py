"""The CLI's terminal output: rich tables folded to a width, `--columns`, and the progress display."""

import re

import pytest

from energytui.engine.importer import import_logs
from energytui.engine.report import summarise, table_cells
from energytui.engine.store import Store
from energytui.tables import fold
from helpers import run_cli

import test_import

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


@pytest.fixture
def imported_db(tmp_path):
    """24 trials imported from a log: figures that are the same on every machine."""
    store = Store(tmp_path / "imported.db")
    import_logs(store, test_import._log(tmp_path, energy_in_log=True), test_import.EXAMPLE_MAP)
    store.close()
    return tmp_path / "imported.db"


def test_report_columns_choose_and_order_the_table(imported_db, capsys):
    code, out, _ = run_cli(capsys, "report", "--db", imported_db, "--columns", "j/REQUEST, Configuration,e2e ms")
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table == [
        "| J/request | configuration | e2e ms |",
        "|---|---|---|",
        "| 110.38 ± 32.56 measured (integrated power) | cpu-t4 (imported): Q4_0 cpu gpu-build t=4 B=1 sd "
        "| 4415.0 ± 1302.6 |",
        "| 110.38 ± 32.56 measured (integrated power) | cpu-t8 (imported): Q4_0 cpu gpu-build t=8 B=1 sd "
        "| 2759.4 ± 814.1 |",
        "| 72.85 ± 21.49 measured (integrated power) | gpu-l22 (imported): Q4_0 gpu t=? ngl=22 B=1 sd "
        "| 662.2 ± 195.4 |",
        "| 115.89 ± 34.19 measured (integrated power) | hyb-l11 (imported): Q4_0 hybrid t=8 ngl=11 B=1 sd "
        "| 1655.6 ± 488.4 |"]


def test_report_columns_take_the_long_and_the_short_edp_headers_with_a_dot_for_the_middle_dot(imported_db, capsys):
    code, out, _ = run_cli(capsys, "report", "--db", imported_db, "--columns",
                           "configuration,EDP J.s (product of means),edp j·s")
    header = next(line for line in out.splitlines() if line.startswith("|"))
    assert code == 0 and header == "| configuration | EDP J·s (product of means) | EDP J·s (mean of trials) |"


def test_run_columns_choose_and_order_the_summary(write_manifest, model_path, tmp_path, capsys):
    manifest = write_manifest(f"defaults:\n  model: {model_path}\n  n_ctx: 64\nruns:\n  - id: one\n"
                              "    prompt_tokens: 8\n    max_tokens: 2\n    ignore_eos: true\n")
    code, out, _ = run_cli(capsys, "run", manifest, "--db", tmp_path / "c.db", "--idle-s", "0.1",
                           "--columns", "gen tok,configuration,done")
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("gen tok"))
    assert code == 0 and re.split(r"  +", lines[header]) == ["gen tok", "configuration", "done"]
    assert re.split(r"  +", lines[header + 2]) == ["2", "one: Q4_1 cpu t=2 nb=512 B=1 synthetic-8", "1/1"]
    assert lines[header + 3].startswith("energy columns (")  # one configuration: the table ends there
