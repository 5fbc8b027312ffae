"""Host time between two decode calls: the C decode loop against the Python one, side by side in one process.

    .venv/bin/python bench/decode_gap.py [--trials 20]

What decode tokens/s against llama-bench cannot resolve on a noisy machine (its rounds spread by more than the
~1 % at stake): a shim in C around llama_decode (compiled once into bench/.build/) stamps each call's entry and
return on the monotonic clock, with no Python in the measurement, and the engine runs the same trials as
bench/overhead.py's (128-token prompt, 64 decode steps, greedy, 2 threads) with its C loop and with its Python
loop in turn (each first every other trial). Printed per loop: the gap from one decode's return to the next one's
call (median, p10, p90 and mean: the mean is what a step pays, the progress call-backs included) and the decode
call's own median time. llama-bench's tg has next to no gap: it reads no logits.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import tempfile
from pathlib import Path

import llama_cpp as ll

from energytui.engine import native_loop
from energytui.engine.manifest import load_manifest
from energytui.engine.models import default_model_name, resolve_model
from energytui.engine.runner import Engine

BUILD = Path(__file__).resolve().parent / ".build"
STEPS = 64
SHIM = r"""
#include <stdint.h>
#include <time.h>
typedef struct { int32_t n_tokens; void *fields[6]; } batch_t;  /* llama_batch, passed on as it came */
typedef int32_t (*decode_fn)(void *, batch_t);
enum { MAX_CALLS = 100000 };
static decode_fn real;
static int64_t entered[MAX_CALLS], returned[MAX_CALLS];
static int32_t calls;
static int64_t now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
                           return ts.tv_sec * 1000000000LL + ts.tv_nsec; }
void shim_reset(decode_fn f) { real = f; calls = 0; }
int32_t shim_decode(void *ctx, batch_t batch) {
    int64_t in = now();
    int32_t rc = real(ctx, batch);
    if (calls < MAX_CALLS) { entered[calls] = in; returned[calls] = now(); calls++; }
    return rc;
}
int32_t shim_calls(void) { return calls; }
int64_t *shim_entered(void) { return entered; }
int64_t *shim_returned(void) { return returned; }
"""


def build_shim() -> ctypes.CDLL:
    BUILD.mkdir(parents=True, exist_ok=True)
    source, library = BUILD / "decode_shim.c", BUILD / "decode_shim.so"
    source.write_text(SHIM)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    shim = ctypes.CDLL(str(library))
    shim.shim_reset.argtypes = [ctypes.c_void_p]
    shim.shim_entered.restype = shim.shim_returned.restype = ctypes.POINTER(ctypes.c_int64)
    return shim


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    shim, real = build_shim(), ctypes.cast(ll.llama_decode, ctypes.c_void_p).value
    wrapped = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ll.llama_batch)(("shim_decode", shim))
    c_loop = native_loop.greedy_loop()
    if c_loop is None:
        raise SystemExit(f"no C loop to compare: {native_loop.describe()}")
    ll.llama_decode = wrapped  # what the Python loop calls
    c_loop._functions[0] = ctypes.cast(wrapped, ctypes.c_void_p).value or 0  # and what the C loop calls
    loops = {"C": lambda: c_loop, "Python": lambda: None}
    gaps: dict[str, list[float]] = {name: [] for name in loops}
    calls: dict[str, list[float]] = {name: [] for name in loops}
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / "gap.yaml"
        manifest.write_text(f"defaults:\n  model: {resolve_model(default_model_name())}\n  threads: 2\n  n_ctx: 200\n"
                            f"  ignore_eos: true\nruns:\n  - id: gap\n    prompt_tokens: 128\n"
                            f"    max_tokens: {STEPS + 1}\n")
        spec = load_manifest(manifest, gpu_offload=False).trials[0]
        engine = Engine()
        for trial in range(args.trials):
            for name in (list(loops) if trial % 2 == 0 else list(reversed(loops))):
                native_loop.greedy_loop = loops[name]
                shim.shim_reset(real)
                engine.run(spec, on_token=lambda generated, t_ns: None)  # a progress call-back, as a run has
                n, entered, returned = shim.shim_calls(), shim.shim_entered(), shim.shim_returned()
                steps = [(entered[k], returned[k]) for k in range(n - STEPS, n)]  # prefill and re-warm came first
                gaps[name] += [(b[0] - a[1]) / 1e3 for a, b in zip(steps, steps[1:])]
                calls[name] += [(b - a) / 1e3 for a, b in steps]
        engine.close()
    print(f"{args.trials} trials per loop, {STEPS} decode steps each, alternating; µs")
    for name in loops:
        deciles = statistics.quantiles(gaps[name], n=10)
        print(f"{name:6s} loop: gap between decode calls median {statistics.median(gaps[name]):.1f}, p10 "
              f"{deciles[0]:.1f}, p90 {deciles[8]:.1f}, mean {statistics.fmean(gaps[name]):.1f}; decode call median "
              f"{statistics.median(calls[name]):.0f} ({len(gaps[name])} gaps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
