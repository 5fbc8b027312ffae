"""`energytui import`: CSV logs from another machine, with a map and an optional companion power log."""

import csv
import io
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest


from helpers import run_cli

EXAMPLE_MAP = Path(__file__).resolve().parent.parent / "config" / "imports" / "example-map.yaml"
HEADER = ("timestamp,run_id,backend,prompt_id,prompt_template,prompt_length_chars,"
          "latency_ms,tokens_generated,energy_joules,notes\n")
SPEED = {"cpu-t4": (40.0, 25.0), "cpu-t8": (25.0, 40.0), "gpu-l22": (6.0, 110.0), "hyb-l11": (15.0, 70.0)}


def _records():
    """24 prompts over four run ids; energy = watts x latency of each run's machine."""
    records, second = [], 0
    for run_id, (ms_per_token, watts) in SPEED.items():
        backend = {"cpu": "cpu", "gpu": "gpu", "hyb": "hybrid"}[run_id.split("-")[0]]
        for prompt in range(6):
            chars, tokens = 200 + 150 * prompt, 64 + 32 * (prompt % 3)
            latency = ms_per_token * tokens + chars / 4 * ms_per_token / 10
            stamp = f"2026-03-01T10:{second // 60:02d}:{second % 60:02d}"
            second += 7
            records.append({"timestamp": stamp, "run_id": run_id, "backend": backend, "prompt_id": f"p{prompt}",
                            "prompt_template": "sd", "prompt_length_chars": chars, "latency_ms": f"{latency:.1f}",
                            "tokens_generated": tokens, "energy_joules": f"{watts * latency / 1e3:.3f}", "notes": ""})
    return records


def _write(path, records, columns):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    path.write_text(out.getvalue())
    return path


LOG_COLUMNS = HEADER.strip().split(",")


def _log(tmp_path, energy_in_log: bool, extra: str = ""):
    records = _records()
    if not energy_in_log:
        records = [{**r, "energy_joules": ""} for r in records]
    path = _write(tmp_path / "log.csv", records, LOG_COLUMNS)
    path.write_text(path.read_text() + extra)
    return path



@pytest.fixture
def logs(tmp_path):
    """Energy in the log for the second half of the rows, in a companion power log for the first half."""
    records = _records()
    log_rows = [{**r, "energy_joules": ""} for r in records[:12]] + records[12:]
    log = _write(tmp_path / "log.csv", log_rows, LOG_COLUMNS)
    power_log = _write(tmp_path / "power.csv", records[:12], ["timestamp", "backend", "energy_joules", "notes"])
    return log, power_log


def test_import_keeps_host_marks_trials_and_joins_the_power_log(logs, tmp_path, capsys):
    log, power_log = logs
    db = tmp_path / "i.db"
    code, out, err = run_cli(capsys, "import", log, "--map", EXAMPLE_MAP, "--power-log", power_log, "--db", db)
    assert code == 0, err
    assert "imported 24 trials (24 with energy)" in out and "--host imp-" in out
    host = out.split("--host ")[1].split()[0]

    code, out, _ = run_cli(capsys, "export", "--db", db, "--format", "json")
    records = json.loads(out)
    assert len(records) == 24 and {r["imported"] for r in records} == {1}
    assert all("no per-token timings" in r["caveats"] and "characters / 4" in r["caveats"] for r in records)
    assert {r["host_id"] for r in records} == {host}
    assert {r["energy_tag"] for r in records} == {"integrated"} and all(r["energy_j"] > 0 for r in records)
    assert {r["backend"] for r in records} == {"cpu", "gpu", "hybrid"}

    code, out, err = run_cli(capsys, "advise", "--db", db, "--host", host, "--tokens", "96", "--budget", "50W")
    assert code == 0, err
    assert "Recommended:" in out and "CPU" in out and "over budget" in out  # the GPU draws ~110 W
    code, out, _ = run_cli(capsys, "advise", "--db", db, "--host", host, "--explain")
    assert "whole requests (imported logs: no phase split)" in out
    code, out, _ = run_cli(capsys, "advise", "--db", db, "--host", host, "--tokens", "96", "--json")
    for p in [json.loads(out)["recommendation"], *json.loads(out)["alternatives"]]:  # whole requests, per token
        assert p["values"]["j_per_token"] == pytest.approx(p["values"]["energy_j"] / 96)


