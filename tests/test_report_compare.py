"""Reports and comparisons over two imported hosts: EDP, roll-ups, best-by lines and `compare`, checked
against figures computed here from the raw rows the test writes."""

import json
import statistics

import pytest

from energytui.engine.report import missing_trace_reason

from helpers import run_cli
from test_import import EXAMPLE_MAP, LOG_COLUMNS, _records, _write

SLOWER = 2.0  # the second host runs every prompt twice as long at the same power


@pytest.fixture
def two_hosts(tmp_path, capsys):
    """The example study's log on its own host, and the same run ids on a second, slower host."""
    first = _records()
    second = [{**r, "latency_ms": f"{float(r['latency_ms']) * SLOWER:.1f}",
               "energy_joules": f"{float(r['energy_joules']) * SLOWER:.3f}"} for r in first]
    db = tmp_path / "two.db"
    other_map = tmp_path / "other-map.yaml"
    other_map.write_text(EXAMPLE_MAP.read_text().replace("name: lab-desktop", "name: old-laptop")
                         .replace("cpu: Intel Core i5-13400F", "cpu: Intel Core i5-8250U"))
    hosts = []
    for rows, mapping, name in ((first, EXAMPLE_MAP, "a.csv"), (second, other_map, "b.csv")):
        code, out, err = run_cli(capsys, "import", _write(tmp_path / name, rows, LOG_COLUMNS), "--map", mapping,
                                 "--db", db)
        assert code == 0, err
        hosts.append(out.split("host ")[1].split(";")[0])
    return db, hosts, {hosts[0]: first, hosts[1]: second}


def _raw(rows, **match):
    picked = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return [float(r["energy_joules"]) for r in picked], [float(r["latency_ms"]) / 1e3 for r in picked]


def test_two_hosts_never_merge_and_edp_is_both_means(two_hosts, capsys):
    db, hosts, raw = two_hosts
    code, out, _ = run_cli(capsys, "report", "--db", db, "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 8  # 4 run ids on each host, never merged
    for row in rows:
        run_id = row["label"].split(" (imported)")[0]
        energy, seconds = _raw(raw[row["host_id"]], run_id=run_id)
        assert row["done"] == len(energy) == 6
        assert row["edp_js_mean"] == pytest.approx(statistics.fmean(e * s for e, s in zip(energy, seconds)), rel=1e-3)
        assert row["edp_of_means_js"] == pytest.approx(statistics.fmean(energy) * statistics.fmean(seconds), rel=1e-3)
        assert row["decode_tps_mean"] is None and row["ttft_ms_mean"] is None  # the log had no such timings


def test_backend_roll_up_and_best_lines_follow_the_raw_rows(two_hosts, capsys):
    db, hosts, raw = two_hosts
    code, out, _ = run_cli(capsys, "report", "--db", db, "--by", "backend", "--format", "csv")
    lines = out.splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert code == 0 and len(rows) == 6  # cpu, gpu, hybrid on each host
    for row in rows:
        energy, seconds = _raw(raw[row["host_id"]], backend=row["backend"])
        assert float(row["energy_j_mean"]) == pytest.approx(statistics.fmean(energy), rel=1e-3)
        assert float(row["e2e_ms_mean"]) == pytest.approx(statistics.fmean(seconds) * 1e3, rel=1e-3)

    code, out, _ = run_cli(capsys, "report", "--db", db)
    for host in hosts:
        means = {run_id: statistics.fmean(_raw(raw[host], run_id=run_id)[0]) for run_id in ("cpu-t4", "cpu-t8",
                                                                                           "gpu-l22", "hyb-l11")}
        best = min(means, key=means.get)
        line = next(x for x in out.splitlines() if x.startswith(f"- best on host {host}"))
        assert line.split("by energy per request: ")[1].startswith(f"{best} (imported)")
    assert "Host `" in out and "unknown CPUs" in out and "(imported from logs)" in out
    assert "model load and warm-up excluded" not in out and "may include model load" in out
    assert "## Caveats of imported data" in out and "no per-token timings" in out


def test_compare_two_hosts_gives_each_sides_mean_and_the_ratio(two_hosts, capsys):
    db, hosts, raw = two_hosts
    code, out, _ = run_cli(capsys, "compare", hosts[0], hosts[1], "--db", db, "--format", "json")
    data = json.loads(out)
    assert code == 0 and len(data["matched"]) == 4 and data["only_in_a"] == data["only_in_b"] == []
    for row in data["matched"]:
        assert row["n_a"] == row["n_b"] == 6
        assert row["edp_js_ratio_b_a"] == pytest.approx(SLOWER ** 2, rel=1e-2)  # energy and time both ×2
        assert row["j_per_token_ratio_b_a"] == pytest.approx(SLOWER, rel=1e-2)
    code, out, _ = run_cli(capsys, "compare", hosts[0], hosts[1], "--db", db)
    assert code == 0 and "| configuration | n A | n B |" in out and "| 4.00 |" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "configuration" not in line]
    assert len(rows) == 4  # each side's J/token and EDP carry their source, as report's cells do
    assert all(row.count(" measured (integrated power) |") == 4 for row in rows), rows


