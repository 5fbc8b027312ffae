"""The greedy decode loop in C (engine/_greedy_loop.c through engine/native_loop.py) against the Python loop it
replaces, on the real default model: same tokens, same steps, same stops."""

import ctypes
import os
import signal

import llama_cpp as ll
import numpy as np
import pytest

from energytui.engine import interrupts, native_loop
from energytui.engine.queue import TrialStopped
from helpers import default_signals


@pytest.fixture
def python_loop(monkeypatch):
    """Runs the engine's Python loop for as long as the test asks (the C loop is what runs by default)."""
    def use(python: bool) -> None:
        monkeypatch.setattr(native_loop, "greedy_loop", (lambda: None) if python else _greedy_loop)

    return use


_greedy_loop = native_loop.greedy_loop


def _library() -> ctypes.CDLL:
    library = ctypes.CDLL(str(native_loop.compiled_module("_greedy_loop")))
    library.et_argmax.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    library.et_argmax.restype = ctypes.c_int32
    return library


def test_the_c_loop_is_built_and_runs_greedy_decoding_here():
    # The README's set-up builds llama-cpp-python from source, so a C compiler is there and the loop is built.
    assert native_loop.greedy_loop() is not None, native_loop.describe()
    assert native_loop.describe().startswith("C (_greedy_loop")


def test_the_python_loop_runs_when_asked_or_when_the_c_loop_is_missing_and_says_why(monkeypatch):
    monkeypatch.setenv("ENERGYTUI_DECODE_LOOP", "python")
    assert native_loop._load() == (None, "Python (ENERGYTUI_DECODE_LOOP=python)")
    monkeypatch.delenv("ENERGYTUI_DECODE_LOOP")
    monkeypatch.setattr(native_loop, "compiled_module", lambda name: None)
    loop, why = native_loop._load()
    assert loop is None and why.startswith("Python (the C loop engine/_greedy_loop.c was not built")


@pytest.mark.parametrize("n", [1, 7, 255, 256, 257, 511, 4096, 49152, 49153])
def test_argmax_is_numpys_first_maximum(n):
    library = _library()
    rng = np.random.default_rng(n)
    cases = {
        "random": rng.standard_normal(n),
        "all equal": np.full(n, 3.0),
        "ties everywhere": rng.integers(-3, 3, n).astype(float),
        "at the start": np.r_[9.0, np.zeros(n - 1)],
        "at the end (the ragged tail)": np.r_[np.zeros(n - 1), 9.0],
        "all negative, -inf among them": np.r_[-np.inf, -rng.random(n - 1) - 1],
    }
    if n > 300:  # the same maximum in two chunks, and twice in one chunk after a smaller one
        tied = np.zeros(n)
        tied[[260, 300, 5]] = [7.0, 7.0, 6.0]
        cases["first of two chunks"] = tied
    for name, values in cases.items():
        x = np.ascontiguousarray(values, dtype=np.float32)
        assert library.et_argmax(x.ctypes.data, n) == int(x.argmax()), name


def _run_both(engine, spec, python_loop):
    python_loop(True)
    expected = engine.run(spec)
    python_loop(False)
    got = engine.run(spec)
    return expected, got


@pytest.mark.parametrize("runs", [
    "  - id: chat\n    suite: sd\n    prompt_limit: 1\n    max_tokens: 200\n",  # ends on end-of-generation
    "  - id: fixed\n    prompt_tokens: 24\n    max_tokens: 40\n    ignore_eos: true\n",
    "  - id: batch\n    prompt_tokens: 16\n    max_tokens: 12\n    ignore_eos: true\n    batch_size: 4\n",
    "  - id: chat-batch\n    suite: sd\n    prompt_limit: 1\n    max_tokens: 200\n    batch_size: 3\n",
])
def test_c_and_python_loops_give_the_same_tokens_and_steps(engine, specs, python_loop, runs):
    spec = specs(runs)[0]
    expected, got = _run_both(engine, spec, python_loop)
    assert got.output_text == expected.output_text
    assert (got.gen_tokens, got.stop_reason, got.prompt_tokens) == (expected.gen_tokens, expected.stop_reason,
                                                                    expected.prompt_tokens)
    assert [n for _, n in got.steps] == [n for _, n in expected.steps]
    times = [t for t, _ in got.steps]
    assert times == sorted(times) and got.t_first_ns <= times[0] and got.t_end_ns == times[-1]
    if spec.run_id.startswith("chat"):
        assert got.stop_reason == "eos" and got.gen_tokens < 200 * spec.batch_size  # the end was the model's


