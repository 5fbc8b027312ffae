"""The advisor's static power check: a recommendation made on ESTIMATED energy says whether it holds across
the plausible static share of the CPU estimate, and where it changes. The crossover search on lines with known
answers, the check on synthetic trials whose physics is written out by hand, and on real trials of the default
model with 1 and 2 threads through the CLI."""

from __future__ import annotations

import json
import sqlite3

import pytest

from energytui.advisor.fit import fit
from energytui.advisor.recommend import Request, advise, render
from energytui.advisor.sensitivity import Segment, ShareLine, sentence, short_names, winner_segments
from energytui.engine.telemetry.cpu_estimate import CpuPowerModel, describe_method, parse_method

from helpers import run_cli, run_sweep
from test_advisor_physics import synthetic_trials, true_times


def line(label: str, at_zero: float, slope: float, power: float = 0.0, power_slope: float = 0.0) -> ShareLine:
    return ShareLine(label, at_zero, slope, power, power_slope)


def winners(segments: list[Segment]) -> list[tuple[float, float, str | None]]:
    return [(round(s.low, 4), round(s.high, 4), s.winner) for s in segments]


# --- the crossover search ------------------------------------------------------------------------

def test_two_lines_cross_once():
    slow_but_frugal, fast = line("1 thread", 7.0, 10.0), line("2 threads", 10.0, 0.0)
    assert winners(winner_segments([fast, slow_but_frugal], 0.1, 0.5)) == [(0.1, 0.3, "1 thread"),
                                                                          (0.3, 0.5, "2 threads")]


def test_lines_that_never_cross_in_the_range_give_one_winner():
    assert winners(winner_segments([line("a", 5, 1), line("b", 6, 1)], 0.1, 0.5)) == [(0.1, 0.5, "a")]  # parallel
    assert winners(winner_segments([line("a", 5, 1), line("c", 9, -10)], 0.1, 0.3)) == [(0.1, 0.3, "a")]  # at 4/11


def test_three_winners_along_the_lower_envelope():
    lines = [line("A", 10, 0), line("B", 6, 20), line("C", 8, 5)]  # B/C cross at 2/15, C/A at 0.4, A/B at 0.2
    assert winners(winner_segments(lines, 0.1, 0.5)) == [(0.1, 0.1333, "B"), (0.1333, 0.4, "C"), (0.4, 0.5, "A")]


def test_the_budget_takes_a_line_out_where_its_power_exceeds_it():
    cheap = line("cheap", 5, 0, power=5, power_slope=20)  # 5 + 20 s W: over 12 W above a share of 0.35
    dear = line("dear", 8, 0, power=4, power_slope=0)
    assert winners(winner_segments([cheap, dear], 0.1, 0.5, budget_w=12)) == [(0.1, 0.35, "cheap"),
                                                                             (0.35, 0.5, "dear")]
    assert winners(winner_segments([cheap], 0.1, 0.5, budget_w=12)) == [(0.1, 0.35, "cheap"), (0.35, 0.5, None)]


def test_a_crossing_at_the_edge_of_the_range_changes_nothing():
    assert winners(winner_segments([line("a", 1, 10), line("b", 3, 0)], 0.2, 0.5)) == [(0.2, 0.5, "b")]


# --- the answer in words -------------------------------------------------------------------------

CPU1 = "CPU · tiny (Q4_0, 4.50 bits/weight) · 1 thread · batch 1"
CPU2 = "CPU · tiny (Q4_0, 4.50 bits/weight) · 2 threads · batch 1"
CPU4 = "CPU · tiny (Q4_0, 4.50 bits/weight) · 4 threads · batch 1"


def test_short_names_keep_what_differs():
    assert short_names([CPU1, CPU2, CPU1]) == {CPU1: "1 thread", CPU2: "2 threads"}
    assert short_names([CPU1]) == {CPU1: CPU1}


@pytest.mark.parametrize("segments, recommended, said", [
    ([Segment(0.1, 0.5, CPU2)], CPU2, "holds for any static share in 10–50 % of TDP (the estimate assumed 25 %; "
                                      "plausible range 10–50 % of TDP, config/cpu_tdp.yaml)"),
    ([Segment(0.1, 0.5, CPU2)], CPU1, "does not hold: 2 threads wins for any static share in 10–50 % of TDP"),
    ([Segment(0.1, 0.3, CPU1), Segment(0.3, 0.5, CPU2)], CPU1,
     "2 threads wins if static power ≥ 30 % of TDP, else 1 thread"),
    ([Segment(0.1, 0.2, CPU1), Segment(0.2, 0.4, CPU2), Segment(0.4, 0.5, CPU4)], CPU2,
     "1 thread below 20 %, 2 threads from 20 to 40 %, 4 threads above 40 % of TDP"),
    ([Segment(0.1, 0.35, CPU1), Segment(0.35, 0.5, None)], CPU1,
     "1 thread wins below 35 % of TDP; above it nothing fits the budget"),
    ([Segment(0.1, 0.35, None), Segment(0.35, 0.5, CPU4)], CPU4,
     "4 threads wins if static power ≥ 35 % of TDP; below it nothing fits the budget"),
])
def test_the_sentence_states_the_answer_or_the_crossover(segments, recommended, said):
    assert said in sentence(segments, recommended, 0.1, 0.5, 0.25, [CPU1, CPU2, CPU4])


