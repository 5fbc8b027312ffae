"""energytui's overhead against llama.cpp's own llama-bench, measured side by side in one run.

    .venv/bin/python bench/overhead.py [--threads 2] [--rounds 5]

Builds llama-bench (once, into bench/.build/) from the same llama-cpp-python source
distribution that energytui runs on, then alternates rounds: llama-bench pp512 + tg128,
then energytui's runner doing the same work (a 512-token prompt in one 512-token chunk;
128 decoded tokens after a 1-token prompt). Prints each side's tokens/s (mean ± stddev
over rounds) and the ratios energytui / llama-bench. Targets: decode ≥ 0.97, prefill ≥ 0.95.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

import llama_cpp

from energytui.engine.manifest import TrialSpec
from energytui.engine.models import default_model_name, resolve_model
from energytui.engine.runner import Engine

BUILD = Path(__file__).resolve().parent / ".build"
LLAMA_BENCH = BUILD / "llama-build" / "bin" / "llama-bench"
TARGETS = {"prefill": 0.95, "decode": 0.97}
PROMPT, GENERATE = 512, 128


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


def llama_bench_round(binary: Path, model: Path, threads: int) -> dict[str, float]:
    out = subprocess.run([str(binary), "-m", str(model), "-t", str(threads), "-p", str(PROMPT), "-n", str(GENERATE),
                          "-r", "1", "-o", "json"], check=True, capture_output=True, text=True).stdout
    results = json.loads(out)
    return {"prefill" if r["n_prompt"] else "decode": r["avg_ts"] for r in results}


def spec(model: Path, threads: int, prompt_tokens: int, max_tokens: int) -> TrialSpec:
    return TrialSpec(
        run_id="bench", config_id="bench", model=str(model), model_path=str(model), quant="", backend="cpu",
        threads=threads, gpu_layers=0, n_batch=PROMPT, batch_size=1, n_ctx=PROMPT + GENERATE + 8, suite=None,
        prompt_id=f"synthetic-{prompt_tokens}", prompt_text=None, prompt_tokens_target=prompt_tokens, chat=False,
        max_tokens=max_tokens, ignore_eos=True, temperature=0.0, seed=0, repetition=0, cooldown_s=0.0)


def energytui_round(engine: Engine, model: Path, threads: int) -> dict[str, float]:
    prefill = engine.run(spec(model, threads, PROMPT, 1)).metrics()["prefill_tps"]
    # 1 prompt token, then 1 + 128 tokens: 128 decode steps timed, as llama-bench's tg128.
    decode = engine.run(spec(model, threads, 1, GENERATE + 1)).metrics()["decode_tps"]
    return {"prefill": prefill, "decode": decode}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default=default_model_name())
    args = parser.parse_args()
    model = resolve_model(args.model)
    binary = build_llama_bench()
    engine = Engine()
    energytui_round(engine, model, args.threads)  # load and warm up outside the measured rounds
    ours, theirs = {"prefill": [], "decode": []}, {"prefill": [], "decode": []}
    for round_no in range(args.rounds):
        for phase, value in llama_bench_round(binary, model, args.threads).items():
            theirs[phase].append(value)
        for phase, value in energytui_round(engine, model, args.threads).items():
            ours[phase].append(value)
        print(f"round {round_no + 1}/{args.rounds}: llama-bench pp{PROMPT} {theirs['prefill'][-1]:.1f} "
              f"tg{GENERATE} {theirs['decode'][-1]:.1f} | energytui {ours['prefill'][-1]:.1f} {ours['decode'][-1]:.1f}",
              file=sys.stderr)
    engine.close()
    print(f"model {model.name}, {args.threads} threads, {args.rounds} alternating rounds, llama-cpp-python "
          f"{llama_cpp.__version__}; tokens/s mean ± stddev")
    failed = False
    for phase in ("prefill", "decode"):
        ratio = statistics.fmean(ours[phase]) / statistics.fmean(theirs[phase])
        ok = ratio >= TARGETS[phase]
        failed |= not ok
        print(f"{phase:8s} llama-bench {statistics.fmean(theirs[phase]):7.1f} ± {statistics.stdev(theirs[phase]):5.1f}  "
              f"energytui {statistics.fmean(ours[phase]):7.1f} ± {statistics.stdev(ours[phase]):5.1f}  "
              f"ratio {ratio:.3f} (target ≥ {TARGETS[phase]}) {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
