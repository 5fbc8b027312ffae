"""The advisor's physical model on synthetic trials generated from known constants.

The generator below writes the physics out by hand (bytes ÷ bandwidth, FLOPs ÷ compute,
idle + dynamic power), independently of advisor/features.py, so the calibration must
recover the constants it was given, and the recommendation must follow from them.
"""

from __future__ import annotations

import math
import re

import pytest

from energytui.advisor.features import Config, ModelShape, Workload
from energytui.advisor.fit import NotEnoughData, fit
from energytui.advisor.predict import effective_rates, host_basis, predict
from energytui.advisor.recommend import Request, advise, candidates
from energytui.engine.errors import UserError

# A 1.1B-class model (TinyLlama's shape) at three quantizations: bytes read per step differ, FLOPs do not.
SHAPE = dict(n_params=1_100_048_384, n_layers=22, n_embd=2048, n_head=32, n_head_kv=4, head_dim=64,
             n_ctx_train=2048, n_vocab=32000, matmul_params=1_034_000_000)
QUANTS = {"Q4_0": 4.5, "Q8_0": 8.5, "F16": 16.0}

# The true constants of the synthetic host.
CPU_BW_SERIAL, CPU_BW_PER_THREAD = 1 / 40e9, 1 / 12e9  # s/byte: t = bytes × (serial + per_thread / threads)
CPU_FLOP_PER_THREAD = 1 / 60e9  # s/FLOP on one thread, decode
CPU_PREFILL_FLOP_PER_THREAD = 1 / 90e9  # s/FLOP on one thread, prefill (batched matrices run faster)
STEP_OVERHEAD, PREFILL_OVERHEAD = 0.4e-3, 2e-3
GPU_BW, GPU_FLOPS, GPU_STEP = 1 / 300e9, 1 / 20e12, 0.2e-3
IDLE_W, W_PER_THREAD, GPU_DYNAMIC_W = 12.0, 6.0, 110.0


def shape_row(quant: str) -> dict:
    bits = QUANTS[quant]
    decode_bytes = int(SHAPE["matmul_params"] * bits / 8)
    return {"model": f"tiny-{quant.lower()}", "model_path": f"/models/tiny-{quant.lower()}.gguf", "quant": quant,
            "bits_per_weight": bits, "decode_bytes": decode_bytes, "model_size": decode_bytes + 70_000_000,
            "layer_bytes": int(decode_bytes * 0.95), **SHAPE}


KV_PER_CELL = 2 * 22 * 4 * 64 * 2  # K and V, 22 layers, 4 KV heads of 64, F16


