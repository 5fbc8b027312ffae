"""NVML counter energy against integrated NVML power over the same trial windows (for bench/gpu_check.sh).

    python bench/gpu_compare.py DB

For every done trial and every GPU whose samples carry both the total-energy counter and
power, computes the trial window's energy both ways from the same raw samples and prints
the relative difference. Target: agreement within 3% (mean absolute difference). Exit 1: the
target missed; exit 2: no trial to compare (nothing was measured).
"""

from __future__ import annotations

import sqlite3
import statistics
import sys

from energytui.engine.telemetry.attribution import Series, window_energy

TARGET = 0.03


def main(db: str) -> int:
    conn = sqlite3.connect(db)
    trials = conn.execute("SELECT id, run_id, backend, t_start_ns, t_end_ns FROM trials WHERE status='done'").fetchall()
    differences = []
    for trial_id, run_id, backend, start, end in trials:
        rows = conn.execute("SELECT device, t_ns, power_w, energy_j FROM samples WHERE trial_id=? "
                            "AND device LIKE 'gpu%' AND power_w IS NOT NULL AND energy_j IS NOT NULL "
                            "ORDER BY t_ns", [trial_id]).fetchall()
        for device in sorted({r[0] for r in rows}):
            points = [r for r in rows if r[0] == device]
            counter = window_energy(Series([(t, e) for _, t, _, e in points]), start, end, True)
            integrated = window_energy(Series([(t, p) for _, t, p, _ in points]), start, end, False)
            if counter.energy_j is None or integrated.energy_j is None or counter.energy_j <= 0:
                print(f"trial {trial_id} {run_id} {device}: unresolved ({counter.reason or integrated.reason})")
                continue
            diff = integrated.energy_j / counter.energy_j - 1
            differences.append(abs(diff))
            print(f"trial {trial_id} {run_id:7s} {backend:6s} {device}: counter {counter.energy_j:8.3f} J  "
                  f"integrated {integrated.energy_j:8.3f} J  diff {diff:+.2%}")
    if not differences:
        print("no trial had GPU samples with both energy counter and power: nothing to compare")
        return 2
    mean = statistics.fmean(differences)
    print(f"mean |difference| {mean:.2%} over {len(differences)} trial windows (target ≤ {TARGET:.0%}) "
          f"{'PASS' if mean <= TARGET else 'FAIL'}")
    return 0 if mean <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