# --- synthetic trials whose energy came from the estimate, with its physics written out ---------------

VISIBLE, WATTS_PER_THREAD, ASSUMED = 8, 10.0, 0.25  # an 80 W, 8-thread part; the estimate assumed 25 % static
ESTIMATE = CpuPowerModel(VISIBLE * WATTS_PER_THREAD, VISIBLE, "test part", ASSUMED, "test class", "a test")


def estimated_power(threads: int, share: float) -> float:
    """The estimate's watts with `threads` of the 8 CPUs busy: static + busy threads × dynamic per thread."""
    return share * WATTS_PER_THREAD * VISIBLE + threads * (1 - share) * WATTS_PER_THREAD


@pytest.fixture(scope="module")
def estimated_fit():
    trials = synthetic_trials(backends=("cpu",), quants=("Q4_0",), threads=(1, 2, 4))
    for t in trials:
        power = estimated_power(t["threads"], ASSUMED)
        decode_s = (t["e2e_ms"] - t["ttft_ms"]) / 1e3
        t.update(prefill_energy_j=power * t["ttft_ms"] / 1e3, decode_energy_j=power * decode_s,
                 energy_j=power * t["e2e_ms"] / 1e3, idle_power_w=estimated_power(0, ASSUMED),
                 energy_tag="estimated", energy_method=f"cpu: {describe_method(ESTIMATE, VISIBLE)}")
    return fit(trials, "estimated-host")


def true_energy(threads: int, share: float, prompt: int, gen: int) -> float:
    prefill, step = true_times("cpu", threads, "Q4_0", prompt, gen, 1)
    return estimated_power(threads, share) * (prefill + step * (gen - 1))


def test_the_fit_reads_the_estimate_back_from_the_trials(estimated_fit):
    assert estimated_fit.cpu_estimate == {"static_share": ASSUMED, "shares": [ASSUMED], "watts_per_thread": 10.0,
                                          "visible_cpus": VISIBLE, "trials": 54, "estimated_trials": 54}


def test_the_crossover_found_is_the_one_the_physics_gives(estimated_fit):
    prompt, gen = 64, 64
    advice = advise(estimated_fit, Request(gen_tokens=gen, prompt_tokens=prompt, batch=1), gpu_trials=False)
    check = advice.static_power
    assert check["applies"] and check["range"] == [0.10, 0.50] and check["assumed_share"] == ASSUMED
    # the true winner at every share, from the generator's physics (never from the advisor)
    grid = [0.10 + i * 0.0005 for i in range(801)]
    truth = [min((1, 2, 4), key=lambda n: true_energy(n, s, prompt, gen)) for s in grid]
    changes = [grid[i] for i in range(1, len(grid)) if truth[i] != truth[i - 1]]
    assert changes, "the physics should change the winner inside the range"
    found = [s["from"] for s in check["segments"][1:]]
    assert found == pytest.approx(changes, abs=0.01)  # within a point of TDP
    labels = [s["winner"] for s in check["segments"]]
    order = sorted(set(truth), key=truth.index)
    assert len(labels) == len(order) and all(f" · {n} thread" in label for n, label in zip(order, labels))
    best = advice.recommendation.label
    at_assumed = next(s["winner"] for s in check["segments"] if s["from"] <= ASSUMED <= s["to"])
    assert at_assumed == best  # at the estimate's own share the check agrees with the recommendation
    words = render(advice)
    assert f"Static power of the CPU estimate: {check['sentence']}." in words
    assert "wins if static power ≥" in check["sentence"] and "thread" in check["sentence"]


def test_energy_under_another_share_is_recomputed_exactly_from_latency_and_busy_threads(estimated_fit):
    """At the assumed share the check must reproduce the advisor's energy; at another share it moves by
    Δ × W/thread × (visible − busy) × latency, which the generator's physics confirms."""
    from energytui.advisor.recommend import candidates
    from energytui.advisor.sensitivity import share_line
    from energytui.advisor.features import Workload

    request = Request(gen_tokens=32, prompt_tokens=64, batch=1)
    workload = Workload(64, 32)
    advice = advise(estimated_fit, request, gpu_trials=False)
    shown = {p.label: p for p in [advice.recommendation, *advice.alternatives]}
    for config, basis in candidates(estimated_fit, request, []):
        prediction = shown.get(config.label())
        if prediction is None:
            continue
        drawn = share_line(config.label(), prediction.values, config, basis, workload, "energy_j",
                           estimated_fit.cpu_estimate)
        assert drawn.value(ASSUMED) == pytest.approx(prediction.values["energy_j"])
        for share in (0.1, 0.5):
            assert drawn.value(share) == pytest.approx(true_energy(config.threads, share, 64, 32), rel=0.03)


