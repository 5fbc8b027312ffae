"""Steady-state windows on the quickstart, side by side in one run: a 1 Hz wall meter against the fast path.

    .venv/bin/python bench/steady.py [--rounds 1] [--manifest config/manifests/quickstart.yaml]

Alternates, per round, `energytui run` of the manifest (the path a user takes, meter on):
  - fast: the machine's own sources (RAPL, or the 100 Hz CPU estimate here), each trial's own windows;
  - 1 Hz constant: a fake wall meter printing 42 W, read once a second (`--power-command "cat FILE"`),
    so energy per configuration comes from steady-state windows (chosen automatically);
  - 1 Hz CPU-following: a fake wall meter whose watts follow the CPU's busy time, shown as 1 s means, with
    the exact truth kept at 20 ms (tests/fakes/slow_meter.py).
Prints the wall-clock time of each and the ratio to the fast path (target ≤ 2), and per configuration:
energy ÷ (42 W × busy time) (target within 2 %), net against its stated uncertainty (target |net| ≤ ±), and
the CPU-following meter's J/token against the truth (target within 5 %).
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake meter lives with the tests

from fakes.slow_meter import BusyFollowingMeter, constant_meter  # noqa: E402

ENERGYTUI = Path(sys.executable).with_name("energytui")


def run(manifest: Path, db: Path, *extra: str) -> float:
    started = time.monotonic()
    subprocess.run([str(ENERGYTUI), "run", str(manifest), "--db", str(db), "--fresh", *extra], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def rows(db: Path, query: str) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(query)]


def constant_figures(db: Path) -> list[str]:
    lines = []
    for w in rows(db, "SELECT * FROM steady_windows ORDER BY id"):
        ratio = w["energy_j"] / (42.0 * w["busy_s"]) if w["energy_j"] is not None else float("nan")
        lines.append(f"  window {w['id']}: {w['requests']} requests ({w['extra_requests']} extra) over "
                     f"{w['window_s']:.1f} s; energy / (42 W x busy {w['busy_s']:.2f} s) = {ratio:.4f}; "
                     f"net {w['energy_net_j']:+.3f} ± {w['net_uncertainty_j']:.3f} J")
    return lines


def following_figures(db: Path, meter: BusyFollowingMeter) -> list[str]:
    trials = rows(db, "SELECT t.*, w.busy_power_w FROM trials t JOIN steady_windows w ON w.id = t.window_id "
                      "WHERE t.status = 'done'")
    lines = []
    for config in sorted({t["config_id"] for t in trials}):
        mine = [t for t in trials if t["config_id"] == config]
        tokens = sum(t["gen_tokens"] for t in mine)
        stored = sum(t["busy_power_w"] * t["e2e_ms"] / 1e3 for t in mine) / tokens
        truth = sum(meter.energy(t["t_start_ns"], t["t_end_ns"]) for t in mine) / tokens
        first = mine[0]
        lines.append(f"  {first['run_id']} t={first['threads']} B={first['batch_size']} "
                     f"{first['prompt_id']}: stored {stored:.4f} J/token, truth {truth:.4f}, "
                     f"ratio {stored / truth:.4f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--manifest", type=Path, default=ROOT / "config" / "manifests" / "quickstart.yaml")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"fast": [], "1 Hz constant": [], "1 Hz CPU-following": []}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for round_ in range(args.rounds):
            times["fast"].append(run(args.manifest, folder / f"fast{round_}.db"))
            db = folder / f"constant{round_}.db"
            times["1 Hz constant"].append(run(args.manifest, db, "--power-command",
                                              constant_meter(folder / "watts42", 42.0)))
            print(f"round {round_ + 1}, constant 42 W meter at 1 Hz:", *constant_figures(db), sep="\n")
            db = folder / f"following{round_}.db"
            with BusyFollowingMeter(folder / "watts", static_w=30.0, per_cpu_w=15.0) as meter:
                times["1 Hz CPU-following"].append(run(args.manifest, db, "--power-command",
                                                       f"cat {folder / 'watts'}"))
            print(f"round {round_ + 1}, CPU-following meter at 1 Hz (truth at 20 ms):",
                  *following_figures(db, meter), sep="\n")
    fast = sum(times["fast"]) / len(times["fast"])
    for name, values in times.items():
        mean = sum(values) / len(values)
        print(f"{name:20} {mean:6.1f} s  ({mean / fast:.2f} x the fast path; target <= 2)")


if __name__ == "__main__":
    main()
