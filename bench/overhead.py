"""energytui's overhead against llama.cpp's own llama-bench, side by side in one run, like with like.

    .venv/bin/python bench/overhead.py [--threads 2] [--rounds 40] [--reps 2] [--python-loop] [--raw FILE.jsonl]

Builds llama-bench (once, into bench/.build/) from the same llama-cpp-python source
distribution that energytui runs on (with the CMAKE_ARGS that build was given, read from the environment),
then runs rounds in which each side goes first in turn:
  - llama-bench pp128 at depth 0 (`-p 128 -n 0`) and tg64 at depth 128 (`-p 0 -n 64 -d 128`);
  - `energytui run` (the path a user takes, meter on: idle windows, power read as `run` reads it) of a
    manifest with a 128-token prompt and 65 generated tokens, whose prefill is pp128 at depth 0
    and whose 64 decode steps run at depth 128 to 192, as tg64 does after `-d 128`.
Each round pairs the two sides' median tokens/s (a repetition hit by a burst of this shared machine's other
work does not move a median), so drift between rounds cancels within each pair. The estimate is the centre of
those paired ratios energytui / llama-bench over the rounds (Hodges–Lehmann, on their logarithms), with the
Wilcoxon signed-rank 95 % confidence interval (distribution-free for a distribution symmetric about its centre,
which alternating the order of the sides gives: a burst lands on either side at random; it needs 6 rounds or
more). It is about 1.5 times as efficient as the sign test's interval around a median (the previous rule, which
with 10 rounds spans the second smallest to the second largest ratio). Targets: prefill ≥ 0.97, decode ≥ 0.98.
A target is met (PASS) when the whole interval lies at or above it, missed (FAIL) when the whole interval lies
below it, and UNDECIDED when the interval straddles it: the rounds disagree too much (a busy machine) for so few
of them; run more rounds or rerun when it is quiet. --raw writes every repetition with its round and times.
Exits 0 when both targets are met, 1 when one is missed, 2 when neither is missed and one is undecided.
Also printed: each side's tokens/s (mean ± stddev over every repetition) and the ratio of those means, which a
single burst can move by several percent, and the ratio of each side's fastest repetition; no verdict on either.
The fastest is not the least disturbed: this VM also runs faster than when quiet at times (llama-bench pp128 at
281 tokens/s and tg64 at 106 against about 200 and 85 when quiet, 2026-11-28), its host's doing, unseen in
/proc/stat's steal time.
--python-loop adds a third side each round, `energytui run` with ENERGYTUI_DECODE_LOOP=python (the engine's
Python decode loop instead of the C one, engine/native_loop.py), with ratios printed but no verdict.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import llama_cpp

from energytui.engine import llama_backend, native_loop
from energytui.engine.models import default_model_name, resolve_model

BUILD = Path(__file__).resolve().parent / ".build"
LLAMA_BENCH = BUILD / "llama-build" / "bin" / "llama-bench"
ENERGYTUI = Path(sys.executable).with_name("energytui")
TARGETS = {"prefill": 0.97, "decode": 0.98}
CONFIDENCE = 0.95  # of the interval around the paired ratios' centre: see the docstring
PROMPT, GENERATE, DEPTH = 128, 64, 128
# Many short rounds rather than a few long ones: on this project's VM the paired ratio of a round spread about as
# much with 5 repetitions a side (log sd 0.13-0.20 prefill, 0.07-0.09 decode; 3 runs of 20 rounds, 2026-11-28) as
# with 2 (0.12-0.20 and 0.08-0.13; 3 runs of 40-60 rounds): the machine's speed drifts over 10-30 s, which pairing
# cancels and more repetitions within a round do not. A round of 2 takes 12.5 s against 22-27 s, so the interval
# is 1.2 (prefill) to 1.4 (decode) times narrower in the same time (medians of the three runs of each;
# bench/overhead_runs.md).
DEFAULT_ROUNDS, DEFAULT_REPS = 40, 2  # about 8 minutes here


def signed_rank_distribution(n: int) -> list[int]:
    """How many of the 2**n sign patterns of ranks 1..n give each signed-rank sum T = 0, 1, ..., n(n+1)/2."""
    counts = [1]
    for rank in range(1, n + 1):
        counts = [a + b for a, b in zip(counts + [0] * rank, [0] * rank + counts, strict=True)]
    return counts


def walsh_averages(values: list[float]) -> list[float]:
    """The means of every pair of values, each value with itself included, sorted."""
    return sorted((a + b) / 2 for i, a in enumerate(values) for b in values[i:])


def signed_rank_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Wilcoxon signed-rank interval for the centre of a symmetric distribution: the k-th smallest and
    k-th largest Walsh averages (means of every pair, each value with itself included), k the largest with
    P(T <= k - 1) <= (1 - confidence) / 2 under the null; None when no k holds (under 6 values at 95 %)."""
    n, walsh = len(values), walsh_averages(values)
    counts, allowed = signed_rank_distribution(n), (1 - confidence) / 2 * 2 ** n
    k, below = 0, 0
    while below + counts[k] <= allowed:
        below += counts[k]
        k += 1
    return (walsh[k - 1], walsh[-k]) if k else None