def test_the_c_loop_stops_at_the_contexts_end_like_the_python_loop(engine, specs, python_loop):
    spec = specs("  - id: full\n    prompt_tokens: 100\n    max_tokens: 500\n    ignore_eos: true\n", n_ctx=128)[0]
    expected, got = _run_both(engine, spec, python_loop)
    assert got.stop_reason == expected.stop_reason == "n_ctx"
    assert got.gen_tokens == expected.gen_tokens == 28
    assert got.output_text == expected.output_text


def test_sequences_that_end_leave_the_batch_and_the_others_go_on(engine, specs):
    """Four different prompts of one length decoded together, against a plain reference loop on the same context:
    a sequence that ends leaves the batch, and the batch indices of the others move up."""
    spec = specs("  - id: g\n    suite: sd\n    prompt_limit: 4\n    max_tokens: 1\n    batch_size: 4\n", n_ctx=384)[0]
    model, _ = engine.model(spec)
    ctx = engine.context(spec, model)
    prompts = [engine.prompt_tokens(s, model)[0] for s in specs("  - id: g\n    suite: sd\n    prompt_limit: 4\n")]
    length = min(map(len, prompts))
    prompts = [p[:1] + p[len(p) - length + 1:] for p in prompts]  # one length: one position for all four

    def prefill() -> list[int]:
        ctx.clear_memory()
        entries = [(tok, pos, seq, pos == length - 1) for seq, p in enumerate(prompts) for pos, tok in enumerate(p)]
        assert len(entries) <= ctx.n_batch
        ctx.decode(entries)
        first = [int(ctx.logits(index).argmax()) for index, entry in enumerate(entries) if entry[3]]
        assert not any(model.is_eog(token) for token in first)
        return first

    def reference(steps: int) -> list[list[int]]:
        last = prefill()
        out, live = [[token] for token in last], [0, 1, 2, 3]
        for step in range(steps):
            ctx.decode([(last[seq], length + step, seq, True) for seq in live])
            for index, seq in enumerate(live):
                last[seq] = int(ctx.logits(index).argmax())
            live = [seq for seq in live if not model.is_eog(last[seq])]
            for seq in live:
                out[seq].append(last[seq])
            if not live:
                break
        return out

    expected = reference(120)
    first = prefill()
    done = native_loop.greedy_loop().run(ctx, first, [0, 1, 2, 3], length, 120, False, 4, None)
    got = [[first[seq]] + [tokens[seq] for tokens in done.tokens if seq in tokens] for seq in range(4)]
    assert got == expected
    lengths = sorted(map(len, expected))
    assert lengths[0] < lengths[-1]  # one ended (end of generation) while another went on
    assert len(done.live) == sum(len(tokens) == 121 for tokens in expected)


def _kv_end(engine, spec) -> int:
    model, _ = engine.model(spec)
    ctx = engine.context(spec, model)
    return ll.llama_memory_seq_pos_max(ll.llama_get_memory(ctx.ctx), 0)


def test_a_stop_from_the_progress_callback_ends_the_loop_at_that_step(engine, specs):
    spec = specs("  - id: long\n    prompt_tokens: 32\n    max_tokens: 400\n    ignore_eos: true\n")[0]
    calls = []

    def on_token(generated: int, t_ns: int) -> None:
        calls.append(generated)
        if len(calls) == 2:  # the first call comes after prefill, the second from inside the C loop
            raise TrialStopped

    with pytest.raises(TrialStopped):
        engine.run(spec, on_token=on_token)
    assert calls == [1, 2]
    assert _kv_end(engine, spec) == 32  # positions 0-31 the prompt, 32 the one step taken: no more


def test_a_signal_during_the_c_loop_stops_it_and_is_raised_once_it_returned(engine, specs):
    spec = specs("  - id: long\n    prompt_tokens: 32\n    max_tokens: 400\n    ignore_eos: true\n")[0]
    inherited = default_signals()
    previous = interrupts.install()
    calls = []

    def on_token(generated: int, t_ns: int) -> None:
        calls.append(generated)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    try:
        with pytest.raises(interrupts.Interrupted) as raised:
            engine.run(spec, on_token=on_token)
    finally:
        interrupts.restore(previous)
        for signum, handler in inherited.items():
            signal.signal(signum, handler)
    assert raised.value.signum == signal.SIGTERM and calls == [1, 2]
    assert _kv_end(engine, spec) == 32


def test_a_decode_that_fails_is_an_error_naming_llama_decodes_return(engine, specs):
    spec = specs("  - id: bad\n    prompt_tokens: 8\n    max_tokens: 4\n")[0]
    model, _ = engine.model(spec)
    ctx = engine.context(spec, model)
    ctx.clear_memory()
    with pytest.raises(RuntimeError, match=r"^llama_decode returned -1"):  # a token past the vocabulary
        native_loop.greedy_loop().run(ctx, [model.n_vocab + 5], [0], 0, 4, True, 1, None)
