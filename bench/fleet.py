"""A fleet's dispatch overhead per trial, side by side with a local run of the same trials.

    .venv/bin/python bench/fleet.py [--rounds 2] [--trials 12]

Starts a loopback Ray cluster as a user starts a fleet (`energytui worker --head --no-trials`, then one
`energytui worker --join --name bench`, all on 127.0.0.2), then alternates, per round, the same manifest
through the path a user takes, meter on:
  - local: `energytui run MANIFEST`;
  - fleet: `energytui run MANIFEST --cluster 127.0.0.2:PORT` (the trials run on the worker, every store call
    and progress event goes through the head's actor).
Both runs load the same model, run the same trials with the same idle windows on the same machine, so the gap
between one trial's last token and the next trial's first prefill step (t_start_ns - the previous t_end_ns,
one monotonic clock) differs by what the fleet adds per trial: the store calls through Ray, the events, the
claim of the next trial. Target: fleet gap - local gap <= 50 ms per trial. Also printed: the wall time of each
command (the fleet's includes connecting, starting the worker and the head's actor, once per run) and the
decode rate on both paths (the fleet must not slow what it measures).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENERGYTUI = [sys.executable, "-m", "energytui"]
LOOPBACK = "127.0.0.2"
MANIFEST = """defaults:
  model: {model}
  threads: 1
  n_ctx: 256
runs:
  - id: dispatch
    prompt_tokens: [32]
    max_tokens: 32
    ignore_eos: true
    repetitions: {trials}
"""
TARGET_MS = 50.0


def default_model() -> Path:
    from energytui.app.machine import default_model_name
    from energytui.engine.models import resolve_model

    return resolve_model(default_model_name())


def start_node(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([*ENERGYTUI, "worker", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})


def stop_node(process: subprocess.Popen) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
            process.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def run(manifest: Path, db: Path, *extra: str) -> float:
    started = time.monotonic()
    subprocess.run([*ENERGYTUI, "run", str(manifest), "--db", str(db), "--fresh", *extra], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def latest_run(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        run = conn.execute("SELECT MAX(id) FROM runs").fetchone()[0]
        return [dict(r) for r in conn.execute("SELECT * FROM trials WHERE run = ? AND status = 'done' ORDER BY seq",
                                              [run])]


def gaps_ms(trials: list[dict]) -> list[float]:
    """Between consecutive trials: the previous one's last token to this one's first prefill step."""
    return [(b["t_start_ns"] - a["t_end_ns"]) / 1e6 for a, b in zip(trials, trials[1:])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="energytui-fleet-bench-"))
    manifest = work / "dispatch.yaml"
    manifest.write_text(MANIFEST.format(model=default_model(), trials=args.trials))
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    address = f"{LOOPBACK}:{port}"
    nodes = [start_node(["--head", "--bind", LOOPBACK, "--port", str(port), "--no-trials"], work / "head.log")]
    try:
        time.sleep(3)
        nodes.append(start_node(["--join", address, "--bind", LOOPBACK, "--name", "bench"], work / "bench.log"))
        from energytui.app.fleet import wait_for_hosts

        wait_for_hosts(address, 1, timeout_s=120)
        local_gaps, fleet_gaps, walls, decode = [], [], {"local": [], "fleet": []}, {"local": [], "fleet": []}
        for round_ in range(args.rounds):
            for kind in (("local", "fleet") if round_ % 2 == 0 else ("fleet", "local")):
                db = work / f"{kind}.db"
                extra = ("--cluster", address) if kind == "fleet" else ()
                walls[kind].append(run(manifest, db, *extra))
                trials = latest_run(db)
                assert len(trials) == args.trials, f"{kind}: {len(trials)} of {args.trials} trials done"
                (fleet_gaps if kind == "fleet" else local_gaps).extend(gaps_ms(trials))
                decode[kind] += [t["decode_tps"] for t in trials]
    finally:
        for node in reversed(nodes):
            stop_node(node)
    local, fleet = statistics.median(local_gaps), statistics.median(fleet_gaps)
    overhead = fleet - local
    print(f"{args.rounds} rounds x {args.trials} trials (prompt 32, 32 tokens, 1 thread), alternated; "
          f"{len(local_gaps)} gaps each")
    print(f"gap between trials, median: local {local:.1f} ms, fleet {fleet:.1f} ms "
          f"(means {statistics.mean(local_gaps):.1f} / {statistics.mean(fleet_gaps):.1f} ms)")
    print(f"dispatch overhead per trial: {overhead:+.1f} ms (target <= {TARGET_MS:.0f} ms): "
          f"{'PASS' if overhead <= TARGET_MS else 'FAIL'}")
    print(f"wall per command, median: local {statistics.median(walls['local']):.1f} s, fleet "
          f"{statistics.median(walls['fleet']):.1f} s (connecting, the worker's and the head's start: once per run)")
    local_tps, fleet_tps = statistics.median(decode["local"]), statistics.median(decode["fleet"])
    print(f"decode tok/s, median: local {local_tps:.1f}, fleet {fleet_tps:.1f} (ratio {fleet_tps / local_tps:.3f})")
    return 0 if overhead <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
