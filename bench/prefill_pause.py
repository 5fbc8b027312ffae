"""Prefill speed after what comes before it in a trial, the regimes alternating trial by trial in one process.

    .venv/bin/python bench/prefill_pause.py [--cycles 24] [--threads 2]

What bench/overhead.py cannot resolve on a busy machine: whether the idle window before a trial's prefill (0.5 s,
as `energytui run` holds still to measure idle power) and the re-warm after it (engine/runner.py, REWARM_S) cost
prefill speed. The engine runs bench/overhead.py's prefill (128 tokens at depth 0, 2 threads) after each regime
in turn, each first every fourth cycle, so a drift of the host's speed over seconds lands on all of them:
  back-to-back   straight after the previous trial, as llama-bench's repetitions run;
  idle+rewarm    the 0.5 s idle window, then the re-warm a run does (0.1 s);
  idle+rewarm.3  the idle window, then a 0.3 s re-warm;
  idle           the idle window and no re-warm.
Printed per regime: the median prefill tokens/s, and its ratio to the back-to-back trial of the same cycle, as
bench/overhead.py gives its ratios: the Hodges–Lehmann centre with the Wilcoxon signed-rank 95 % interval. No meter
and no store: bench/overhead.py measures the path a user takes.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

from energytui.engine import runner
from energytui.engine.manifest import load_manifest
from energytui.engine.models import default_model_name, resolve_model
from energytui.engine.runner import Engine
from overhead import hodges_lehmann, signed_rank_interval  # bench/, this script's folder

IDLE_S = 0.5
REGIMES = {"back-to-back": (0.0, 0.0), "idle+rewarm": (IDLE_S, runner.REWARM_S), "idle+rewarm.3": (IDLE_S, 0.3),
           "idle": (IDLE_S, 0.0)}


def prefill_tps(engine: Engine, spec, idle_s: float, rewarm_s: float) -> float:
    runner.REWARM_S = rewarm_s
    pause = (lambda: time.sleep(idle_s)) if idle_s else None
    measured = engine.run(spec, before_start=pause, rewarm=rewarm_s > 0)
    return measured.prompt_tokens / ((measured.t_first_ns - measured.t_start_ns) / 1e9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.cycles < 6:
        parser.error("--cycles: at least 6, for an interval")
    names, speeds = list(REGIMES), {name: [] for name in REGIMES}
    default_rewarm = runner.REWARM_S
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / "prefill.yaml"
        manifest.write_text(f"defaults:\n  model: {resolve_model(default_model_name())}\n  threads: {args.threads}\n"
                            "  n_ctx: 256\n  ignore_eos: true\nruns:\n  - id: prefill\n    prompt_tokens: 128\n"
                            "    max_tokens: 2\n")
        spec = load_manifest(manifest, gpu_offload=False).trials[0]
        engine = Engine()
        try:
            engine.run(spec)  # load and warm up outside the comparison
            for cycle in range(args.cycles):
                for name in names[cycle % 4:] + names[:cycle % 4]:
                    speeds[name].append(prefill_tps(engine, spec, *REGIMES[name]))
        finally:
            runner.REWARM_S = default_rewarm
            engine.close()
    print(f"{args.cycles} cycles, {args.threads} threads, pp128 at depth 0; ratio to back-to-back in the same cycle")
    for name in names:
        if name == "back-to-back":
            print(f"{name:14s} median {statistics.median(speeds[name]):6.1f} tokens/s")
            continue
        ratios = [math.log(a / b) for a, b in zip(speeds[name], speeds["back-to-back"], strict=True)]
        low, high = signed_rank_interval(ratios) or (math.nan, math.nan)
        print(f"{name:14s} median {statistics.median(speeds[name]):6.1f} tokens/s, ratio "
              f"{math.exp(hodges_lehmann(ratios)):.3f} (95% interval {math.exp(low):.3f}–{math.exp(high):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
