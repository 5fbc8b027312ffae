"""`energytui import`: CSV logs from another machine, with a map and an optional companion power log."""

import csv
import io
import json
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
    (lambda text: text.replace(",64,", ",sixty-four,", 1), "tokens_generated 'sixty-four' is not a number"),
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