def test_imported_trials_carry_their_edp_and_a_log_is_imported_once(logs, tmp_path, capsys):
    log, power_log = logs
    db = tmp_path / "once.db"
    args = ("import", log, "--map", EXAMPLE_MAP, "--power-log", power_log, "--db", db)
    assert run_cli(capsys, *args)[0] == 0
    code, out, _ = run_cli(capsys, "export", "--db", db, "--format", "json")
    for record in json.loads(out):
        assert record["edp_js"] == pytest.approx(record["energy_j"] * record["e2e_ms"] / 1e3)
        assert record["threads"] is None if record["backend"] == "gpu" else record["threads"] >= 1

    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "already imported as run 1 (the same log, map and power log); pass --again" in err
    assert err.count("\n") == 1
    code, out, _ = run_cli(capsys, *args, "--again")
    assert code == 0 and "as run 2" in out
    code, _, _ = run_cli(capsys, "import", log, "--map", EXAMPLE_MAP, "--db", db)  # without the power log: new content
    assert code == 0


def test_missing_energy_is_kept_as_missing(tmp_path, capsys):
    log = _log(tmp_path, energy_in_log=False)
    code, out, _ = run_cli(capsys, "import", log, "--map", EXAMPLE_MAP, "--db", tmp_path / "m.db")
    assert code == 0 and "imported 24 trials (0 with energy)" in out


def test_unmapped_run_ids_are_reported_not_guessed(tmp_path, capsys):
    log = _log(tmp_path, energy_in_log=True, extra="2026-03-01T11:00:00,npu-x,npu,p1,sd,100,50,10,1.0,\n")
    code, out, err = run_cli(capsys, "import", log, "--map", EXAMPLE_MAP, "--db", tmp_path / "u.db")
    assert code == 0 and "run id 'npu-x' is not in example-map.yaml" in err


@pytest.mark.parametrize("mutate, message", [
    (lambda text: text.replace("latency_ms", "latency"), "lacks the column(s) latency_ms"),
    (lambda text: text.replace(",64,", ",sixty-four,", 1), "tokens_generated 'sixty-four' is not a whole number"),
    (lambda text: text.replace("2026-03-01T10:00:00", "yesterday", 1), "timestamp 'yesterday'"),
])
def test_bad_logs_are_one_line_errors_and_nothing_is_written(tmp_path, capsys, mutate, message):
    log = _log(tmp_path, energy_in_log=True)
    log.write_text(mutate(log.read_text()))
    db = tmp_path / "b.db"
    code, _, err = run_cli(capsys, "import", log, "--map", EXAMPLE_MAP, "--db", db)
    assert code == 2 and message in err and err.count("\n") == 1
    code, out, _ = run_cli(capsys, "export", "--db", db, "--format", "json")
    assert json.loads(out) == []


def test_bad_map_names_the_key(tmp_path, capsys):
    bad = tmp_path / "map.yaml"
    bad.write_text(EXAMPLE_MAP.read_text().replace("energy_source: integrated", "energy_source: guessed"))
    log = _log(tmp_path, energy_in_log=True)
    code, _, err = run_cli(capsys, "import", log, "--map", bad, "--db", tmp_path / "m.db")
    assert code == 2 and "map.yaml: key 'energy_source': 'guessed' is not one of" in err