def hodges_lehmann(values: list[float]) -> float:
    """The median of the Walsh averages: the centre the signed-rank interval brackets."""
    return statistics.median(walsh_averages(values))


def verdict(interval: tuple[float, float] | None, target: float) -> str:
    """PASS when the whole interval is at or above the target, FAIL when below it, UNDECIDED otherwise."""
    if interval is None or interval[0] < target <= interval[1]:
        return "UNDECIDED"
    return "PASS" if interval[0] >= target else "FAIL"


def build_llama_bench() -> Path:
    """Build llama-bench from llama-cpp-python's sdist (vendor/llama.cpp) of the installed version."""
    if LLAMA_BENCH.is_file():
        return LLAMA_BENCH
    version = llama_cpp.__version__
    BUILD.mkdir(parents=True, exist_ok=True)
    source = BUILD / f"llama_cpp_python-{version}"
    if not source.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                        "-d", str(BUILD), f"llama-cpp-python=={version}"], check=True)
        with tarfile.open(BUILD / f"llama_cpp_python-{version}.tar.gz") as archive:
            archive.extractall(BUILD, filter="data")
    print(f"building llama-bench from {source}/vendor/llama.cpp (several minutes on 2 cores)", file=sys.stderr)
    build_dir = LLAMA_BENCH.parent.parent
    subprocess.run(["cmake", "-S", str(source / "vendor" / "llama.cpp"), "-B", str(build_dir),
                    "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DBUILD_SHARED_LIBS=ON",
                    *shlex.split(os.environ.get("CMAKE_ARGS", ""))],  # as llama-cpp-python's own build took them
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "llama-bench", "-j2"], check=True,
                   stdout=subprocess.DEVNULL)
    return LLAMA_BENCH


def llama_bench_round(binary: Path, model: Path, threads: int, reps: int) -> dict[str, list[float]]:
    """pp128 at depth 0 and tg64 at depth 128, `reps` repetitions each (llama-bench's own warm-up first)."""
    out = {}
    for phase, args in (("prefill", ["-p", str(PROMPT), "-n", "0"]),
                        ("decode", ["-p", "0", "-n", str(GENERATE), "-d", str(DEPTH)])):
        repack = "0" if llama_backend.amx_kernels_built() else "1"  # weights kept as energytui keeps them
        text = subprocess.run([str(binary), "-m", str(model), "-t", str(threads), *args, "-r", str(reps),
                               "--repack", repack, "-o", "json"], check=True, capture_output=True, text=True).stdout
        out[phase] = json.loads(text)[0]["samples_ts"]
    return out