def padded(cells: int) -> int:
    """llama.cpp attends over the used KV cells padded to a multiple of 256, at least 256."""
    return max(256, -(-cells // 256) * 256)


def mean_kv_cells(prompt: int, gen: int, batch: int) -> float:
    """Decode steps after the first: the unified cache holds every sequence's cells."""
    steps = range(1, max(gen, 2))
    return sum(padded(batch * (prompt + i)) for i in steps) / len(steps)


def true_times(backend: str, threads: int | None, quant: str, prompt: int, gen: int, batch: int) -> tuple[float, float]:
    """(prefill seconds, seconds per decode step), written out from the physics."""
    row = shape_row(quant)
    weights, matmul = row["decode_bytes"], row["matmul_params"]
    kv = KV_PER_CELL * mean_kv_cells(prompt, gen, batch)
    tokens = prompt * batch  # one chunk (n_batch 512) while it fits: every token attends over the padded cells
    chunks = [min(512, tokens - start) for start in range(0, tokens, 512)]
    attention = 4 * 22 * 32 * 64 * sum(size * padded(sum(chunks[:i + 1])) for i, size in enumerate(chunks))
    if backend == "gpu":
        prefill = (2 * matmul * tokens + attention) * GPU_FLOPS + PREFILL_OVERHEAD
        step = (weights + kv) * GPU_BW + GPU_STEP
        return prefill, step
    prefill = (2 * matmul * tokens + attention) * CPU_PREFILL_FLOP_PER_THREAD / threads + PREFILL_OVERHEAD
    step = ((weights + kv) * (CPU_BW_SERIAL + CPU_BW_PER_THREAD / threads)
            + 2 * matmul * batch * CPU_FLOP_PER_THREAD / threads + STEP_OVERHEAD)
    return prefill, step


def synthetic_trials(backends=("cpu", "gpu"), quants=tuple(QUANTS), prompts=(32, 128, 384), gens=(16, 64),
                     threads=(1, 2, 4), batches=(1, 2, 4)) -> list[dict]:
    trials = []
    for backend in backends:
        for thread in (threads if backend == "cpu" else (None,)):
            for quant in quants:
                for batch in batches:
                    for prompt in prompts:
                        for gen in gens:
                            trials.append(_trial(len(trials) + 1, backend, thread, quant, prompt, gen, batch))
    return trials


def _trial(i, backend, threads, quant, prompt, gen, batch) -> dict:
    prefill, step = true_times(backend, threads, quant, prompt, gen, batch)
    decode = step * (gen - 1)
    power = IDLE_W + (GPU_DYNAMIC_W if backend == "gpu" else W_PER_THREAD * threads)
    config = f"{backend}-{threads}-{quant}-{batch}-{prompt}-{gen}"
    return {"id": i, "status": "done", "finished_at": "t", "config_id": config, "host_id": "synthetic",
            "gpu_build": 1, "host_cores": 8, "host_ram_gb": 32.0, "backend": backend, "threads": threads,
            "gpu_layers": 22 if backend == "gpu" else 0, "n_batch": 512, "batch_size": batch,
            "prompt_tokens": prompt, "gen_tokens": gen * batch, "ttft_ms": prefill * 1e3,
            "e2e_ms": (prefill + decode) * 1e3, "prefill_energy_j": power * prefill, "decode_energy_j": power * decode,
            "energy_j": power * (prefill + decode), "energy_tag": "counter", **shape_row(quant)}


@pytest.fixture(scope="module")
def synthetic_fit():
    return fit(synthetic_trials(), "synthetic")


def test_calibration_recovers_the_constants_within_2_percent(synthetic_fit):
    decode = synthetic_fit.coefficients["decode_step_s"]
    prefill = synthetic_fit.coefficients["prefill_s"]
    expected = {
        ("decode_step_s", "cpu_weight_bytes"): CPU_BW_SERIAL,
        ("decode_step_s", "cpu_weight_bytes/thread"): CPU_BW_PER_THREAD,
        **{("decode_step_s", f"cpu_flops/thread@{q}"): CPU_FLOP_PER_THREAD for q in QUANTS},
        ("decode_step_s", "gpu_weight_bytes"): GPU_BW,
        ("decode_step_s", "fixed"): None,  # CPU and GPU overheads differ; checked through predictions below
        **{("prefill_s", f"cpu_flops/thread@{q}"): CPU_PREFILL_FLOP_PER_THREAD for q in QUANTS},
        **{("prefill_s", f"gpu_flops@{q}"): GPU_FLOPS for q in QUANTS},
    }
    for (part, column), value in expected.items():
        if value is not None:
            got = (decode if part == "decode_step_s" else prefill)[column]
            assert got == pytest.approx(value, rel=0.02), (part, column)
    for phase in ("prefill_w", "decode_w"):
        power = synthetic_fit.coefficients[phase]
        assert power["fixed"] == pytest.approx(IDLE_W, rel=0.02)
        assert power["cpu_threads"] == pytest.approx(W_PER_THREAD, rel=0.02)
        assert power["gpu_share"] == pytest.approx(GPU_DYNAMIC_W, rel=0.02)


def test_calibration_in_words_gives_bandwidth_per_thread_count(synthetic_fit):
    rates = effective_rates(host_basis(synthetic_fit, "measured here"), 4)
    assert rates["cpu decode bandwidth GB/s"] == pytest.approx(1e-9 / (CPU_BW_SERIAL + CPU_BW_PER_THREAD / 4), rel=0.02)
    assert rates["gpu decode bandwidth GB/s"] == pytest.approx(300, rel=0.02)


def test_held_out_configurations_are_predicted_within_2_percent_on_exact_physics(synthetic_fit):
    assert synthetic_fit.held_out_mape["latency_s"] < 0.02
    assert synthetic_fit.held_out_mape["energy_j"] < 0.02
    assert synthetic_fit.residuals == {}  # the physics explains everything: no residual model is kept


def test_unmeasured_threads_and_longer_requests_follow_the_physics(synthetic_fit):
    """8 threads was never measured, nor 1000 prompt tokens or 400 generated: calibrated, not flat."""
    advice = advise(synthetic_fit, Request(gen_tokens=400, prompt_tokens=1000, threads=8, batch=1, model="tiny-q8_0",
                                           objective="latency"), gpu_trials=True)
    by_backend = {p.config["backend"]: p for p in [advice.recommendation, *advice.alternatives]}
    cpu = by_backend["cpu"]
    prefill, step = true_times("cpu", 8, "Q8_0", 1000, 400, 1)
    assert cpu.values["latency_s"] == pytest.approx(prefill + step * 399, rel=0.03)
    assert cpu.basis == "calibrated here"
    assert "threads 8: threads 1–4 were measured here" in cpu.extrapolation
    assert "1000 prompt tokens is outside the measured 32–384" in cpu.extrapolation
    longer = advise(synthetic_fit, Request(gen_tokens=800, prompt_tokens=1000, threads=8, batch=1, model="tiny-q8_0",
                                           objective="latency"), gpu_trials=True)
    cpu_longer = next(p for p in [longer.recommendation, *longer.alternatives] if p.config["backend"] == "cpu")
    assert cpu_longer.values["latency_s"] > 1.8 * cpu.values["latency_s"]


def test_batch_amortises_the_weights_but_never_for_free(synthetic_fit):
    one = advise(synthetic_fit, Request(gen_tokens=64, prompt_tokens=128, batch=1, model="tiny-q4_0"), True)
    big = advise(synthetic_fit, Request(gen_tokens=64, prompt_tokens=128, batch=256, model="tiny-q4_0"), True)
    cheapest_one = min(p.values["energy_j"] for p in [one.recommendation, *one.alternatives])
    gpu_big = [p for p in [big.recommendation, *big.alternatives, *big.rejected]
               if p.config["backend"] == "gpu" and p.values]
    assert gpu_big and all(p.values["energy_j"] > cheapest_one / 50 for p in gpu_big)
    assert all("batch 256: batch 1–4 were measured here" in p.extrapolation for p in gpu_big)


def test_a_batch_whose_kv_cache_does_not_fit_the_ram_or_the_gpu_is_refused():
    """256 sequences of 2000 tokens: 22,528 bytes a token of KV cache plus 128 kB of logits each, and 0.65 GB
    of weights, 11.4 GiB in all, on a host with 4 GiB of RAM and an 8 GiB GPU."""
    trials = synthetic_trials()
    for t in trials:
        t.update(host_ram_gb=4.0, host_gpu_memory_gb=8.0)
    small = fit(trials, "small-host")
    huge = advise(small, Request(gen_tokens=200, prompt_tokens=1800, batch=256, model="tiny-q4_0"), True)
    assert huge.recommendation is None
    cpu = [p for p in huge.rejected if p.config["backend"] == "cpu"]
    gpu = [p for p in huge.rejected if p.config["backend"] == "gpu"]
    assert cpu and all(p.rejected[0] == "cannot run: needs 11.4 GiB (weights + KV cache for batch 256) but this "
                       "host's RAM has 4 GiB; at most batch 71 fits" for p in cpu)
    assert gpu and all(p.rejected[0] == "cannot run: needs 11.4 GiB (weights + KV cache for batch 256) but this "
                       "host's GPU memory has 8 GiB; at most batch 156 fits" for p in gpu)


def test_a_budget_decides_between_cpu_and_gpu(synthetic_fit):
    low = advise(synthetic_fit, Request(gen_tokens=128, prompt_tokens=256, budget_w=40, batch=1), gpu_trials=True)
    high = advise(synthetic_fit, Request(gen_tokens=128, prompt_tokens=256, budget_w=400, batch=1), gpu_trials=True)
    assert low.recommendation.config["backend"] == "cpu"
    assert high.recommendation.config["backend"] == "gpu"
    assert any(p.config["backend"] == "gpu" and "over budget" in p.rejected[0] for p in low.rejected)
    assert any(line.startswith("under ") for line in high.changes)


def test_objectives_rank_differently(synthetic_fit):
    """Under latency the fastest wins; under energy the cheapest; exact values from the physics."""
    request = dict(gen_tokens=64, prompt_tokens=128, batch=1, model="tiny-q4_0", budget_w=70)
    fast = advise(synthetic_fit, Request(**request, objective="latency"), True).recommendation
    frugal = advise(synthetic_fit, Request(**request, objective="energy"), True).recommendation
    assert fast.config["threads"] == 4 and fast.config["backend"] == "cpu"
    prefill, step = true_times("cpu", 4, "Q4_0", 128, 64, 1)
    assert fast.values["latency_s"] == pytest.approx(prefill + 63 * step, rel=0.02)
    assert fast.values["avg_power_w"] == pytest.approx(IDLE_W + 4 * W_PER_THREAD, rel=0.02)
    assert frugal.values["energy_j"] <= fast.values["energy_j"]


def test_intervals_never_go_below_zero(synthetic_fit):
    advice = advise(synthetic_fit, Request(gen_tokens=64, prompt_tokens=128, quants=["Q5_1"], hardware=None), True)
    for p in [advice.recommendation, *advice.alternatives]:
        for low, high in p.intervals.values():
            assert 0 < low <= high


def test_a_request_beyond_the_trained_context_is_refused(synthetic_fit):
    with pytest.raises(UserError, match="exceeds .*trained context of 2048"):
        advise(synthetic_fit, Request(gen_tokens=100, prompt_tokens=1_000_000), gpu_trials=True)


def test_an_unmeasured_quantization_is_calibrated_and_says_so(synthetic_fit):
    advice = advise(synthetic_fit, Request(gen_tokens=64, prompt_tokens=128, batch=1, threads=4,
                                           model="tiny-q4_0", quants=["Q5_1"], objective="latency"), True)
    q51 = next(p for p in [advice.recommendation, *advice.alternatives, *advice.rejected]
               if p.config["model"]["quant"] == "Q5_1" and p.config["backend"] == "cpu")
    assert q51.basis == "calibrated here" and any("Q5_1 was never measured" in w for w in q51.extrapolation)
    row = shape_row("Q4_0")
    bytes_q51 = row["decode_bytes"] * 6.0 / 4.5
    prefill, _ = true_times("cpu", 4, "Q4_0", 128, 64, 1)
    kv = KV_PER_CELL * mean_kv_cells(128, 64, 1)
    step = ((bytes_q51 + kv) * (CPU_BW_SERIAL + CPU_BW_PER_THREAD / 4)
            + 2 * row["matmul_params"] * CPU_FLOP_PER_THREAD / 4 + STEP_OVERHEAD)
    assert q51.values["latency_s"] == pytest.approx(prefill + 63 * step, rel=0.03)


def test_spec_prior_for_hardware_not_measured(synthetic_fit):
    advice = advise(synthetic_fit, Request(gen_tokens=128, prompt_tokens=128, batch=1, model="tiny-q4_0",
                                           hardware="rtx-3060-12gb"), gpu_trials=False)
    best = advice.recommendation
    assert best.basis == "spec prior only" and best.config["device"] == "rtx-3060-12gb"
    lo, hi = best.intervals["latency_s"]
    assert hi / lo == pytest.approx(1.5 ** 2, rel=0.01)
    assert any("spec prior only" in note for note in advice.notes)


def test_a_model_too_big_for_a_gpu_is_rejected(synthetic_fit):
    huge = ModelShape(name="huge", path="/huge.gguf", quant="F16", n_params=70_000_000_000, n_layers=80,
                      bits_per_weight=16, decode_bytes=140_000_000_000, matmul_params=69_000_000_000, n_head=64,
                      n_head_kv=8, head_dim=128, n_ctx_train=4096, n_vocab=32000, size=140_000_000_000)
    advice = advise(synthetic_fit, Request(gen_tokens=16, prompt_tokens=16, model="huge", hardware="rtx-3060-12gb"),
                    gpu_trials=False, what_if_models=[huge])
    assert advice.recommendation is None
    assert "cannot run: needs 130.4 GiB" in advice.rejected[0].rejected[0]


def test_gpu_configurations_on_a_cpu_only_calibration_are_rejected_with_the_reason():
    trials = [t for t in synthetic_trials(backends=("cpu",)) if t["threads"] in (1, 2)]
    for t in trials:
        t["gpu_build"] = 0
    cpu_only = fit(trials, "cpu-host")
    assert not any(c.startswith("gpu") for c in cpu_only.coefficients["decode_step_s"])
    advice = advise(cpu_only, Request(gen_tokens=32, prompt_tokens=64), gpu_trials=False)
    assert advice.recommendation.config["backend"] == "cpu"
    assert any("GPU options are what-if only" in note for note in advice.notes)


def test_unknown_threads_stay_unknown():
    trials = synthetic_trials(backends=("cpu", "gpu"), threads=(2,))
    for t in trials:
        if t["backend"] == "gpu":
            assert t["threads"] is None
    calibrated = fit(trials, "h")
    labels = [c.label() for c in calibrated.config_objects()]
    assert any("threads unknown" in label for label in labels)
    assert not any(c.threads == 1 for c in calibrated.config_objects())


def test_too_little_data_names_the_calibration_manifest():
    with pytest.raises(NotEnoughData, match="calibrate.yaml"):
        fit(synthetic_trials()[:3], "host")


@pytest.mark.parametrize("field, value, message", [
    ("batch", 0, "--batch 0: give a whole number"), ("batch", -3, "--batch -3"),
    ("threads", 0, "--threads 0"), ("prompt_tokens", 0, "--prompt-tokens 0"),
    ("objective", "speed", "--objective 'speed'"), ("quants", ["Q9_9"], "--quant 'Q9_9'"),
    ("prompt_tokens", 10**12, "--prompt-tokens 1000000000000: more than 1,048,576 tokens"),
    ("batch", 100_000, "--batch 100000: more than 256 sequences"), ("threads", 10**6, "--threads 1000000"),
])
def test_bad_requests_name_the_value(synthetic_fit, field, value, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        advise(synthetic_fit, Request(gen_tokens=16, **{field: value}), gpu_trials=True)


def test_unknown_hardware_names_close_matches(synthetic_fit):
    with pytest.raises(UserError, match="--hardware 'rtx-3060': not in config/hardware.yaml; did you mean"):
        advise(synthetic_fit, Request(gen_tokens=16, hardware="rtx-3060"), gpu_trials=True)


CROSSOVER = re.compile(r"(.+) wins (from|at or below|at) (\d+) (prompt|generated) tokens?$")


@pytest.mark.parametrize("request_", [dict(gen_tokens=16, prompt_tokens=16, budget_w=40),
                                      dict(gen_tokens=64, prompt_tokens=128, budget_w=36),
                                      dict(gen_tokens=4, prompt_tokens=512, objective="edp")])
def test_a_crossover_names_the_first_length_where_the_other_configuration_wins(synthetic_fit, request_):
    """At the printed length the named configuration is recommended; one token nearer the request, the
    request's own answer still is (the edge is exact, and ties rank as `advise` ranks them)."""
    advice = advise(synthetic_fit, Request(**request_), gpu_trials=True)
    lines = [m for m in map(CROSSOVER.match, advice.changes) if m]
    assert lines, advice.changes
    for line in lines:
        winner, where, edge, which = line.group(1), line.group(2), int(line.group(3)), line.group(4)
        field = "prompt_tokens" if which == "prompt" else "gen_tokens"
        inside = edge - 1 if where == "from" else edge + 1
        at_edge = advise(synthetic_fit, Request(**{**request_, field: edge}), gpu_trials=True).recommendation
        before = advise(synthetic_fit, Request(**{**request_, field: inside}), gpu_trials=True).recommendation
        assert at_edge.label == winner and before.label == advice.recommendation.label, line.group(0)


def test_a_printed_budget_always_admits_what_it_names(synthetic_fit):
    """Budgets in the answer are rounded up, so giving back the printed figure gets the configuration named."""
    request = dict(gen_tokens=128, prompt_tokens=256, batch=1)
    tight = advise(synthetic_fit, Request(**request, budget_w=30), gpu_trials=True)
    assert tight.recommendation and any("would allow" in line for line in tight.changes)
    for line in tight.changes:
        if match := re.match(r"a budget of ([0-9.]+) W would allow (.+) \(\d+% lower energy\)$", line):
            allowed = advise(synthetic_fit, Request(**request, budget_w=float(match.group(1))), gpu_trials=True)
            assert match.group(2) in {p.label for p in [allowed.recommendation, *allowed.alternatives]}, line
    none = advise(synthetic_fit, Request(**request, budget_w=5), gpu_trials=True)
    assert none.recommendation is None and none.needs.startswith("a budget of at least")
    needed = float(re.match(r"a budget of at least ([0-9.]+) W", none.needs).group(1))
    assert advise(synthetic_fit, Request(**request, budget_w=needed), True).recommendation.label == none.closest.label
    assert needed <= 1.001 * none.closest.values["avg_power_w"]  # rounded up by less than the third digit


def test_a_spec_cpu_refuses_more_threads_than_it_has(synthetic_fit):
    advice = advise(synthetic_fit, Request(gen_tokens=32, hardware="raspberry-pi-5", threads=64), gpu_trials=True)
    assert advice.recommendation is None
    assert all("64 threads on Raspberry Pi 5" in p.rejected[0] and "with 4 CPUs" in p.rejected[0]
               for p in advice.rejected)


def test_measured_idle_pins_the_static_power_so_one_thread_count_calibrates_watts_per_thread():
    """With idle measured in each trial's idle window, power = idle + dynamic needs no second thread count."""
    trials = synthetic_trials(backends=("cpu",), threads=(2,))
    for t in trials:
        t["idle_power_w"] = IDLE_W
    calibrated = fit(trials, "one-thread-count")
    for phase in ("prefill_w", "decode_w"):
        assert calibrated.coefficients[phase]["fixed"] == pytest.approx(IDLE_W)
        assert calibrated.coefficients[phase]["cpu_threads"] == pytest.approx(W_PER_THREAD, rel=0.02)
    advice = advise(calibrated, Request(gen_tokens=32, prompt_tokens=64, threads=4, batch=1, model="tiny-q4_0"), True)
    assert advice.recommendation.values["avg_power_w"] == pytest.approx(IDLE_W + 4 * W_PER_THREAD, rel=0.02)


SPLIT_STEP = 0.5e-3  # a hybrid decode step pays a hand-over between devices


def hybrid_trial(i, gpu_layers, threads, quant, prompt, gen, batch) -> dict:
    """Layers split between devices: each device does its share of the work at its own rate."""
    share = gpu_layers / 22
    cpu_prefill, cpu_step = true_times("cpu", threads, quant, prompt, gen, batch)
    gpu_prefill, gpu_step = true_times("gpu", None, quant, prompt, gen, batch)
    overhead_p, overhead_s = PREFILL_OVERHEAD, STEP_OVERHEAD * (1 - share) + GPU_STEP * share
    prefill = (1 - share) * (cpu_prefill - PREFILL_OVERHEAD) + share * (gpu_prefill - PREFILL_OVERHEAD) + overhead_p
    step = ((1 - share) * (cpu_step - STEP_OVERHEAD) + share * (gpu_step - GPU_STEP) + overhead_s
            + (SPLIT_STEP if 0 < share < 1 else 0.0))
    trial = _trial(i, "cpu", threads, quant, prompt, gen, batch)
    power = IDLE_W + W_PER_THREAD * threads * (1 - share) + GPU_DYNAMIC_W * share
    decode = step * (gen - 1)
    trial.update(backend="hybrid" if 0 < share < 1 else "gpu" if share else "cpu", gpu_layers=gpu_layers,
                 threads=threads, config_id=f"h{gpu_layers}-{threads}-{quant}-{batch}-{prompt}-{gen}",
                 ttft_ms=prefill * 1e3, e2e_ms=(prefill + decode) * 1e3, prefill_energy_j=power * prefill,
                 decode_energy_j=power * decode, energy_j=power * (prefill + decode))
    return trial


def test_hybrid_offload_is_predicted_for_a_split_never_measured():
    """Measured at 0, 6, 16 and 22 of 22 layers on the GPU; predicted at 11."""
    trials = [hybrid_trial(i, layers, threads, quant, prompt, gen, batch)
              for i, (layers, threads, quant, prompt, gen, batch) in enumerate(
                  (layers, threads, quant, prompt, gen, batch)
                  for layers in (0, 6, 16, 22) for threads in (2, 4) for quant in ("Q4_0", "F16")
                  for prompt in (32, 256) for gen in (16, 64) for batch in (1, 4))]
    calibrated = fit(trials, "hybrid-host")
    assert calibrated.coefficients["decode_step_s"]["split_steps"] == pytest.approx(SPLIT_STEP, rel=0.02)
    measured = next(c for c in calibrated.config_objects() if c.backend == "hybrid" and c.threads == 4
                    and c.model.quant == "Q4_0" and c.batch_size == 1)
    half = Config.from_dict({**measured.as_dict(), "gpu_layers": 11})
    values, _ = predict(host_basis(calibrated, "calibrated here"), half, Workload(128, 64))
    expected = hybrid_trial(0, 11, 4, "Q4_0", 128, 64, 1)
    assert values["latency_s"] == pytest.approx(expected["e2e_ms"] / 1e3, rel=0.02)
    assert values["avg_power_w"] == pytest.approx(IDLE_W + W_PER_THREAD * 2 + GPU_DYNAMIC_W / 2, rel=0.02)


def test_edp_ranks_between_energy_and_latency(synthetic_fit):
    request = dict(gen_tokens=64, prompt_tokens=128, batch=1, model="tiny-q4_0", budget_w=70)
    by = {objective: advise(synthetic_fit, Request(**request, objective=objective), True)
          for objective in ("energy", "edp", "latency")}
    edp = by["edp"].recommendation
    ranked = sorted([by["edp"].recommendation, *by["edp"].alternatives], key=lambda p: p.values["edp_js"])
    assert edp is ranked[0] and edp.values["edp_js"] == pytest.approx(edp.values["energy_j"] * edp.values["latency_s"])
    assert by["latency"].recommendation.values["latency_s"] <= edp.values["latency_s"]
    assert by["energy"].recommendation.values["energy_j"] <= edp.values["energy_j"]


def test_an_unmeasured_quantization_widens_by_the_spread_of_the_measured_kernels():
    """Q4_0's kernel four times faster than Q4_1's: a third type may be anywhere between, ×/÷ 2."""
    from types import SimpleNamespace

    from energytui.advisor.predict import kernel_spread

    measured = SimpleNamespace(coefficients={"prefill_s": {"cpu_flops/thread@Q4_0": 1e-11,
                                                           "cpu_flops/thread@Q4_1": 4e-11, "fixed": 0.05}})
    assert kernel_spread(measured) == pytest.approx(math.log(2))
    one = SimpleNamespace(coefficients={"prefill_s": {"cpu_flops/thread@Q4_1": 4e-11}})
    assert kernel_spread(one) == pytest.approx(math.log(2) / 2)


# A recorded kernel probe stand-in (synthetic): each type's seconds per FLOP, flat over activation rows and
# perfectly parallel, so the generator below needs no interpolation. Q8_0's kernel is deliberately neither
# its bits' nor its family's speed: only the probe can know it.
PROBE_SPF = {"Q4_0": 1 / 80e9, "Q8_0": 1 / 35e9, "F16": 1 / 60e9}
KERNEL_SCALE_PREFILL, KERNEL_SCALE_DECODE = 1.3, 0.8  # how much slower (faster) the model runs than the probe


def recorded_probe() -> dict:
    return {q: {str(rows): {str(t): spf / t for t in (1, 2, 4)} for rows in (1, 2, 4, 8, 16, 64)}
            for q, spf in PROBE_SPF.items()}


def probed_trial(i: int, threads: int, quant: str, prompt: int, gen: int, batch: int) -> dict:
    """A CPU trial whose matrix and attention work take the probe's time × a scale, written out by hand."""
    row = shape_row(quant)
    tokens = prompt * batch
    attention = 4 * 22 * 32 * 64 * tokens * padded(tokens)  # one chunk: prompts here stay under n_batch 512
    prefill = KERNEL_SCALE_PREFILL * (2 * row["matmul_params"] * tokens * PROBE_SPF[quant]
                                      + attention * PROBE_SPF["F16"]) / threads + PREFILL_OVERHEAD
    cells = mean_kv_cells(prompt, gen, batch)
    step = (row["decode_bytes"] * (CPU_BW_SERIAL + CPU_BW_PER_THREAD / threads) + STEP_OVERHEAD
            + KERNEL_SCALE_DECODE * (2 * row["matmul_params"] * batch * PROBE_SPF[quant]
                                     + 4 * 22 * 32 * 64 * cells * batch * PROBE_SPF["F16"]) / threads)
    trial = _trial(i, "cpu", threads, quant, prompt, gen, batch)
    decode = step * (gen - 1)
    power = IDLE_W + W_PER_THREAD * threads
    return {**trial, "ttft_ms": prefill * 1e3, "e2e_ms": (prefill + decode) * 1e3, "prefill_energy_j": power * prefill,
            "decode_energy_j": power * decode, "energy_j": power * (prefill + decode)}


def test_a_quantization_never_run_is_predicted_from_the_hosts_kernel_probe():
    """Fit on Q4_0 and F16 with the probe; Q8_0, never run, comes within 2% (its family's speed would miss by
    far), and the calibrated scales are the ones the trials were generated with."""
    cases = [(t, p, g, b) for t in (1, 2, 4) for p in (32, 128) for g in (16, 64) for b in (1, 2)]
    seen = [probed_trial(i, *case[:1], q, *case[1:]) for i, (q, case) in
            enumerate(((q, c) for q in ("Q4_0", "F16") for c in cases), start=1)]
    calibration = fit(seen, "synthetic", kernels=recorded_probe())
    assert calibration.coefficients["prefill_s"]["cpu_kernel_s"] == pytest.approx(KERNEL_SCALE_PREFILL, rel=0.02)
    assert calibration.coefficients["decode_step_s"]["cpu_kernel_s"] == pytest.approx(KERNEL_SCALE_DECODE, rel=0.02)
    basis = host_basis(calibration, "calibrated here")
    for threads, prompt, gen, batch in cases:
        truth = probed_trial(0, threads, "Q8_0", prompt, gen, batch)
        config = Config(host_id="synthetic", build="gpu", backend="cpu", threads=threads, gpu_layers=0, n_batch=512,
                        batch_size=batch, model=ModelShape.from_row(truth))
        values, _ = predict(basis, config, Workload(prompt, gen))
        assert values["latency_s"] == pytest.approx(truth["e2e_ms"] / 1e3, rel=0.02)
    pool = candidates(calibration, Request(gen_tokens=64, prompt_tokens=128, quants=["Q8_0"]), [])
    q8 = [basis for config, basis in pool if config.model.quant == "Q8_0"]
    assert q8 and all("Q8_0 was never measured here (its kernel timed by this host's kernel probe)" in basis.why
                      for basis in q8)


def test_gpu_trials_left_out_of_the_calibration_are_said_not_silently_dropped():
    """GPU trials exist on the host (gpu_trials=True) but none reached the calibration (no energy)."""
    cpu_only = fit(synthetic_trials(backends=("cpu",)), "gpu-without-energy")
    notes = advise(cpu_only, Request(gen_tokens=32, prompt_tokens=64), gpu_trials=True).notes
    assert any("GPU trials have no usable timings or energy" in note for note in notes)
    assert not any("no GPU trials on this host" in note for note in notes)


def _truth(threads: int, quant: str, prompt: int, gen: int) -> tuple[float, float]:
    """(latency s, energy J) of one CPU request at batch 1, from the generator's physics."""
    prefill, step = true_times("cpu", threads, quant, prompt, gen, 1)
    latency = prefill + step * (gen - 1)
    return latency, latency * (IDLE_W + W_PER_THREAD * threads)


def _noisy(trials: list[dict], seed: int, noise: float = 0.03) -> list[dict]:
    """Each trial's timings and energies scaled by its own factor within ±noise, idle measured as in a run."""
    import random

    rng = random.Random(seed)
    for t in trials:
        factor = 1 + rng.uniform(-noise, noise)
        for key in ("ttft_ms", "e2e_ms", "prefill_energy_j", "decode_energy_j", "energy_j"):
            t[key] *= factor
        t["idle_power_w"] = IDLE_W
    return trials


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_what_the_trials_never_varied_is_predicted_as_a_range_that_holds_the_truth(seed):
    """One thread count and one weight size measured: how decode splits between serial and parallel work and
    between weight bytes and per-step overhead is unknowable from them. A request at 8 threads, or at F16, is
    predicted across every calibration that fits the trials equally well, says so, and its interval holds the
    physics' answer whatever the noise (no solver's arbitrary split decides it)."""
    calibrated = fit(_noisy(synthetic_trials(backends=("cpu",), threads=(2,), quants=("Q4_0",)), seed), "one-split")
    for threads, quants, quant in ((8, [], "Q4_0"), (2, ["F16"], "F16"), (4, ["F16"], "F16")):
        advice = advise(calibrated, Request(gen_tokens=64, prompt_tokens=128, threads=threads, batch=1,
                                            quants=quants), gpu_trials=False)
        [p] = [p for p in [advice.recommendation, *advice.alternatives] if p.config["model"]["quant"] == quant]
        latency, energy = _truth(threads, quant, 128, 64)
        assert p.intervals["latency_s"][0] <= latency <= p.intervals["latency_s"][1], (threads, quant)
        assert p.intervals["energy_j"][0] <= energy <= p.intervals["energy_j"][1], (threads, quant)
        assert any("calibrations that fit them equally well differ here" in w for w in p.extrapolation)
    at_f16 = advise(calibrated, Request(gen_tokens=64, prompt_tokens=128, threads=2, batch=1, quants=["F16"]), False)
    f16, q4 = sorted([at_f16.recommendation, *at_f16.alternatives], key=lambda p: -p.values["energy_j"])[:2]
    assert f16.config["model"]["quant"] == "F16" and q4.config["model"]["quant"] == "Q4_0"  # more bytes cost more
    measured = advise(calibrated, Request(gen_tokens=64, prompt_tokens=128, threads=2, batch=1), False).recommendation
    assert measured.basis == "measured here" and not measured.extrapolation  # nothing ambiguous where it ran


def test_one_prompt_length_extrapolates_with_a_range_that_holds_the_truth():
    calibrated = fit(_noisy(synthetic_trials(backends=("cpu",), prompts=(128,), quants=("Q4_0",)), 0), "one-prompt")
    advice = advise(calibrated, Request(gen_tokens=64, prompt_tokens=1024, threads=4, batch=1), gpu_trials=False)
    latency, energy = _truth(4, "Q4_0", 1024, 64)
    p = advice.recommendation
    assert p.intervals["latency_s"][0] <= latency <= p.intervals["latency_s"][1]
    assert p.intervals["energy_j"][0] <= energy <= p.intervals["energy_j"][1]
    assert "1024 prompt tokens is outside the 128 measured" in p.extrapolation


def test_measured_here_means_these_lengths_ran_not_lengths_between_them(synthetic_fit):
    """The configuration ran at prompts 32, 128 and 384: 256 lies between them and is calibrated, not measured."""
    request = dict(gen_tokens=64, threads=2, batch=1, model="tiny-q4_0")
    ran = advise(synthetic_fit, Request(prompt_tokens=128, **request), False).recommendation
    between = advise(synthetic_fit, Request(prompt_tokens=256, **request), False).recommendation
    assert ran.label == between.label and ran.basis == "measured here"
    assert between.basis == "calibrated here"
    assert between.extrapolation == ["this configuration ran at other lengths (prompt+generated: 32+16, 32+64, "
                                     "128+16, 128+64, 384+16, 384+64)"]


def test_a_residual_model_never_makes_a_longer_request_cheaper():
    """Prefill here gets cheaper per token at long prompts than the physics says (× (P/128)^-0.35), so a
    residual model is kept; its trees never fall with a length, so neither does any prediction."""
    trials = []
    for threads in (1, 2, 4):
        for batch in (1, 2):
            for prompt in (16, 32, 64, 128, 256, 512, 1024):
                for gen in (16, 64):
                    t = _trial(len(trials) + 1, "cpu", threads, "Q4_0", prompt, gen, batch)
                    prefill_ms = t["ttft_ms"] * (prompt / 128) ** -0.35
                    power = IDLE_W + W_PER_THREAD * threads
                    t.update(ttft_ms=prefill_ms, e2e_ms=prefill_ms + t["e2e_ms"] - t["ttft_ms"],
                             prefill_energy_j=power * prefill_ms / 1e3, idle_power_w=IDLE_W,
                             config_id=f"cpu-{threads}-{batch}")
                    t["energy_j"] = t["prefill_energy_j"] + t["decode_energy_j"]
                    trials.append(t)
    calibrated = fit(trials, "residual")
    assert "prefill_s" in calibrated.residuals
    for config, basis in candidates(calibrated, Request(gen_tokens=64), []):
        for field, lengths in (("prompt_tokens", range(8, 1400, 3)), ("gen_tokens", range(1, 400, 3))):
            request = {"prompt_tokens": 128, "gen_tokens": 64}
            previous = None
            for n in lengths:
                values, _ = predict(basis, config, Workload(**{**request, field: n}), with_intervals=False)
                if previous:
                    assert values["latency_s"] >= previous["latency_s"] * (1 - 1e-12), (config.label(), field, n)
                    assert values["energy_j"] >= previous["energy_j"] * (1 - 1e-12), (config.label(), field, n)
                previous = values