def test_advise_all_hosts_answers_each_and_ranks_energy_only_where_measured(logs, measured_db, tmp_path, capsys):
    """This machine's trials (ESTIMATED energy) and another host's imported ones (integrated power) in one
    database: `advise --host all` gives each host its own answer, ranks energy only among hosts with measured
    energy, and latency across all."""
    import shutil

    log, power_log = logs
    db = tmp_path / "two-hosts.db"
    shutil.copy(measured_db, db)
    code, out, err = run_cli(capsys, "import", log, "--map", EXAMPLE_MAP, "--power-log", power_log, "--db", db)
    assert code == 0, err
    imported = out.split("--host ")[1].split()[0]

    code, out, err = run_cli(capsys, "advise", "--db", db, "--host", "all", "--tokens", "96")
    assert code == 0, err
    blocks = out.split("== host ")[1:]
    assert len(blocks) == 2 and all("Recommended:" in block for block in blocks)
    local = next(block for block in blocks if not block.startswith(imported))
    assert "ESTIMATED" in local and "calibrated on 12 trials over 3 configurations" in local
    assert f"Across hosts, minimising energy: host {imported}, GPU · tinyllama" in out
    assert "J per request, from integrated power)." in out
    assert "Note: not ranked by energy:" in out and "ESTIMATED energy" in out.split("Note: not ranked")[1]

    code, out, _ = run_cli(capsys, "advise", "--db", db, "--host", "all", "--tokens", "96", "--objective",
                           "latency", "--json")
    document = json.loads(out)
    assert code == 0 and len(document["hosts"]) == 2
    assert document["notes"] == ["the hosts' answers run different models (SmolLM2-135M-Instruct.Q4_1 Q4_1, "
                                 "tinyllama-1.1b-chat-q4_0 Q4_0): give --model to compare one model across hosts"]
    latencies = {h["host_id"]: h["advice"]["recommendation"]["values"]["latency_s"] for h in document["hosts"]}
    assert document["best_host"] == min(latencies, key=latencies.get)

    code, _, err = run_cli(capsys, "advise", "--db", db, "--host", "all", "--explain")
    assert code == 2 and "give --tokens N" in err


# --- bad input: one line, exit 2, no traceback, and the database exactly as it was (conftest's imported_db: an
# earlier import, for a refused one to leave alone) ---

POWER_HEADER = "timestamp,backend,energy_joules,notes\n"


def _counts(db) -> dict:
    """Rows per table: a refused import must leave each as it was (no phantom run, host or model)."""
    with closing(sqlite3.connect(db)) as conn:
        return {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("runs", "hosts", "models", "trials")}


def _refused(capsys, db, *args) -> str:
    """`energytui import ARGS --db DB` refused: exit 2, one line on stderr, nothing written; the line."""
    before = _counts(db)
    code, out, err = run_cli(capsys, "import", *args, "--db", db)
    assert code == 2 and err.count("\n") == 1 and err.startswith("energytui: error: ") and not out, err
    assert "Traceback" not in err
    assert _counts(db) == before
    return err


def _log_with(tmp_path, column: str, value: str) -> Path:
    records = _records()
    records[0][column] = value  # the first row: line 2
    return _write(tmp_path / "log.csv", records, LOG_COLUMNS)


@pytest.mark.parametrize("column, value, message", [
    ("prompt_length_chars", "100000000000000000000000000",
     "prompt_length_chars '100000000000000000000000000' is outside 0..1e+09"),  # overflowed SQLite half-way
    ("tokens_generated", "1e23", "tokens_generated '1e23' is not a whole number"),
    ("tokens_generated", "-3", "tokens_generated '-3' is outside 0..1e+09"),
    ("latency_ms", "0", "latency_ms '0' is outside 0.001..1e+09"),
    ("latency_ms", "inf", "latency_ms 'inf' is not a finite number"),
    ("energy_joules", "nan", "energy_joules 'nan' is not a finite number"),  # was stored as NULL, tagged
    ("energy_joules", "inf", "energy_joules 'inf' is not a finite number"),  # was Infinity in the JSON export
    ("energy_joules", "1e308", "energy_joules '1e308' is outside 0..1e+09"),
    ("energy_joules", "-1", "energy_joules '-1' is outside 0..1e+09"),
    ("timestamp", "nan", "timestamp 'nan' is neither ISO 8601 nor seconds"),
])
def test_absurd_log_values_are_refused_and_nothing_is_written(imported_db, tmp_path, capsys, column, value,
                                                              message):
    log = _log_with(tmp_path, column, value)
    err = _refused(capsys, imported_db, log, "--map", EXAMPLE_MAP)
    assert f"log.csv: line 2: {message}" in err
    assert _refused(capsys, imported_db, log, "--map", EXAMPLE_MAP) == err  # a retry: the same, not "already"


