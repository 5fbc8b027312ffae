"""bench/gpu_compare.py on a real SQLite store with GPU samples written by the test (no GPU here)."""

import subprocess
import sys
from pathlib import Path

from energytui.engine.store import Store
from energytui.engine.telemetry import Sample

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_compare.py"
MS = 1_000_000


def _db_with_gpu_trial(path: Path, counter_watts: float, power_watts: float) -> Path:
    store = Store(path)
    run = store.create_run("gpu-check.yaml", "sha", None, [{"run_id": "gpu", "config_id": "c", "backend": "gpu"}])
    trial = store.next_pending(run)["id"]
    samples = [Sample(t * 10 * MS, "gpu0", "counter", power_watts, counter_watts * t * 0.01) for t in range(0, 201)]
    store.finish_trial(trial, {"t_start_ns": 200 * MS, "t_end_ns": 1800 * MS}, [], samples)
    store.close()
    return path


def _compare(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(db)], capture_output=True, text=True)


def test_agreeing_counter_and_power_pass(tmp_path):
    result = _compare(_db_with_gpu_trial(tmp_path / "ok.db", 80.0, 80.8))
    assert result.returncode == 0, result.stderr
    assert "diff +1.00%" in result.stdout and "PASS" in result.stdout


def test_disagreement_beyond_3_percent_fails(tmp_path):
    result = _compare(_db_with_gpu_trial(tmp_path / "bad.db", 80.0, 90.0))
    assert result.returncode == 1 and "FAIL" in result.stdout


def test_nothing_to_compare_is_not_a_missed_target(tmp_path):
    store = Store(tmp_path / "cpu.db")
    run = store.create_run("gpu-check.yaml", "sha", None, [{"run_id": "cpu", "config_id": "c", "backend": "cpu"}])
    trial = store.next_pending(run)["id"]
    store.finish_trial(trial, {"t_start_ns": 0, "t_end_ns": 10 * MS}, [], [Sample(0, "cpu", "estimated", 5.0, 0.0)])
    store.close()
    result = _compare(tmp_path / "cpu.db")
    assert result.returncode == 2 and "nothing to compare" in result.stdout
