"""This host's matrix-multiply kernels, timed one weight type at a time through llama.cpp's own ggml.

llama.cpp picks a CPU kernel by weight type and instruction set (repacked tiles for Q4_0
on AVX2, tinyBLAS for F16 and Q8_0, row-by-row dot products for Q4_1, ...). Their speeds
differ several-fold, cannot be read from a GGUF header, and decide what a quantization
never run here would cost. The probe multiplies a random weight matrix of each type,
held where llama.cpp holds model weights (the CPU's repack buffer when it accepts the
operation, unless llama.cpp's AMX kernels are built in: models then load without it, see
llama_backend), by 1 to 64 rows of activations at each thread count asked for, and keeps the
fastest of a few repetitions as seconds per FLOP.

It runs in a child process (`python -m energytui.engine.kernels`): a crash inside the C
library then costs the advisor its probe, not the user's command.
"""

from __future__ import annotations

import argparse
import ctypes as C
import json
import os
import subprocess
import sys
import time
from typing import Any

# energytui's quantization names → the ggml type of the file's main matrix weights (ggml.h's enum ggml_type).
# A K-quant mix (Q4_K_M) is timed as its main type.
GGML_TYPES = {"F32": 0, "F16": 1, "BF16": 30, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10,
              "Q3_K_S": 11, "Q3_K_M": 11, "Q3_K_L": 11, "Q4_K_S": 12, "Q4_K_M": 12, "Q5_K_S": 13, "Q5_K_M": 13,
              "Q6_K": 14}
ROWS = (1, 2, 4, 8, 16, 64)  # activation rows: a decode step's batch up to a prefill chunk
SHAPE = (1024, 1024)  # weights: inputs × outputs, a multiple of every block size, larger than a core's L2
REPEATS = 7
TIMEOUT_S = 120


class KernelProbeFailed(Exception):
    """The probe could not run here (no llama.cpp libraries, a changed ggml interface, a crash)."""


