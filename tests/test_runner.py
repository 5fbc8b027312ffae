"""End-to-end trials on the real default model through llama.cpp."""

import dataclasses
import statistics
import time

import pytest

from energytui.engine.runner import TrialFailed


def test_fixed_length_generation_is_timed_per_token(engine, specs):
    spec = specs("  - id: fixed\n    prompt_tokens: 32\n    max_tokens: 24\n    ignore_eos: true\n")[0]
    m = engine.run(spec)
    metrics = m.metrics()
    assert m.prompt_tokens == 32 and m.gen_tokens == 24 and m.stop_reason == "length"
    assert len(m.steps) == 24 and all(n == 1 for _, n in m.steps)
    times = [t for t, _ in m.steps]
    assert times == sorted(times) and m.t_start_ns < m.t_first_ns <= times[0]
    assert metrics["decode_tps"] > 0 and metrics["prefill_tps"] > 0
    assert 0 < metrics["itl_p50_ms"] <= metrics["itl_p95_ms"]
    assert metrics["ttft_ms"] < metrics["e2e_ms"]
    # decode tokens/s is the 23 tokens after the first over the first→last window
    window_s = (times[-1] - times[0]) / 1e9
    assert metrics["decode_tps"] == pytest.approx(23 / window_s)


def test_kv_cache_is_cleared_so_a_repeated_prompt_costs_the_same(engine, specs):
    spec = specs("  - id: same\n    prompt_tokens: 200\n    max_tokens: 2\n")[0]
    ttfts = [engine.run(spec).metrics()["ttft_ms"] for _ in range(4)]
    # Without clearing, llama.cpp would reuse the cached prompt and a repeat would be ~10x
    # faster (155 → 12 ms measured here); the median guards against a noisy neighbour.
    assert statistics.median(ttfts[1:]) > 0.5 * ttfts[0], ttfts


def test_chat_template_is_applied_to_suite_prompts(engine, specs):
    with_chat, without = specs("  - id: c\n    suite: sd\n    prompt_limit: 1\n    max_tokens: 4\n"
                               "    chat: [true, false]\n")
    assert engine.run(with_chat).prompt_tokens > engine.run(without).prompt_tokens


def test_batch_decodes_every_sequence_per_step(engine, specs):
    spec = specs("  - id: b\n    prompt_tokens: 16\n    max_tokens: 10\n    ignore_eos: true\n    batch_size: 4\n")[0]
    m = engine.run(spec)
    metrics = m.metrics()
    assert m.gen_tokens == 40 and len(m.steps) == 10 and all(n == 4 for _, n in m.steps)
    assert metrics["decode_tps_per_seq"] == pytest.approx(metrics["decode_tps"] / 4)
    assert metrics["prefill_tps"] == pytest.approx(16 * 4 / (metrics["ttft_ms"] / 1e3))


def test_prompt_chunks_follow_n_batch(engine, specs):
    small, large = specs("  - id: nb\n    prompt_tokens: 100\n    max_tokens: 2\n    n_batch: [16, 512]\n")
    assert engine.run(small).gen_tokens == engine.run(large).gen_tokens == 2


def test_prompt_longer_than_context_fails_the_trial(engine, specs):
    spec = specs("  - id: long\n    prompt_tokens: 600\n")[0]
    with pytest.raises(TrialFailed, match="600 tokens does not fit n_ctx=512"):
        engine.run(spec)


def test_generation_stops_at_the_context_end(engine, specs):
    spec = specs("  - id: edge\n    prompt_tokens: 500\n    max_tokens: 64\n    ignore_eos: true\n")[0]
    m = engine.run(spec)
    assert m.gen_tokens == 12 and m.stop_reason == "n_ctx"


def test_load_time_is_reported_once_and_not_in_the_trial(engine, specs, model_path, tmp_path):
    import shutil

    copy = tmp_path / "copy.gguf"
    shutil.copyfile(model_path, copy)
    spec = dataclasses.replace(specs("  - id: l\n    prompt_tokens: 8\n    max_tokens: 2\n")[0], model_path=str(copy))
    seen = {}

    def before_start() -> None:  # the meter's idle window runs here: after load and warm-up, before the clock
        seen["loaded"] = spec.load_key() in engine._models
        seen["at"] = time.monotonic_ns()

    first, second = engine.run(spec, before_start=before_start), engine.run(spec)
    assert first.load_ms is not None and first.load_ms > 0 and second.load_ms is None
    assert seen["loaded"] and first.t_start_ns > seen["at"]  # the load is never inside the trial's clock


def test_sampling_is_seeded_and_greedy_is_deterministic(engine, specs):
    greedy, warm_a, warm_b = specs("  - id: s\n    suite: ng\n    prompt_limit: 1\n    max_tokens: 24\n"
                                   "    temperature: 0\n    seed: 7\n") + specs(
        "  - id: s\n    suite: ng\n    prompt_limit: 1\n    max_tokens: 24\n    temperature: 0.9\n"
        "    seed: [7, 8]\n")
    assert engine.run(greedy).output_text == engine.run(greedy).output_text
    assert engine.run(warm_a).output_text == engine.run(warm_a).output_text  # same seed, same text
    assert engine.run(warm_a).output_text != engine.run(warm_b).output_text


