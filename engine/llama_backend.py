"""The thin layer over llama.cpp's C API (through llama-cpp-python's ctypes bindings).

energytui drives llama.cpp's low-level API rather than the high-level `Llama`
class: it needs contexts with several sequences (`n_seq_max`), a KV cache cleared
before every trial, and nothing but C calls between two token timestamps.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections import deque
from pathlib import Path

import llama_cpp as ll
import numpy as np

from . import interrupts, sigbus
from .errors import UserError

_recent_log: deque[str] = deque(maxlen=20)
_initialised = False


@ll.llama_log_callback
def _keep_log(level: int, text: bytes, _user_data) -> None:
    # llama.cpp logs every load step to stderr; keep the tail for error messages instead.
    if text:
        _recent_log.append(text.decode("utf-8", errors="replace").rstrip())


# llama_get_logits_ith giving the address as an int (the binding's float pointer costs more to turn into one);
# CFUNCTYPE lets go of the GIL, as the binding does: on a GPU the call waits for the graph to finish
_logits_address = ctypes.cast(ll.llama_get_logits_ith,
                              ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32))


def init() -> None:
    global _initialised
    if not _initialised:
        ll.llama_log_set(_keep_log, ctypes.c_void_p())
        ll.llama_backend_init()
        _initialised = True


def last_log_lines(n: int = 3) -> str:
    return " | ".join(line for line in list(_recent_log)[-n:] if line)


def version() -> str:
    return ll.__version__


def system_info() -> str:
    init()
    return ll.llama_print_system_info().decode("utf-8", errors="replace").strip()


def amx_kernels_built() -> bool:
    """Whether llama.cpp was built with its AMX kernels, as it is by default on a CPU that reports AMX. Those of
    llama-cpp-python 0.3.36 stop the process with SIGILL (`tilezero` in a thread whose tiles were never set up: every
    run on this project's Xeon VM), so models keep their weights out of llama.cpp's extra buffer types there."""
    return "AMX_INT8 = 1" in system_info()


def weight_buffers() -> str:
    """Where loaded models keep their weights, and why, in doctor's words."""
    if amx_kernels_built():
        return ("as stored, without llama.cpp's extra buffer types (AMX kernels, weight repacking): its AMX kernels "
                "stop with SIGILL in llama-cpp-python 0.3.36; build it without AMX for repacking (README, Set up)")
    return "llama.cpp's extra buffer types: weights repacked where the CPU and the type allow"


def supports_gpu_offload() -> bool:
    init()
    return bool(ll.llama_supports_gpu_offload())


def _file_state(path: str | Path) -> tuple[int, int, int, int]:
    """(device, inode, size, modification time in ns) of a file."""
    found = os.stat(path)
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


class LoadedModel:
    """A model loaded once per (path, gpu_layers); contexts are made on it as needed."""

    def __init__(self, path: str | Path, gpu_layers: int):
        init()
        params = ll.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        params.use_extra_bufts = not amx_kernels_built()  # they would run llama.cpp's AMX kernels: SIGILL
        self.file = _file_state(path)  # before loading: a change during the load shows too
        started = time.perf_counter()
        with interrupts.held():  # llama.cpp logs through a Python callback while it loads
            self.model = ll.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise UserError(f"{path}: llama.cpp could not load the model ({last_log_lines()})")
        self.load_s = time.perf_counter() - started
        self.path = path
        sigbus.mapped(str(path))
        self.gpu_layers = gpu_layers
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_layers = ll.llama_model_n_layer(self.model)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        self._piece_buf = ctypes.create_string_buffer(256)
        self._eog: dict[int, bool] = {}

    def changed(self) -> str | None:
        """How the model's file differs from the one loaded, None when it does not. llama.cpp maps the file into
        memory: reading a part cut off in place kills the process with SIGBUS (engine/sigbus.py names the file)."""
        try:
            now = _file_state(self.path)
        except OSError as exc:
            return f"it cannot be read now: {exc.strerror}"
        if now[:2] != self.file[:2]:
            return "another file was put in its place"
        if now[2] != self.file[2]:
            return f"its size went from {self.file[2]} to {now[2]} bytes"
        return "it was written to" if now[3] != self.file[3] else None

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        raw = text.encode("utf-8")
        capacity = len(raw) + 16
        buf = (ll.llama_token * capacity)()
        n = ll.llama_tokenize(self.vocab, raw, len(raw), buf, capacity, add_special, True)
        if n < 0:
            capacity = -n
            buf = (ll.llama_token * capacity)()
            n = ll.llama_tokenize(self.vocab, raw, len(raw), buf, capacity, add_special, True)
        return list(buf[:n])

    def detokenize(self, tokens: list[int]) -> str:
        pieces = bytearray()
        for token in tokens:
            n = ll.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
            pieces += self._piece_buf.raw[: max(n, 0)]
        return pieces.decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        """Whether `token` ends a generation; remembered, as a dict lookup costs a fraction of a ctypes call on
        the caches a decode has just flushed (it runs every step)."""
        known = self._eog.get(token)
        if known is None:
            known = self._eog[token] = bool(ll.llama_vocab_is_eog(self.vocab, token))
        return known

    def chat_prompt(self, user_text: str) -> str | None:
        """The user message in the model's own chat template, or None if it has none."""
        template = ll.llama_model_chat_template(self.model, None)
        if not template:
            return None
        message = (ll.llama_chat_message * 1)()
        message[0].role, message[0].content = b"user", user_text.encode("utf-8")
        size = len(user_text.encode("utf-8")) * 2 + 1024
        buf = ctypes.create_string_buffer(size)
        n = ll.llama_chat_apply_template(template, message, 1, True, buf, size)
        if n > size:
            buf = ctypes.create_string_buffer(n)
            n = ll.llama_chat_apply_template(template, message, 1, True, buf, n)
        return buf.raw[:n].decode("utf-8", errors="replace") if n > 0 else None

    def close(self) -> None:
        if self.model:
            ll.llama_model_free(self.model)
            self.model = None
            sigbus.unmapped(str(self.path))


class Context:
    """A llama.cpp context for `n_seq` sequences decoded together."""

    def __init__(self, model: LoadedModel, n_ctx: int, n_batch: int, n_seq: int, threads: int):
        params = ll.llama_context_default_params()
        params.n_ctx = n_ctx * n_seq  # every sequence gets the full n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        with interrupts.held():
            self.ctx = ll.llama_init_from_model(model.model, params)
        if not self.ctx:
            raise UserError(f"llama.cpp could not create a context (n_ctx={n_ctx}, n_batch={n_batch}, "
                            f"batch_size={n_seq}): {last_log_lines()}")
        self.model, self.n_ctx, self.n_batch, self.n_seq = model, n_ctx, n_batch, n_seq
        self.batch = ll.llama_batch_init(max(n_batch, n_seq), 0, n_seq)
        self.threads = threads
        self._rows: dict[int, np.ndarray] = {}  # logits rows by address (see logits)

    def set_threads(self, threads: int) -> None:
        if threads != self.threads:
            ll.llama_set_n_threads(self.ctx, threads, threads)
            self.threads = threads

    def clear_memory(self) -> None:
        ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Decode (token, position, sequence, wants_logits) entries in one llama_decode call."""
        batch = self.batch
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        batch.n_tokens = len(entries)
        status = ll.llama_decode(self.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}: {last_log_lines()}")

    def logits(self, batch_index: int) -> np.ndarray:
        """The logits llama.cpp kept for `batch_index` of the last decode, as a view (no copy).

        Asked of llama.cpp at every call, as its API requires (its buffer may move); the view over an address
        it gave before is reused, which spares ~25 µs a step of ctypes and numpy wrapping on the caches
        the decode has just flushed."""
        address = _logits_address(self.ctx, batch_index)
        if address is None:
            raise RuntimeError(f"llama.cpp kept no logits for batch index {batch_index}: {last_log_lines()}")
        row = self._rows.get(address)
        if row is None:
            if len(self._rows) > 4 * self.n_seq:  # the buffer moved: forget the old addresses
                self._rows.clear()
            n_vocab = self.model.n_vocab
            row = self._rows[address] = np.ctypeslib.as_array((ctypes.c_float * n_vocab).from_address(address))
        return row

    def close(self) -> None:
        if self.ctx:
            self._rows.clear()
            ll.llama_batch_free(self.batch)
            ll.llama_free(self.ctx)
            self.ctx = None


class TokenSampler:
    """Greedy at temperature 0, else temperature + seeded random choice (llama.cpp's sampler chain).

    Greedy is an argmax over the logits in numpy: the same token llama.cpp's greedy
    sampler picks (the first maximum), at a tenth of its cost per step (14 µs against
    124 µs measured here for a 49k vocabulary, in a tight loop). It picks the first token
    after prefill and every token of the Python loop; the C loop (engine/native_loop.py)
    takes the same argmax for the decode steps, where this one cost about 55 µs a step right
    after a decode (12 ms steps): the decode has flushed the caches, so even an argmax over
    16 numbers costs 14 µs then, and llama-bench, which never reads logits, pays none of it.
    """

    def __init__(self, temperature: float, seed: int):
        self.greedy = temperature <= 0
        self.chain = None
        if not self.greedy:
            self.chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
            ll.llama_sampler_chain_add(self.chain, ll.llama_sampler_init_temp(temperature))
            ll.llama_sampler_chain_add(self.chain, ll.llama_sampler_init_dist(seed))

    def sample(self, ctx: Context, batch_index: int) -> int:
        if self.chain is not None:
            return ll.llama_sampler_sample(self.chain, ctx.ctx, batch_index)
        return int(ctx.logits(batch_index).argmax())

    def close(self) -> None:
        if self.chain is not None:
            ll.llama_sampler_free(self.chain)
            self.chain = None


def quantize(source: Path, target: Path, ftype: int, threads: int | None) -> float:
    """Requantize `source` into `target` with llama.cpp; returns seconds taken."""
    init()
    params = ll.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = threads or 0
    started = time.perf_counter()
    status = ll.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if status != 0:
        raise UserError(f"llama_model_quantize failed for {source} → {target.name} ({last_log_lines()})")
    return time.perf_counter() - started