def test_measured_energy_needs_no_check(estimated_fit):
    measured = fit(synthetic_trials(backends=("cpu",), quants=("Q4_0",)), "measured-host")
    advice = advise(measured, Request(gen_tokens=32, prompt_tokens=64, batch=1), gpu_trials=False)
    assert advice.static_power is None and "Static power" not in render(advice)
    spec = advise(estimated_fit, Request(gen_tokens=32, prompt_tokens=64, hardware="rtx-3060-12gb"), False)
    assert spec.static_power is None  # a spec prior's power is the device's own, not the estimate's


def test_trials_estimated_with_different_shares_are_blended_and_said_so():
    trials = synthetic_trials(backends=("cpu",), quants=("Q4_0",), threads=(1, 2, 4))
    for i, t in enumerate(trials):
        share = (0.0, 0.25)[i % 2]
        model = CpuPowerModel(VISIBLE * WATTS_PER_THREAD, VISIBLE, "test part", share, "test class", "a test")
        t.update(energy_tag="estimated", energy_method=describe_method(model, VISIBLE))
    blended = fit(trials, "blended-host")
    assert blended.cpu_estimate["shares"] == [0.0, 0.25] and blended.cpu_estimate["static_share"] == 0.125
    advice = advise(blended, Request(gen_tokens=32, prompt_tokens=64, batch=1), False)
    assert any("assumed different static shares (0%, 25%)" in note and "their mean, 12%" in note
               for note in advice.notes)


def test_estimated_energy_without_the_estimates_numbers_says_it_cannot_be_checked():
    trials = synthetic_trials(backends=("cpu",), quants=("Q4_0",))
    for t in trials:
        t.update(energy_tag="estimated", energy_method="estimated: as recorded on another machine")
    advice = advise(fit(trials, "imported-host"), Request(gen_tokens=32, prompt_tokens=64, batch=1), False)
    assert advice.static_power == {"applies": False, "sentence": advice.static_power["sentence"]}
    assert "cannot be checked against the estimate's static power" in render(advice)


# --- real trials of the default model, 1 and 2 threads, through the CLI --------------------------------

THREADS_SWEEP = """defaults:
  model: {model}
  n_ctx: 256
  ignore_eos: true
  repetitions: 2
runs:
  - id: threads
    prompt_tokens: [16, 48]
    max_tokens: 16
    threads: [1, 2]
    batch_size: [1, 2]
"""


@pytest.fixture(scope="module")
def threads_db(tmp_path_factory, model_path):
    folder = tmp_path_factory.mktemp("static-power")
    empty = folder / "no-powercap"
    empty.mkdir()
    with pytest.MonkeyPatch.context() as patch:  # the estimate, on any host
        patch.setenv("ENERGYTUI_POWERCAP_ROOT", str(empty))
        return run_sweep(folder, THREADS_SWEEP.format(model=model_path))


def test_advise_on_real_estimated_trials_says_whether_it_holds(threads_db, capsys):
    code, out, err = run_cli(capsys, "advise", "--db", threads_db, "--tokens", "64", "--prompt-tokens", "32",
                             "--batch", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    check = data["static_power"]
    with sqlite3.connect(threads_db) as conn:
        method = conn.execute("SELECT energy_method FROM trials LIMIT 1").fetchone()[0]
    estimate = parse_method(method)
    assert check["applies"] and check["assumed_share"] == pytest.approx(estimate.static_share)
    assert check["range"] == [0.1, 0.5] and "Barroso" in check["range_source"]
    segments = check["segments"]
    assert segments[0]["from"] == 0.1 and segments[-1]["to"] == 0.5
    assert all(a["to"] == b["from"] for a, b in zip(segments, segments[1:]))
    # 1 against 2 threads at batch 1: 2 threads keep both CPUs busy, so their energy does not move with the
    # share; 1 thread's grows by W/thread × (2 − 1) × its latency per unit share. The crossover by hand:
    by_threads = {p["config"]["threads"]: p for p in [data["recommendation"], *data["alternatives"]]}
    one, two = by_threads[1]["values"], by_threads[2]["values"]
    crossing = estimate.static_share + (two["energy_j"] - one["energy_j"]) / (estimate.watts_per_thread
                                                                            * one["latency_s"])
    if 0.1 < crossing < 0.5:
        assert [s["winner"] for s in segments] == [by_threads[1]["label"], by_threads[2]["label"]]
        assert segments[1]["from"] == pytest.approx(crossing)
        assert f"2 threads wins if static power ≥ {crossing * 100:.0f} % of TDP, else 1 thread" in check["sentence"]
    else:
        cheaper = 1 if crossing >= 0.5 else 2
        assert [s["winner"] for s in segments] == [by_threads[cheaper]["label"]]
    code, out, _ = run_cli(capsys, "advise", "--db", threads_db, "--tokens", "64", "--prompt-tokens", "32",
                           "--batch", "1")
    assert f"Static power of the CPU estimate: {check['sentence']}." in out
    code, out, _ = run_cli(capsys, "advise", "--db", threads_db, "--explain")
    assert f"static share {estimate.static_share:.0%} of TDP, {estimate.watts_per_thread:.3g} W per hardware " \
           "thread at TDP" in out
