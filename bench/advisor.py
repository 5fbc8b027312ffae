"""The advisor's accuracy and speed on trials measured here.

    .venv/bin/python bench/advisor.py [--db PATH]

Without --db, writes the quantization ladder and runs config/manifests/advisor-sweep.yaml
into bench/results/advisor-sweep.db (about 10 minutes on 2 cores). Then:
  - refits and prints the held-out mean absolute percentage error (whole configurations
    left out) of latency and energy per request, and of each fitted part. Target: ≤ 10% each.
  - times `energytui advise --tokens 256 --budget 50W` as a whole process with the fit
    cached, side by side with a bare Python start-up. Target: ≤ 1.0 s wall.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from energytui.advisor.service import current_fit, local_host_id
from energytui.engine.store import Store

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ENERGYTUI = Path(sys.executable).with_name("energytui")
TARGET_MAPE, TARGET_WALL_S = 0.10, 1.0


def measure_sweep() -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    db = RESULTS / "advisor-sweep.db"
    subprocess.run([str(ENERGYTUI), "models", "ladder"], check=True)
    subprocess.run([str(ENERGYTUI), "run", str(ROOT / "config" / "manifests" / "advisor-sweep.yaml"), "--db", str(db),
                    "--fresh"], check=True)
    return db


def wall_times(command: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="a database with the advisor sweep's trials (default: measure it)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    db = args.db or measure_sweep()
    store = Store(db)
    fit, _ = current_fit(store, local_host_id(store), refit=True)
    store.close()
    print(f"fit: {fit.n_trials} trials, {fit.n_configs} configurations, energy {', '.join(fit.energy_tags)}")
    for target, family in fit.families.items():
        print(f"  {target:20s} {family:10s} held-out MAPE {fit.held_out_mape[target]:.1%}")
    ok = True
    for quantity in ("latency_s", "energy_j"):
        mape = fit.held_out_mape[quantity]
        ok &= mape <= TARGET_MAPE
        print(f"{quantity} per request: held-out MAPE {mape:.1%} (target ≤ {TARGET_MAPE:.0%}) "
              f"{'PASS' if mape <= TARGET_MAPE else 'FAIL'}")
    advise = [str(ENERGYTUI), "advise", "--db", str(db), "--tokens", "256", "--budget", "50W"]
    subprocess.run(advise, check=True, capture_output=True)  # the fit is cached from here on
    bare = wall_times([sys.executable, "-c", "pass"], args.repeats)
    timed = wall_times(advise, args.repeats)
    median = statistics.median(timed)
    ok &= median <= TARGET_WALL_S
    print(f"advise, fit cached: median {median:.3f} s over {args.repeats} runs (bare python {statistics.median(bare):.3f} s, "
          f"ratio {median / statistics.median(bare):.1f}x) (target ≤ {TARGET_WALL_S} s) "
          f"{'PASS' if median <= TARGET_WALL_S else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