def test_compare_names_what_it_cannot_find(two_hosts, capsys):
    db, _, _ = two_hosts
    code, _, err = run_cli(capsys, "compare", "cpu-t4", "nothing-here", "--db", db)
    assert code == 2 and "'nothing-here' is neither a run number (1, 2)" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "compare", "cpu-t4", "gpu-l22", "--db", db)
    assert code == 1 and "share no configuration" in err
    code, _, err = run_cli(capsys, "compare", "1", "01", "--db", db)
    assert code == 2 and "compare: run 1 against itself; name two different runs" in err
    code, _, err = run_cli(capsys, "compare", "\u0661", "2", "--db", db)  # an Arabic-Indic one is not run 1
    assert code == 2 and "'\u0661' is neither a run number (1, 2)" in err


def test_compare_says_a_run_has_no_done_trials(tmp_path, capsys):
    from energytui.engine.store import Store

    store = Store(tmp_path / "pending.db")
    store.create_run("m.yaml", "sha", None, [{"run_id": "a", "config_id": "c", "backend": "cpu"}])
    store.close()
    code, _, err = run_cli(capsys, "compare", "1", "a", "--db", tmp_path / "pending.db")
    assert code == 2 and err.count("\n") == 1
    assert "compare: run 1 has no done trials (`energytui export` lists each trial and how it ended)" in err


@pytest.mark.parametrize("mutate, key", [
    (lambda text: text.replace("energy_source: integrated", "energy_sorce: integrated"), "'energy_sorce': unknown key"),
    (lambda text: text.replace("energy_source: integrated", ""), "'energy_source': missing: declare how"),
    (lambda text: text.replace("{backend: cpu, threads: 8}", "{backend: cpu, thread: 8}"),
     "'runs.cpu-t8.thread': unknown key; use backend, threads"),
    (lambda text: text.replace("threads: 4}", "threads: four}"),
     "'runs.cpu-t4.threads': 'four' is not a whole number in 1..512"),
    (lambda text: text.replace("chars_per_token: 4.0", "chars_per_token: 0"), "'chars_per_token': 0 is not"),
    (lambda text: text.replace("  ram_gb: 32", "  ram: 32"), "'host.ram': unknown key"),
])
def test_every_bad_map_value_is_one_line_naming_the_key(tmp_path, capsys, mutate, key):
    bad = tmp_path / "map.yaml"
    bad.write_text(mutate(EXAMPLE_MAP.read_text()))
    log = _write(tmp_path / "log.csv", _records(), LOG_COLUMNS)
    code, _, err = run_cli(capsys, "import", log, "--map", bad, "--db", tmp_path / "m.db")
    assert code == 2 and key in err and err.count("\n") == 1


def test_an_unknown_energy_method_is_shown_as_unknown(tmp_path, capsys):
    mapping = tmp_path / "map.yaml"
    mapping.write_text(EXAMPLE_MAP.read_text().replace("energy_source: integrated", "energy_source: unknown"))
    db = tmp_path / "u.db"
    assert run_cli(capsys, "import", _write(tmp_path / "log.csv", _records(), LOG_COLUMNS), "--map", mapping,
                   "--db", db)[0] == 0
    code, out, _ = run_cli(capsys, "report", "--db", db)
    assert code == 0 and "method UNKNOWN" in out and "measured (integrated power)" not in out


def test_an_imported_trial_says_why_it_has_no_trace():
    assert "imported from a log that recorded energy per prompt" in missing_trace_reason({"imported": 1})
    assert "no power samples were recorded" in missing_trace_reason({"status": "done"})