def probe(quants: list[str], threads: list[int], timeout_s: float = TIMEOUT_S) -> dict:
    """{"llama_cpp": version, "rates": {quant: {rows: {threads: seconds per FLOP}}}} from a child process."""
    command = [sys.executable, "-m", "energytui.engine.kernels", "--quants", ",".join(quants),
               "--threads", ",".join(map(str, threads))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise KernelProbeFailed(f"the kernel probe took over {timeout_s:.0f} s") from None
    except OSError as exc:
        raise KernelProbeFailed(f"the kernel probe could not start ({exc.strerror})") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise KernelProbeFailed(f"the kernel probe failed ({last})")
    return json.loads(done.stdout)


# --- the child: ggml through ctypes -----------------------------------------------------------------

class _InitParams(C.Structure):
    _fields_ = [("mem_size", C.c_size_t), ("mem_buffer", C.c_void_p), ("no_alloc", C.c_bool)]


class _Ggml:
    """The few ggml functions the probe calls, bound from llama-cpp-python's bundled libraries."""

    def __getattr__(self, name: str) -> Any:  # the bound functions are set in __init__ from the table below
        raise AttributeError(name)

    def __init__(self):
        import llama_cpp

        folder = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
        self.version = llama_cpp.__version__
        libs = {name: C.CDLL(os.path.join(folder, f"lib{name}.so"), mode=C.RTLD_GLOBAL)
                for name in ("ggml-base", "ggml", "ggml-cpu")}
        p, size, i64 = C.c_void_p, C.c_size_t, C.c_int64
        # library -> (function, result type, argument types); None: returns void
        table: dict[str, list[tuple[str, type | None, list[type]]]] = {
            "ggml-base": [("ggml_init", p, [_InitParams]), ("ggml_free", None, [p]),
                          ("ggml_new_tensor_2d", p, [p, C.c_int, i64, i64]), ("ggml_mul_mat", p, [p, p, p]),
                          ("ggml_new_graph", p, [p]), ("ggml_build_forward_expand", None, [p, p]),
                          ("ggml_tensor_overhead", size, []), ("ggml_graph_overhead", size, []),
                          ("ggml_quantize_chunk", size, [C.c_int, p, p, i64, i64, i64, p]),
                          ("ggml_row_size", size, [C.c_int, i64]), ("ggml_nbytes", size, [p]),
                          ("ggml_log_set", None, [p, p])],
            "ggml": [("ggml_backend_dev_by_type", p, [C.c_int]), ("ggml_backend_dev_backend_reg", p, [p]),
                     ("ggml_backend_reg_get_proc_address", p, [p, C.c_char_p]),
                     ("ggml_backend_cpu_buffer_type", p, []), ("ggml_backend_buft_alloc_buffer", p, [p, size]),
                     ("ggml_backend_alloc_ctx_tensors_from_buft", p, [p, p]),
                     ("ggml_backend_tensor_set", None, [p, p, size, size]),
                     ("ggml_backend_graph_compute", C.c_int, [p, p]), ("ggml_backend_buffer_free", None, [p]),
                     ("ggml_backend_dev_supports_op", C.c_bool, [p, p])],
            "ggml-cpu": [("ggml_backend_cpu_init", p, []), ("ggml_backend_cpu_set_n_threads", None, [p, C.c_int])],
        }
        for lib, functions in table.items():
            for name, result, args in functions:
                f = getattr(libs[lib], name)
                f.restype, f.argtypes = result, args
                setattr(self, name.removeprefix("ggml_"), f)
        self._quiet = C.CFUNCTYPE(None, C.c_int, C.c_char_p, C.c_void_p)(lambda level, text, data: None)
        self.log_set(C.cast(self._quiet, C.c_void_p), None)  # repacking logs a line per tensor
        self.device = self.backend_dev_by_type(0)  # GGML_BACKEND_DEVICE_TYPE_CPU
        self.backend = self.backend_cpu_init()
        from .llama_backend import amx_kernels_built

        self.extra_bufts = [] if amx_kernels_built() else self._extra_buffer_types()  # as models are loaded

    def _extra_buffer_types(self) -> list[int]:
        """The CPU's extra weight buffers (CPU_REPACK), as llama.cpp's model loader asks for them."""
        address = self.backend_reg_get_proc_address(self.backend_dev_backend_reg(self.device),
                                                    b"ggml_backend_dev_get_extra_bufts")
        if not address:
            return []
        listed = C.CFUNCTYPE(C.POINTER(C.c_void_p), C.c_void_p)(address)(self.device)
        out, i = [], 0
        while listed and listed[i]:
            out.append(listed[i])
            i += 1
        return out

    def context(self, tensors: int, graphs: int = 0):
        """A context for tensor and graph headers only (no_alloc: the data lives in backend buffers)."""
        size = self.tensor_overhead() * tensors + self.graph_overhead() * graphs
        return self.init(_InitParams(size, None, True))

    def weight_buffer_type(self, weights: int, rows: int) -> int:
        """The buffer llama.cpp would hold these weights in: the first extra buffer whose kernels take a
        multiplication by `rows` rows (the loader's test: a zero-size buffer of that type on the weights)."""
        for buft in self.extra_bufts:
            ctx = self.context(4)
            dummy = self.backend_buft_alloc_buffer(buft, 0)
            op = self.mul_mat(ctx, weights, self.new_tensor_2d(ctx, 0, SHAPE[0], rows))
            slot = C.cast(weights, C.POINTER(C.c_void_p))
            slot[1] = dummy  # struct ggml_tensor: {enum ggml_type type; ggml_backend_buffer_t buffer; ...}
            accepted = self.backend_dev_supports_op(self.device, op)
            slot[1] = None
            self.backend_buffer_free(dummy)
            self.free(ctx)
            if accepted:
                return buft
        return self.backend_cpu_buffer_type()


class _Case:
    """One weight type's matrix, held as llama.cpp would hold it, multiplied by each row count."""

    def __init__(self, g: _Ggml, ggml_type: int, source, rows_list):
        inputs, outputs = SHAPE
        self.g = g
        self.wctx = g.context(2)
        weights = g.new_tensor_2d(self.wctx, ggml_type, inputs, outputs)
        self.wbuf = g.backend_alloc_ctx_tensors_from_buft(self.wctx, g.weight_buffer_type(weights, max(rows_list)))
        packed = C.create_string_buffer(g.row_size(ggml_type, inputs) * outputs)
        g.quantize_chunk(ggml_type, source, packed, 0, outputs, inputs, None)
        g.backend_tensor_set(weights, packed, 0, g.nbytes(weights))
        self.gctx = g.context(2 * len(rows_list), graphs=len(rows_list))
        self.graphs = {}
        inputs_of = []
        for rows in rows_list:
            x = g.new_tensor_2d(self.gctx, 0, inputs, rows)
            graph = g.new_graph(self.gctx)
            g.build_forward_expand(graph, g.mul_mat(self.gctx, weights, x))
            self.graphs[rows] = graph
            inputs_of.append((x, rows))
        self.gbuf = g.backend_alloc_ctx_tensors_from_buft(self.gctx, g.backend_cpu_buffer_type())
        for x, rows in inputs_of:
            activations = (C.c_float * (inputs * rows))(*([0.25] * (inputs * rows)))
            g.backend_tensor_set(x, activations, 0, C.sizeof(activations))

    def seconds(self, rows: int) -> float:
        started = time.perf_counter()
        self.g.backend_graph_compute(self.g.backend, self.graphs[rows])
        return time.perf_counter() - started

    def close(self) -> None:
        for buffer in (self.gbuf, self.wbuf):
            self.g.backend_buffer_free(buffer)
        self.g.free(self.gctx)
        self.g.free(self.wctx)


def _seconds_per_flop(g: _Ggml, cases: dict[int, _Case], rows_list, threads_list) -> dict:
    """The fastest of REPEATS rounds, each round timing every case once (straight after an untimed run that
    brings its weights into cache): a slow moment on a shared machine then slows every type alike instead
    of one. Reading weights from memory is the decode model's own term (bytes ÷ bandwidth)."""
    best = {(q, r, t): float("inf") for q in cases for r in rows_list for t in threads_list}
    for _ in range(REPEATS):
        for threads in threads_list:
            g.backend_cpu_set_n_threads(g.backend, threads)
            for quant, case in cases.items():
                for rows in rows_list:
                    case.seconds(rows)  # the weights into cache: the kernel's speed, apart from memory's
                    best[quant, rows, threads] = min(best[quant, rows, threads], case.seconds(rows))
    flops = 2.0 * SHAPE[0] * SHAPE[1]
    out: dict[int, dict[str, dict[str, float]]] = {}
    for (quant, rows, threads), seconds in best.items():
        out.setdefault(quant, {}).setdefault(str(rows), {})[str(threads)] = seconds / (flops * rows)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="time llama.cpp's CPU matrix kernels per weight type (JSON out)")
    parser.add_argument("--quants", required=True, help="comma-separated quantization names")
    parser.add_argument("--threads", required=True, help="comma-separated thread counts")
    args = parser.parse_args(argv)
    quants = [q for q in args.quants.split(",") if q in GGML_TYPES]
    threads = sorted({int(t) for t in args.threads.split(",")})
    import random

    rng = random.Random(0)
    source = (C.c_float * (SHAPE[0] * SHAPE[1]))(*(rng.gauss(0.0, 0.02) for _ in range(SHAPE[0] * SHAPE[1])))
    g = _Ggml()
    cases = {t: _Case(g, t, source, ROWS) for t in sorted({GGML_TYPES[q] for q in quants})}
    by_type = _seconds_per_flop(g, cases, ROWS, threads)
    for case in cases.values():
        case.close()
    rates = {q: by_type[GGML_TYPES[q]] for q in quants}  # names of one type (Q4_K_S, Q4_K_M) share its timing
    json.dump({"llama_cpp": g.version, "rows": list(ROWS), "threads": threads, "rates": rates}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
