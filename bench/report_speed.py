"""`energytui report` and `energytui compare` on a database of 10,000 trials, as whole processes.

    .venv/bin/python bench/report_speed.py [--trials 10000] [--repeats 5]

The database is generated (two hosts, 40 configurations each, done trials with timings and
ESTIMATED energy), written with the same Store the runner uses; every figure in it is made up
and only its size matters. Targets: ≤ 1 s each, beside a bare Python start-up.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from energytui.engine.store import Store

ENERGYTUI = Path(sys.executable).with_name("energytui")
TARGET_S = 1.0


def generated_db(path: Path, n_trials: int) -> None:
    rng = random.Random(0)
    store = Store(path)
    store.upsert_model({"path": "/models/made-up.gguf", "name": "made-up", "quant": "Q4_1", "bits_per_weight": 5.7,
                        "n_params": 134_515_008, "n_layers": 30})
    per_host = n_trials // 2
    for host in ("host-a", "host-b"):
        store.upsert_host({"id": host, "hostname": host, "cpu": "made-up", "cores": 8, "ram_gb": 16.0,
                           "llama_cpp": "0.3.36", "gpu_offload": 0})
        trials = []
        for i in range(per_host):
            threads, batch = 1 + i % 8, 1 + (i // 8) % 5
            e2e = rng.uniform(500, 5000)
            energy = e2e / 1e3 * rng.uniform(5, 40)
            trials.append({"status": "done", "run_id": f"cpu-t{threads}-b{batch}", "config_id": f"c{threads}-{batch}",
                           "model": "made-up", "model_path": "/models/made-up.gguf", "quant": "Q4_1",
                           "backend": "cpu", "threads": threads, "gpu_layers": 0, "n_batch": 512, "batch_size": batch,
                           "suite": "synthetic-128", "prompt_id": "p", "prompt_tokens": 128, "gen_tokens": 64,
                           "ttft_ms": rng.uniform(50, 500), "prefill_tps": rng.uniform(100, 500),
                           "decode_tps": rng.uniform(20, 90), "itl_p95_ms": rng.uniform(10, 60), "e2e_ms": e2e,
                           "energy_j": energy, "j_per_token": energy / 64, "avg_power_w": energy / e2e * 1e3,
                           "edp_js": energy * e2e / 1e3, "energy_tag": "estimated",
                           "energy_method": "estimated: made up for a speed bench", "repetition": i})
        store.create_run("bench/report_speed.py", f"generated-{host}", host, trials, status="done")
    store.close()


def median_wall(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "big.db"
        generated_db(db, args.trials)
        bare = median_wall([sys.executable, "-c", "pass"], args.repeats)
        print(f"{args.trials} generated trials; bare python start-up {bare:.3f} s")
        ok = True
        for name, extra in (("report", ["report"]), ("report --by backend --format json",
                                                     ["report", "--by", "backend", "--format", "json"]),
                            ("compare host-a host-b", ["compare", "host-a", "host-b"])):
            wall = median_wall([str(ENERGYTUI), *extra, "--db", str(db)], args.repeats)
            ok &= wall <= TARGET_S
            print(f"energytui {name}: median {wall:.3f} s over {args.repeats} runs (target ≤ {TARGET_S:.0f} s) "
                  f"{'PASS' if wall <= TARGET_S else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
