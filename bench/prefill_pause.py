"""Prefill speed after what comes before it in a trial, the regimes alternating trial by trial in one process.

    .venv/bin/python bench/prefill_pause.py [--cycles 24] [--threads 2] [--rewarm-s 0.3,1] [--decode]

What bench/overhead.py cannot resolve on a busy machine: whether the idle window before a trial's prefill (0.5 s,
as `energytui run` holds still to measure idle power) and the re-warm after it (engine/runner.py, REWARM_S) cost
prefill speed. The engine runs bench/overhead.py's prefill (128 tokens at depth 0, 2 threads) after each regime
in turn, each regime first in turn, so a drift of the host's speed over seconds lands on all of them:
  back-to-back   straight after the previous trial, as llama-bench's repetitions run;
  idle+rewarm    the 0.5 s idle window, then the re-warm a run does (runner.REWARM_S, 0.5 s);
  idle+rewarm.1  the idle window, then a 0.1 s re-warm (the run's before 2026-11-28's results);
  idle           the idle window and no re-warm;
  idle+rewarm<S> with --rewarm-s: the idle window, then a re-warm of each length S given.
With --decode each trial then makes 64 decode steps, whose tokens/s is compared the same way (does the re-warm
cost decode anything?). Printed per regime: the median tokens/s, and its ratio to the back-to-back trial of the same
cycle, as bench/overhead.py gives its ratios: the Hodges–Lehmann centre with the Wilcoxon signed-rank 95 % interval.
No meter and no store: bench/overhead.py measures the path a user takes.
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
REGIMES = {"back-to-back": (0.0, 0.0), "idle+rewarm": (IDLE_S, runner.REWARM_S), "idle+rewarm.1": (IDLE_S, 0.1),
           "idle": (IDLE_S, 0.0)}


def trial_tps(engine: Engine, spec, idle_s: float, rewarm_s: float) -> dict[str, float]:
    """Prefill tokens/s, and decode's after it when the trial generates more than one token."""
    runner.REWARM_S = rewarm_s
    pause = (lambda: time.sleep(idle_s)) if idle_s else None
    measured = engine.run(spec, before_start=pause, rewarm=rewarm_s > 0)
    speeds = {"prefill": measured.prompt_tokens / ((measured.t_first_ns - measured.t_start_ns) / 1e9)}
    if measured.gen_tokens > 1:
        speeds["decode"] = (measured.gen_tokens - 1) / ((measured.t_end_ns - measured.t_first_ns) / 1e9)
    return speeds


def rewarm_lengths(text: str) -> list[float]:
    """'0.3,1' -> [0.3, 1.0]: re-warm lengths in seconds, each above 0 and at most 10."""
    lengths = [float(part) for part in text.split(",")]
    if not all(0 < length <= 10 for length in lengths):
        raise argparse.ArgumentTypeError(f"{text}: give re-warm lengths above 0 s and at most 10 s")
    return lengths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rewarm-s", type=rewarm_lengths, default=[],
                        help="more re-warm lengths to compare after the idle window, seconds, comma-separated")
    parser.add_argument("--decode", action="store_true",
                        help="also decode 64 tokens after each prefill (depth 128 to 192, as bench/overhead.py) and "
                             "compare decode tokens/s the same way")
    args = parser.parse_args()
    if args.cycles < 6:
        parser.error("--cycles: at least 6, for an interval")
    regimes = {**REGIMES, **{f"idle+rewarm{length:g}": (IDLE_S, length) for length in args.rewarm_s}}
    phases = ["prefill", "decode"] if args.decode else ["prefill"]
    names, speeds = list(regimes), {phase: {name: [] for name in regimes} for phase in phases}
    default_rewarm = runner.REWARM_S
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / "prefill.yaml"
        manifest.write_text(f"defaults:\n  model: {resolve_model(default_model_name())}\n  threads: {args.threads}\n"
                            "  n_ctx: 256\n  ignore_eos: true\nruns:\n  - id: prefill\n    prompt_tokens: 128\n"
                            f"    max_tokens: {65 if args.decode else 2}\n")
        spec = load_manifest(manifest, gpu_offload=False).trials[0]
        engine = Engine()
        try:
            engine.run(spec)  # load and warm up outside the comparison
            for cycle in range(args.cycles):
                turn = cycle % len(names)
                for name in names[turn:] + names[:turn]:
                    for phase, value in trial_tps(engine, spec, *regimes[name]).items():
                        speeds[phase][name].append(value)
        finally:
            runner.REWARM_S = default_rewarm
            engine.close()
    print(f"{args.cycles} cycles, {args.threads} threads, pp128 at depth 0{', then 64 decode steps' * args.decode}; "
          "ratio to back-to-back in the same cycle")
    for phase in phases:
        for name in names:
            print(f"{phase:8s} {regime_line(name, speeds[phase])}")
    return 0


def regime_line(name: str, speeds: dict[str, list[float]]) -> str:
    """A regime's median tokens/s and, but for back-to-back, its paired ratio to back-to-back with the interval."""
    line = f"{name:14s} median {statistics.median(speeds[name]):6.1f} tokens/s"
    if name == "back-to-back":
        return line
    ratios = [math.log(a / b) for a, b in zip(speeds[name], speeds["back-to-back"], strict=True)]
    low, high = signed_rank_interval(ratios) or (math.nan, math.nan)
    return (f"{line}, ratio {math.exp(hodges_lehmann(ratios)):.3f} "
            f"(95% interval {math.exp(low):.3f}–{math.exp(high):.3f})")


if __name__ == "__main__":
    raise SystemExit(main())