@pytest.mark.parametrize("power_log, message", [
    (POWER_HEADER + "2026-03-01T10:00:00,cpu,inf,\n", "power.csv: line 2: energy_joules 'inf' is not a finite"),
    (POWER_HEADER + "2026-03-01T10:00:00,cpu,nan,\n", "power.csv: line 2: energy_joules 'nan' is not a finite"),
    (POWER_HEADER + "2026-03-01T10:00:00,cpu,1e308,\n", "power.csv: line 2: energy_joules '1e308' is outside"),
    (POWER_HEADER + "2025-01-01T00:00:01,cpu\n", "power.csv: line 2: the row has no energy_joules, notes"),
    (POWER_HEADER, "power.csv: the power log has no rows, only a header"),
])
def test_bad_power_logs_are_refused_and_nothing_is_written(imported_db, tmp_path, capsys, power_log, message):
    (tmp_path / "power.csv").write_text(power_log)
    log = _log(tmp_path, energy_in_log=False)
    err = _refused(capsys, imported_db, log, "--map", EXAMPLE_MAP, "--power-log", tmp_path / "power.csv")
    assert message in err


@pytest.mark.parametrize("broken, how, message", [
    ("log", "missing", "missing.csv: log not found; check the path"),
    ("log", "folder", "folder: is a folder; give the log file"),
    ("map", "missing", "missing.csv: import map not found; check the path"),
    ("map", "folder", "folder: is a folder; give the import map file"),
    ("power", "missing", "missing.csv: power log not found; check the path"),
    ("power", "folder", "folder: is a folder; give the power log file"),
])
def test_missing_files_and_folders_are_named_before_anything_is_read(imported_db, tmp_path, capsys, broken, how,
                                                                     message):
    (tmp_path / "folder").mkdir()
    paths = {"log": _log(tmp_path, energy_in_log=False), "map": EXAMPLE_MAP, "power": _log(tmp_path, False)}
    paths[broken] = tmp_path / ("missing.csv" if how == "missing" else "folder")
    err = _refused(capsys, imported_db, paths["log"], "--map", paths["map"], "--power-log", paths["power"])
    assert message in err


