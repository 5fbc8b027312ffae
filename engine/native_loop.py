"""The greedy decode loop in C (engine/_greedy_loop.c), loaded with ctypes when the package was built with it.

The Python loop in engine/runner.py spends 100-140 µs between two decode calls (measured on a 2-vCPU VM with
12 ms steps; llama-bench spends next to none), which alone keeps decode about 1 % below llama-bench. The C loop
takes the same argmax, end-of-generation check and per-step timestamp on the same clock, and calls back into
Python only every PROGRESS_EVERY_NS: for the live view, a stop from the app, or a signal (held meanwhile, raised
once the loop returned). Sampling at a temperature, and a build without a C compiler, keep the Python loop;
`describe()` says which loop runs, and ENERGYTUI_DECODE_LOOP=python asks for the Python one.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass

import llama_cpp as ll

from . import interrupts
from .llama_backend import last_log_lines
from .paths import compiled_module

PROGRESS_EVERY_NS = 100_000_000  # a stop waits this long at most (plus a step); each call-back costs ~50 µs
_BATCH_LAYOUT = [("n_tokens", 0, 4), ("token", 8, 8), ("embd", 16, 8), ("pos", 24, 8), ("n_seq_id", 32, 8),
                 ("seq_id", 40, 8), ("logits", 48, 8)]  # _greedy_loop.c's et_batch on a 64-bit machine
STOPPED, NO_LOGITS = -2**31, -2**31 + 1  # et_greedy_steps's *status besides llama_decode's returns (_greedy_loop.c)
_PROGRESS = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, ctypes.c_int64)
_state: dict = {}


def _address(function) -> int:
    return ctypes.cast(function, ctypes.c_void_p).value or 0


@dataclass
class Steps:
    """What the loop did: per step, its time and the token of each sequence that gave one."""
    times_ns: list[int]
    tokens: list[dict[int, int]]  # per step: {sequence: token}, those that ended left out
    live: list[int]  # the sequences still going
    last: list[int]  # each sequence's last sampled token


class GreedyLoop:
    def __init__(self, library: ctypes.CDLL):
        self._steps = library.et_greedy_steps
        self._steps.restype = ctypes.c_int32
        pointer, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
        self._steps.argtypes = [
            pointer, pointer, pointer,  # llama_decode, llama_get_logits_ith, llama_vocab_is_eog
            pointer, pointer, pointer, i32, i32, i32,  # ctx, vocab, batch, n_vocab, ignore_eos, n_seq
            pointer, pointer, pointer, i32, i32,  # last, live, n_live, pos, max_steps
            pointer, pointer, i64,  # tokens, t_ns, generated
            _PROGRESS, i64, pointer,  # progress, every_ns, status
        ]
        self._functions = [_address(f) for f in (ll.llama_decode, ll.llama_get_logits_ith, ll.llama_vocab_is_eog)]

    def run(self, ctx, last: list[int], live: list[int], pos: int, max_steps: int, ignore_eos: bool,
            generated: int, on_token) -> Steps:
        """Up to `max_steps` greedy steps of the sequences in `live` (their tokens in `last`) at `pos`."""
        n_seq = len(last)
        c_last = (ctypes.c_int32 * n_seq)(*last)
        c_live = (ctypes.c_int32 * max(len(live), 1))(*live)
        n_live = ctypes.c_int32(len(live))
        tokens = (ctypes.c_int32 * max(max_steps * n_seq, 1))()
        times = (ctypes.c_int64 * max(max_steps, 1))()
        status = ctypes.c_int32(0)
        caught: list[BaseException] = []

        def progress(so_far: int, t_ns: int) -> int:
            try:
                if on_token:
                    on_token(so_far, t_ns)
            except BaseException as exc:  # raised again below, once the loop has returned
                caught.append(exc)
            return 1 if caught or interrupts.pending() else 0

        callback = _PROGRESS(progress)
        with interrupts.held():  # a signal is raised once the loop returned, never inside a call-back
            done = self._steps(*self._functions, ctx.ctx, ctx.model.vocab, ctypes.byref(ctx.batch),
                               ctx.model.n_vocab, int(ignore_eos), n_seq, c_last, c_live, ctypes.byref(n_live),
                               pos, max_steps, tokens, times, generated, callback, PROGRESS_EVERY_NS,
                               ctypes.byref(status))
        if caught:
            raise caught[0]
        if status.value not in (0, STOPPED):
            what = "llama.cpp kept no logits" if status.value == NO_LOGITS else f"llama_decode returned {status.value}"
            raise RuntimeError(f"{what}: {last_log_lines()}")
        per_step = [{seq: tokens[s * n_seq + seq] for seq in range(n_seq) if tokens[s * n_seq + seq] >= 0}
                    for s in range(done)]
        return Steps(list(times[:done]), per_step, list(c_live[:n_live.value]), list(c_last))


def _load() -> tuple[GreedyLoop | None, str]:
    if os.environ.get("ENERGYTUI_DECODE_LOOP", "").lower() == "python":
        return None, "Python (ENERGYTUI_DECODE_LOOP=python)"
    path = compiled_module("_greedy_loop")
    if path is None:
        return None, ("Python (the C loop engine/_greedy_loop.c was not built: no C compiler or Python headers at "
                      "install)")
    names = [field[0] for field in ll.llama_batch._fields_]
    layout = [(name, getattr(ll.llama_batch, name).offset, getattr(ll.llama_batch, name).size) for name in names]
    if layout != _BATCH_LAYOUT:
        return None, f"Python (llama_batch's layout {layout} is not the one the C loop knows)"
    library = ctypes.CDLL(str(path))
    library.et_now_ns.restype = ctypes.c_int64
    before = time.monotonic_ns()
    native = library.et_now_ns()
    if not before <= native <= time.monotonic_ns():  # its timestamps must share the meter's clock
        return None, "Python (the C loop's clock is not time.monotonic_ns's on this system)"
    return GreedyLoop(library), f"C ({path.name})"


def greedy_loop() -> GreedyLoop | None:
    """The C loop, or None where the Python loop runs (see describe)."""
    if "loop" not in _state:
        _state["loop"], _state["why"] = _load()
    return _state["loop"]


def describe() -> str:
    """Which loop runs greedy decoding here, and why not the C one."""
    greedy_loop()
    return _state["why"]