def energytui_round(model: Path, threads: int, reps: int, folder: Path, env: dict[str, str]) -> dict[str, list[float]]:
    """`energytui run` with the meter on; the same work as the llama-bench round, `reps` trials."""
    manifest = folder / "overhead.yaml"
    manifest.write_text(f"defaults:\n  model: {model}\n  threads: {threads}\n  n_ctx: {PROMPT + GENERATE + 8}\n"
                        f"  ignore_eos: true\n  repetitions: {reps}\nruns:\n  - id: overhead\n"
                        f"    prompt_tokens: {PROMPT}\n    max_tokens: {GENERATE + 1}\n")
    db = folder / "overhead.db"
    subprocess.run([str(ENERGYTUI), "run", str(manifest), "--db", str(db), "--fresh"], check=True,
                   capture_output=True, env={**os.environ, **env})
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT prefill_tps, decode_tps FROM trials WHERE status = 'done' AND run = "
                            "(SELECT MAX(id) FROM runs)").fetchall()
    return {"prefill": [r[0] for r in rows], "decode": [r[1] for r in rows]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS, help="repetitions per side and round")
    parser.add_argument("--model", default=default_model_name())
    parser.add_argument("--raw", type=Path, help="also write every repetition (side, round, phase, tokens/s, time) "
                                                   "to this JSON-lines file")
    parser.add_argument("--python-loop", action="store_true",
                        help="also run `energytui run` with ENERGYTUI_DECODE_LOOP=python each round (no verdict)")
    args = parser.parse_args()
    if args.rounds < 1 or args.reps < 1 or args.rounds * args.reps < 2:
        parser.error("--rounds and --reps must be at least 1, with 2 repetitions or more in all (a spread needs two)")
    model = resolve_model(args.model)
    binary = build_llama_bench()
    sides = {"energytui": {}, **({"python loop": {"ENERGYTUI_DECODE_LOOP": "python"}} if args.python_loop else {})}
    theirs: dict[str, list[float]] = {"prefill": [], "decode": []}
    ours = {side: {"prefill": [], "decode": []} for side in sides}
    paired = {side: {"prefill": [], "decode": []} for side in sides}  # per round: drift between rounds cancels
    with tempfile.TemporaryDirectory() as folder:
        for round_no in range(args.rounds):
            order = ["llama-bench", *sides]
            order = order[round_no % len(order):] + order[:round_no % len(order)]  # each side leads in turn
            results = {}
            for side in order:
                started = time.time()
                results[side] = (llama_bench_round(binary, model, args.threads, args.reps) if side == "llama-bench"
                                 else energytui_round(model, args.threads, args.reps, Path(folder), sides[side]))
                if args.raw:
                    with args.raw.open("a") as raw:
                        for phase, values in results[side].items():
                            raw.write(json.dumps({"round": round_no, "side": side, "phase": phase, "started": started,
                                                  "ended": time.time(), "tokens_per_s": values}) + "\n")
            for phase in theirs:
                theirs[phase] += results["llama-bench"][phase]
                for side in sides:
                    ours[side][phase] += results[side][phase]
                    paired[side][phase].append(statistics.median(results[side][phase])
                                               / statistics.median(results["llama-bench"][phase]))
            print(f"round {round_no + 1}/{args.rounds} ({' → '.join(order)}): side / llama-bench, medians of "
                  f"{args.reps}: " + "; ".join(f"{side} pp{PROMPT} {paired[side]['prefill'][-1]:.3f}, "
                                               f"tg{GENERATE}@d{DEPTH} {paired[side]['decode'][-1]:.3f}"
                                               for side in sides), file=sys.stderr)
    print(f"model {model.name}, {args.threads} threads, {args.rounds} rounds of {args.reps} repetitions (each side "
          f"first in turn), llama-cpp-python {llama_cpp.__version__}; tokens/s mean ± stddev; energytui through "
          f"`energytui run`, meter on, decode loop: {native_loop.describe()}; weights: "
          f"{llama_backend.weight_buffers()}")
    verdicts = []
    for side in sides:
        for phase, test in (("prefill", f"pp{PROMPT} at depth 0"), ("decode", f"tg{GENERATE} at depth {DEPTH}")):
            ratios = paired[side][phase]
            logs = [math.log(r) for r in ratios]  # a ratio and its inverse lie symmetric about 1 in logs
            interval = signed_rank_interval(logs)
            interval = (math.exp(interval[0]), math.exp(interval[1])) if interval else None
            bounds = f"{interval[0]:.3f}–{interval[1]:.3f}" if interval else "none (under 6 rounds)"
            outcome = "(no verdict)"
            if side == "energytui":
                verdicts.append(verdict(interval, TARGETS[phase]))
                outcome = f"(target ≥ {TARGETS[phase]}) {verdicts[-1]}"
            mine, llamas = ours[side][phase], theirs[phase]
            print(f"{side:11s} {phase:8s} {test:18s} paired ratio {math.exp(hodges_lehmann(logs)):.3f}, "
                  f"{CONFIDENCE:.0%} interval {bounds} {outcome}; per round {min(ratios):.3f}–{max(ratios):.3f}; "
                  f"llama-bench {statistics.fmean(llamas):.1f} ± {statistics.stdev(llamas):.1f}, {side} "
                  f"{statistics.fmean(mine):.1f} ± {statistics.stdev(mine):.1f} tokens/s, ratio of means "
                  f"{statistics.fmean(mine) / statistics.fmean(llamas):.3f}, of the fastest repetitions "
                  f"{max(mine) / max(llamas):.3f}")
    if "FAIL" in verdicts:
        return 1
    if "UNDECIDED" in verdicts:
        print(f"UNDECIDED: a {CONFIDENCE:.0%} interval straddles its target: the rounds disagree too much for "
              f"{args.rounds} of them (the machine was busy); run more rounds, or rerun when it is quiet")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