@pytest.mark.parametrize("old, new, key, message", [
    ("n_params: 1100048384", "n_params: 100000000000000000000000", "model.n_params",
     "100000000000000000000000 is not a whole number in 1..1000000000000000"),  # overflowed SQLite half-way
    ("n_params: 1100048384", "n_params: 1e23", "model.n_params", "1e+23 is not a whole number"),  # as a manifest
    ("n_params: 1100048384", "n_params: -5", "model.n_params", "-5 is not a whole number"),
    ("bits_per_weight: 4.54", "bits_per_weight: .nan", "model.bits_per_weight", "nan is not a number in 0.5..64"),
    ("bits_per_weight: 4.54", "bits_per_weight: -4", "model.bits_per_weight", "-4 is not a number"),
    ("n_layers: 22", "n_layers: 0", "model.n_layers", "0 is not a whole number in 1..10000"),
    ("n_layers: 22", "", "model.n_layers", "missing"),
    ("threads: 8}", "threads: 100000000000000000000000}", "runs.cpu-t8.threads",
     "100000000000000000000000 is not a whole number in 1..512"),
    ("threads: 4}", "threads: 4, batch_size: 1000}", "runs.cpu-t4.batch_size", "1000 is not a whole number"),
    ("gpu_layers: 11,", "gpu_layers: 999,", "runs.hyb-l11.gpu_layers", "999 is outside 0..22 for this model"),
    ("gpu_layers: 11, ", "", "runs.hyb-l11.gpu_layers", "missing: say how many of the model's 22 layers"),
    ("gpu_layers: 22}", "gpu_layers: 20}", "runs.gpu-l22.gpu_layers", "backend gpu offloads all 22 layers"),
    ("threads: 4}", "threads: 4, gpu_layers: 5}", "runs.cpu-t4.gpu_layers", "backend cpu runs no layers on a GPU"),
    ("ram_gb: 32", "ram_gb: lots", "host.ram_gb", "'lots' is not a number"),
    ("ram_gb: 32", "ram_gb: 32\n  cores: -4", "host.cores", "-4 is not a whole number"),
    ("cpu: Intel Core i5-13400F", "cpu: 13400", "host.cpu", "13400: needs a text value"),
    ("chars_per_token: 4.0", "chars_per_token: .nan", "chars_per_token", "nan is not a number in 0.1..100"),
    ("chars_per_token: 4.0", "chars_per_token: .inf", "chars_per_token", "inf is not a number"),
    ("chars_per_token: 4.0", "chars_per_token: 0", "chars_per_token", "0 is not a number"),
])
def test_nonsense_in_the_map_names_the_key_and_nothing_is_written(imported_db, tmp_path, capsys, old, new, key,
                                                                  message):
    assert old in EXAMPLE_MAP.read_text()
    bad = tmp_path / "map.yaml"
    bad.write_text(EXAMPLE_MAP.read_text().replace(old, new, 1))
    err = _refused(capsys, imported_db, _log(tmp_path, energy_in_log=True), "--map", bad)
    assert f"map.yaml: key '{key}': {message}" in err


def test_the_map_is_read_as_a_manifest_is_a_repeated_key_refused_and_1e1_a_number(imported_db, tmp_path, capsys):
    repeated = tmp_path / "map.yaml"
    repeated.write_text(EXAMPLE_MAP.read_text().replace("n_layers: 22", "n_layers: 22\n  n_layers: 24"))
    err = _refused(capsys, imported_db, _log(tmp_path, energy_in_log=True), "--map", repeated)
    line = EXAMPLE_MAP.read_text().splitlines().index("  n_layers: 22") + 2
    assert f"map.yaml: line {line}, column 3: duplicate key 'n_layers' (first on line {line - 1}); keep one" in err
    scientific = tmp_path / "scientific.yaml"
    scientific.write_text(EXAMPLE_MAP.read_text().replace("ram_gb: 32", "ram_gb: 3.2e1"), encoding="utf-8-sig")
    code, out, err = run_cli(capsys, "import", _log(tmp_path, energy_in_log=True), "--map", scientific,
                             "--db", tmp_path / "scientific.db")
    assert code == 0 and "imported 24 trials" in out, err


def test_gpu_layers_of_a_gpu_run_default_to_all_and_half_is_a_count(tmp_path, capsys):
    """As in a manifest: a gpu run offloads every layer, and `half` of 22 layers is 11."""
    mapping = tmp_path / "map.yaml"
    mapping.write_text(EXAMPLE_MAP.read_text().replace("{backend: gpu, gpu_layers: 22}", "{backend: gpu}")
                       .replace("gpu_layers: 11,", "gpu_layers: half,"))
    db = tmp_path / "layers.db"
    code, _, err = run_cli(capsys, "import", _log(tmp_path, energy_in_log=True), "--map", mapping, "--db", db)
    assert code == 0, err
    _, out, _ = run_cli(capsys, "export", "--db", db, "--format", "json")
    layers = {r["backend"]: r["gpu_layers"] for r in json.loads(out)}
    assert layers == {"cpu": 0, "gpu": 22, "hybrid": 11}