def test_metrics_are_exact_on_a_constructed_token_timeline():
    """Ten decode gaps of 10..100 ms after a 250 ms prefill: every figure computed by hand (numpy's linear
    percentile: p50 = 55 ms, p95 = 95.5 ms)."""
    from energytui.engine.runner import Measurement

    ms = 1_000_000
    steps, t = [(250 * ms, 1)], 250 * ms
    for gap in range(10, 101, 10):
        t += gap * ms
        steps.append((t, 1))
    metrics = Measurement(prompt_tokens=50, gen_tokens=11, t_start_ns=0, t_first_ns=250 * ms, t_end_ns=t,
                          steps=steps, output_text="", stop_reason="length", batch_size=1).metrics()
    assert metrics["ttft_ms"] == pytest.approx(250.0)
    assert metrics["prefill_tps"] == pytest.approx(200.0)
    assert metrics["itl_p50_ms"] == pytest.approx(55.0)
    assert metrics["itl_p95_ms"] == pytest.approx(95.5)
    assert metrics["decode_tps"] == pytest.approx(10 / 0.55)
    assert metrics["e2e_ms"] == pytest.approx(800.0)


def test_greedy_picks_llama_cpps_greedy_token_for_every_sequence(engine, specs):
    """The numpy argmax over the logits view (reused across steps) against llama.cpp's own greedy sampler, at
    every step of a 4-sequence decode whose sequences start from different prompts: each row's view must be
    llama.cpp's row for that batch index."""
    import llama_cpp as ll

    from energytui.engine.llama_backend import TokenSampler

    spec = specs("  - id: g\n    suite: ng\n    prompt_limit: 1\n    batch_size: 4\n")[0]
    model, _ = engine.model(spec)
    ctx = engine.context(spec, model)
    prompt, _ = engine.prompt_tokens(spec, model)
    prompts = [prompt[:len(prompt) - 3 * seq] for seq in range(4)]  # four prompts, four continuations
    ours, theirs = TokenSampler(0, 0), ll.llama_sampler_init_greedy()
    try:
        ctx.clear_memory()
        entries = [(tok, pos, seq, pos == len(p) - 1) for seq, p in enumerate(prompts) for pos, tok in enumerate(p)]
        ctx.decode(entries)
        rows = [index for index, entry in enumerate(entries) if entry[3]]
        picked = []
        for step in range(12):
            tokens = [ours.sample(ctx, row) for row in rows]
            assert tokens == [ll.llama_sampler_sample(theirs, ctx.ctx, row) for row in rows], step
            ctx.decode([(tok, len(prompts[seq]) + step, seq, True) for seq, tok in enumerate(tokens)])
            rows = list(range(4))
            picked.append(tokens)
        assert any(len(set(tokens)) > 1 for tokens in picked)  # the rows differ: a stale view would show
    finally:
        ll.llama_sampler_free(theirs)
        ours.close()


def test_end_of_generation_is_what_llama_cpp_says_each_time(engine, specs):
    import llama_cpp as ll

    model, _ = engine.model(specs("  - id: e\n    prompt_tokens: 8\n")[0])
    eos = ll.llama_vocab_eos(model.vocab)
    for token in (eos, 0, 1, 2, 100, eos, 100):  # asked twice: the remembered answer is the same
        assert model.is_eog(token) == bool(ll.llama_vocab_is_eog(model.vocab, token))
    assert model.is_eog(eos) and not model.is_eog(100)


@pytest.mark.parametrize("features, extra_buffers", [
    ("CPU : AVX2 = 1 | AVX512 = 1 | LLAMAFILE = 1 | REPACK = 1 |", True),
    ("CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | REPACK = 1 |", False)])
def test_a_llama_cpp_built_with_amx_kernels_loads_weights_without_extra_buffer_types(
        model_path, monkeypatch, features, extra_buffers):
    """The default build on a CPU that reports AMX has them, and in llama-cpp-python 0.3.36 they stopped every run
    on this project's Xeon VM with SIGILL (`tilezero` in a thread whose tiles were never set up)."""
    from energytui.engine import llama_backend

    given = []
    load = llama_backend.ll.llama_model_load_from_file

    def recorded(path, params):
        given.append(params.use_extra_bufts)
        return load(path, params)

    monkeypatch.setattr(llama_backend, "system_info", lambda: features)  # what llama.cpp says it was built with
    monkeypatch.setattr(llama_backend.ll, "llama_model_load_from_file", recorded)
    model = llama_backend.LoadedModel(model_path, 0)
    try:
        assert given == [extra_buffers] and model.n_layers == 30
    finally:
        model.close()
    assert llama_backend.weight_buffers().startswith("as stored, without") is not extra_buffers
