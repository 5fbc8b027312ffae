"""energytui's overhead against llama.cpp's own llama-bench, side by side in one run, like with like.

    .venv/bin/python bench/overhead.py [--threads 2] [--rounds 5] [--reps 3]

Builds llama-bench (once, into bench/.build/) from the same llama-cpp-python source
distribution that energytui runs on, then alternates rounds (each side first every other round):
  - llama-bench pp128 at depth 0 (`-p 128 -n 0`) and tg64 at depth 128 (`-p 0 -n 64 -d 128`);
  - `energytui run` (the path a user takes, meter on: idle windows, power read as `run` reads it) of a
    manifest with a 128-token prompt and 65 generated tokens, whose prefill is pp128 at depth 0
    and whose 64 decode steps run at depth 128 to 192, as tg64 does after `-d 128`.
Prints each side's tokens/s (mean ± stddev over every repetition of every round), the ratios
energytui / llama-bench of those means (the verdict), and the spread of the per-round ratios, which
shows how much of a shortfall this shared machine's drift can explain. Targets: prefill ≥ 0.97,
decode ≥ 0.98. Exits 0 when both are met, 1 when one is not, 2 when either side's tokens/s varied more
than NOISY_CV (a busy machine: the verdict is printed but says little).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import llama_cpp

from energytui.engine.models import default_model_name, resolve_model

BUILD = Path(__file__).resolve().parent / ".build"
LLAMA_BENCH = BUILD / "llama-build" / "bin" / "llama-bench"
ENERGYTUI = Path(sys.executable).with_name("energytui")
TARGETS = {"prefill": 0.97, "decode": 0.98}
NOISY_CV = 0.04  # a side's tokens/s varying more than this: quiet runs here vary 1-3 %, busy ones 6-22 %
PROMPT, GENERATE, DEPTH = 128, 64, 128


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
                    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DBUILD_SHARED_LIBS=ON"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "llama-bench", "-j2"], check=True,
                   stdout=subprocess.DEVNULL)
    return LLAMA_BENCH


def llama_bench_round(binary: Path, model: Path, threads: int, reps: int) -> dict[str, list[float]]:
    """pp128 at depth 0 and tg64 at depth 128, `reps` repetitions each (llama-bench's own warm-up first)."""
    out = {}
    for phase, args in (("prefill", ["-p", str(PROMPT), "-n", "0"]),
                        ("decode", ["-p", "0", "-n", str(GENERATE), "-d", str(DEPTH)])):
        text = subprocess.run([str(binary), "-m", str(model), "-t", str(threads), *args, "-r", str(reps),
                               "-o", "json"], check=True, capture_output=True, text=True).stdout
        out[phase] = json.loads(text)[0]["samples_ts"]
    return out


def energytui_round(model: Path, threads: int, reps: int, folder: Path) -> dict[str, list[float]]:
    """`energytui run` with the meter on; the same work as the llama-bench round, `reps` trials."""
    manifest = folder / "overhead.yaml"
    manifest.write_text(f"defaults:\n  model: {model}\n  threads: {threads}\n  n_ctx: {PROMPT + GENERATE + 8}\n"
                        f"  ignore_eos: true\n  repetitions: {reps}\nruns:\n  - id: overhead\n"
                        f"    prompt_tokens: {PROMPT}\n    max_tokens: {GENERATE + 1}\n")
    db = folder / "overhead.db"
    subprocess.run([str(ENERGYTUI), "run", str(manifest), "--db", str(db), "--fresh"], check=True,
                   capture_output=True)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT prefill_tps, decode_tps FROM trials WHERE status = 'done' AND run = "
                            "(SELECT MAX(id) FROM runs)").fetchall()
    return {"prefill": [r[0] for r in rows], "decode": [r[1] for r in rows]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--model", default=default_model_name())
    args = parser.parse_args()
    model = resolve_model(args.model)
    binary = build_llama_bench()
    ours: dict[str, list[float]] = {"prefill": [], "decode": []}
    theirs: dict[str, list[float]] = {"prefill": [], "decode": []}
    paired: dict[str, list[float]] = {"prefill": [], "decode": []}  # each round's ratio: drift between rounds cancels
    with tempfile.TemporaryDirectory() as folder:
        for round_no in range(args.rounds):
            if round_no % 2:  # each side goes first every other round: a drift within a round favours neither
                our_round = energytui_round(model, args.threads, args.reps, Path(folder))
                bench_round = llama_bench_round(binary, model, args.threads, args.reps)
            else:
                bench_round = llama_bench_round(binary, model, args.threads, args.reps)
                our_round = energytui_round(model, args.threads, args.reps, Path(folder))
            for phase in paired:
                theirs[phase] += bench_round[phase]
                ours[phase] += our_round[phase]
                paired[phase].append(statistics.fmean(our_round[phase]) / statistics.fmean(bench_round[phase]))
            print(f"round {round_no + 1}/{args.rounds}: llama-bench pp{PROMPT} "
                  f"{statistics.fmean(theirs['prefill']):.1f} "
                  f"tg{GENERATE}@d{DEPTH} {statistics.fmean(theirs['decode']):.1f} | energytui run "
                  f"{statistics.fmean(ours['prefill']):.1f} {statistics.fmean(ours['decode']):.1f} (running means)",
                  file=sys.stderr)
    print(f"model {model.name}, {args.threads} threads, {args.rounds} alternating rounds of {args.reps} repetitions, "
          f"llama-cpp-python {llama_cpp.__version__}; tokens/s mean ± stddev; energytui through `energytui run`, "
          "meter on")
    failed = False
    for phase, test in (("prefill", f"pp{PROMPT} at depth 0"), ("decode", f"tg{GENERATE} at depth {DEPTH}")):
        ratio = statistics.fmean(ours[phase]) / statistics.fmean(theirs[phase])
        ok = ratio >= TARGETS[phase]
        failed |= not ok
        print(f"{phase:8s} {test:18s} llama-bench {statistics.fmean(theirs[phase]):7.1f} ± "
              f"{statistics.stdev(theirs[phase]):5.1f}  energytui {statistics.fmean(ours[phase]):7.1f} ± "
              f"{statistics.stdev(ours[phase]):5.1f}  ratio {ratio:.3f} (target ≥ {TARGETS[phase]}) "
              f"{'PASS' if ok else 'FAIL'}; per round: median {statistics.median(paired[phase]):.3f}, "
              f"{min(paired[phase]):.3f}–{max(paired[phase]):.3f}")
    spread = {f"{side} {phase}": statistics.stdev(values[phase]) / statistics.fmean(values[phase])
              for side, values in (("llama-bench", theirs), ("energytui", ours)) for phase in values}
    noisy = {name: cv for name, cv in spread.items() if cv > NOISY_CV}
    if noisy:
        print("NOISY: " + ", ".join(f"{name} varied {cv:.1%}" for name, cv in noisy.items())
              + f" (over {NOISY_CV:.0%}): the machine was busy and the verdict says little; rerun when it is quiet")
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