def test_a_log_with_only_a_header_says_so(imported_db, tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text(HEADER)
    err = _refused(capsys, imported_db, log, "--map", EXAMPLE_MAP)
    assert "log.csv: the log has no rows, only a header" in err


def test_a_log_saved_by_excel_with_a_byte_order_mark_is_read(tmp_path, capsys):
    log = _log(tmp_path, energy_in_log=True)
    log.write_text(log.read_text(), encoding="utf-8-sig")  # Excel's "CSV UTF-8"
    code, out, err = run_cli(capsys, "import", log, "--map", EXAMPLE_MAP, "--db", tmp_path / "bom.db")
    assert code == 0 and "imported 24 trials (24 with energy)" in out, err


def test_a_write_failing_half_way_leaves_the_database_as_it_was(imported_db, tmp_path, monkeypatch):
    """Host, model, run and trials are one transaction: when the trials' insert fails after the run row was
    written (SQLite refusing an integer it cannot hold, as before the bounds), a new host and model go too."""
    from energytui.engine import store as store_module
    from energytui.engine.importer import import_logs
    from energytui.engine.store import Store

    real = store_module.stored_row
    monkeypatch.setattr(store_module, "stored_row", lambda values, where: {**real(values, where),
                                                                             "prompt_tokens": 10**30})
    other = tmp_path / "other.yaml"  # another host and model: rows the failed import would have added
    other.write_text(EXAMPLE_MAP.read_text().replace("lab-desktop", "other-desktop").replace("tinyllama", "other"))
    log, before = _log(tmp_path, energy_in_log=True), _counts(imported_db)
    store = Store(imported_db)
    try:
        with pytest.raises(OverflowError):
            import_logs(store, log, other)
        assert _counts(imported_db) == before
        monkeypatch.undo()
        assert import_logs(store, log, other).trials == 24  # not "already imported"
    finally:
        store.close()


@pytest.mark.parametrize("column, value, message", [
    ("tokens_generated", "6_4", "tokens_generated '6_4' is not a whole number; fix the value (digits 0-9, no "
     "separators)"),  # Python's int() reads 64
    ("prompt_length_chars", "٤٠٠", "prompt_length_chars '٤٠٠' is not a whole number; fix the value (digits 0-9, "
     "no separators)"),  # Arabic-Indic digits: int() reads 400
    ("latency_ms", "1_000.5", "latency_ms '1_000.5' is not a number; fix the value (digits 0-9, no separators)"),
    ("energy_joules", "١٢", "energy_joules '١٢' is not a number; fix the value (digits 0-9, no separators)"),
    ("timestamp", "99999999999999999999", "timestamp '99999999999999999999' is outside the years 1970..2100; "
     "fix the value (ISO 8601, or seconds since 1970 rather than milliseconds)"),  # the year ~3e12
    ("timestamp", "1772359200000", "timestamp '1772359200000' is outside the years 1970..2100; "
     "fix the value (ISO 8601, or seconds since 1970 rather than milliseconds)"),  # milliseconds
    ("timestamp", "-1", "timestamp '-1' is outside the years 1970..2100; "
     "fix the value (ISO 8601, or seconds since 1970 rather than milliseconds)"),
    ("timestamp", "0001-01-01T00:00:00+01:00", "timestamp '0001-01-01T00:00:00+01:00' is outside the years "
     "1970..2100; fix the value (ISO 8601, or seconds since 1970 rather than milliseconds)"),
    ("timestamp", "2101-01-01T00:00:00Z", "timestamp '2101-01-01T00:00:00Z' is outside the years 1970..2100; "
     "fix the value (ISO 8601, or seconds since 1970 rather than milliseconds)"),
    ("timestamp", "1_772_359_200", "timestamp '1_772_359_200' is neither ISO 8601 nor seconds; fix the value"),
])
def test_cells_are_plain_ascii_numbers_and_timestamps_plausible(imported_db, tmp_path, capsys, column, value,
                                                                 message):
    log = _log_with(tmp_path, column, value)
    err = _refused(capsys, imported_db, log, "--map", EXAMPLE_MAP)
    assert err == f"energytui: error: {log}: line 2: {message}\n"


def test_plain_cells_with_spaces_and_seconds_timestamps_are_read(tmp_path, capsys):
    records = _records()
    records[0].update(timestamp="1772359200", tokens_generated=" 64 ", latency_ms="+1.5e3")
    log = _write(tmp_path / "log.csv", records, LOG_COLUMNS)
    code, out, err = run_cli(capsys, "import", log, "--map", EXAMPLE_MAP, "--db", tmp_path / "plain.db")
    assert code == 0 and "imported 24 trials" in out, err


def test_a_run_id_yaml_reads_as_a_number_matches_the_log_as_text(tmp_path, capsys):
    mapping = tmp_path / "map.yaml"
    mapping.write_text(EXAMPLE_MAP.read_text().replace("  cpu-t8:", "  8:"))
    log = _write(tmp_path / "log.csv", [{**r, "run_id": "8" if r["run_id"] == "cpu-t8" else r["run_id"]}
                                        for r in _records()], LOG_COLUMNS)
    db = tmp_path / "int.db"
    code, out, err = run_cli(capsys, "import", log, "--map", mapping, "--db", db)
    assert code == 0 and "imported 24 trials" in out and not err, err
    _, out, _ = run_cli(capsys, "export", "--db", db, "--format", "json")
    assert {r["run_id"] for r in json.loads(out)} == {"8", "cpu-t4", "gpu-l22", "hyb-l11"}


@pytest.mark.parametrize("old, new, message", [
    ("  cpu-t8:", "  8:  {backend: cpu}\n  \"8\":", "key 'runs.8': the run id is given twice (once quoted); keep one"),
    ("  cpu-t8:", "  2026-03-01:", "key 'runs.2026-03-01': a run id must be text, and YAML reads 2026-03-01 as a "
     "date; put it in quotes, as the log writes it"),
    ("  cpu-t8:", "  on:", "key 'runs.True': a run id must be text, and YAML reads True as a boolean; put it in "
     "quotes, as the log writes it"),
])
def test_map_run_ids_that_are_not_text_are_refused(imported_db, tmp_path, capsys, old, new, message):
    mapping = tmp_path / "map.yaml"
    mapping.write_text(EXAMPLE_MAP.read_text().replace(old, new, 1))
    err = _refused(capsys, imported_db, _log(tmp_path, energy_in_log=True), "--map", mapping)
    assert err == f"energytui: error: {mapping}: {message}\n"


def test_a_backend_that_contradicts_the_map_is_refused(imported_db, tmp_path, capsys):
    log = _log_with(tmp_path, "backend", "gpu")  # line 2 is run cpu-t4, a cpu run in the map
    err = _refused(capsys, imported_db, log, "--map", EXAMPLE_MAP)
    assert err == (f"energytui: error: {log}: line 2: run id 'cpu-t4' has backend 'gpu' in the log but 'cpu' in "
                   "example-map.yaml; fix the log or the map\n")


@pytest.mark.parametrize("broken", ["log", "map", "power"])
def test_a_pipe_is_no_log_map_or_power_log(imported_db, tmp_path, capsys, broken):
    """A FIFO (or /dev/stdin, a tty) would block the read forever: refused before it is opened."""
    what = {"log": "log", "map": "import map", "power": "power log"}[broken]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    paths = {"log": _log(tmp_path, energy_in_log=False), "map": EXAMPLE_MAP, "power": _log(tmp_path, False),
             broken: fifo}
    err = _refused(capsys, imported_db, paths["log"], "--map", paths["map"], "--power-log", paths["power"])
    assert err == (f"energytui: error: {fifo}: not a regular file (a device, pipe or socket); "
                   f"give the path of a saved {what}\n")


def test_an_unreadable_log_is_one_line(imported_db, tmp_path, capsys, monkeypatch):
    log = _log(tmp_path, energy_in_log=True)
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self == log:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    err = _refused(capsys, imported_db, log, "--map", EXAMPLE_MAP)
    assert err == f"energytui: error: {log}: cannot read the log (Permission denied); check its permissions\n"
