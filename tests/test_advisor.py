"""The advisor: unit parsing, recommendation on constructed data with a known answer, and fitting
on real trials of the default model through the CLI."""

import json
import subprocess
import sys

import pytest

from energytui.advisor.fit import NotEnoughData, fit
from energytui.advisor.recommend import advise, parse_duration, parse_power
from energytui.engine.errors import UserError

from helpers import run_cli


@pytest.mark.parametrize("text, watts", [("50W", 50), ("50", 50), ("0.05kW", 50), ("500mW", 0.5), (" 12.5 w ", 12.5)])
def test_power_budgets(text, watts):
    assert parse_power(text) == pytest.approx(watts)


@pytest.mark.parametrize("text, seconds", [("5s", 5), ("500ms", 0.5), ("5", 5), ("2min", 120)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["fifty", "50 horsepower", "-5W", "0", "", "5 W W"])
def test_bad_budgets_are_clear_errors(bad):
    with pytest.raises(UserError, match="--budget .*give a positive power like 50W"):
        parse_power(bad)


def test_bad_durations_are_clear_errors():
    with pytest.raises(UserError, match="--latency '5 parsecs': give a positive duration"):
        parse_duration("5 parsecs")


# --- constructed data: a slow frugal CPU and a fast power-hungry GPU --------------------------

def _trial(i, backend, threads, layers, prompt, batch, gen, prefill_ms_per_token, step_ms, prefill_w, decode_w):
    ttft = prefill_ms_per_token * prompt * batch
    decode_ms = step_ms * (1 + 0.1 * batch) * (gen - 1)
    return {
        "id": i, "status": "done", "finished_at": "t", "config_id": f"{backend}{threads}-{prompt}-{batch}-{gen}",
        "model": "m", "model_path": "/m.gguf", "quant": "Q4_0", "bits_per_weight": 4.5, "n_params": 10**9,
        "n_layers": 22, "backend": backend, "threads": threads, "gpu_layers": layers, "batch_size": batch,
        "prompt_tokens": prompt, "gen_tokens": gen * batch, "ttft_ms": ttft, "e2e_ms": ttft + decode_ms,
        "prefill_energy_j": prefill_w * ttft / 1e3, "decode_energy_j": decode_w * decode_ms / 1e3,
        "energy_j": (prefill_w * ttft + decode_w * decode_ms) / 1e3, "energy_tag": "counter",
    }


@pytest.fixture(scope="module")
def cpu_gpu_fit():
    trials, i = [], 0
    shapes = [("cpu", 4, 0, 2.0, 40.0, 30.0, 25.0), ("cpu", 8, 0, 1.2, 30.0, 45.0, 40.0),
              ("gpu", 4, 22, 0.1, 4.0, 120.0, 90.0)]
    for backend, threads, layers, prefill, step, pw, dw in shapes:
        for prompt in (32, 128, 512):
            for batch in (1, 4):
                for gen in (32, 128):
                    for rep in range(2):
                        i += 1
                        trials.append(_trial(i, backend, threads, layers, prompt, batch, gen, prefill * (1 + rep * 0.02),
                                             step, pw, dw))
    return fit(trials, "host")


def test_a_budget_that_excludes_the_gpu_picks_the_cpu(cpu_gpu_fit):
    advice = advise(cpu_gpu_fit, 100, 128, budget_w=60, latency_s=None, objective="energy", batch=1, model=None,
                    gpu_trials=True)
    assert advice.recommendation.config["backend"] == "cpu"
    assert any(p.config["backend"] == "gpu" and p.rejected[0].startswith("over budget") for p in advice.rejected)


def test_a_generous_budget_picks_the_gpu_for_energy(cpu_gpu_fit):
    advice = advise(cpu_gpu_fit, 100, 128, budget_w=500, latency_s=None, objective="energy", batch=1, model=None,
                    gpu_trials=True)
    best = advice.recommendation
    assert best.config["backend"] == "gpu" and best.values["avg_power_w"] > 60
    assert best.intervals["energy_j"][0] <= best.values["energy_j"] <= best.intervals["energy_j"][1]
    assert [p.config["backend"] for p in advice.alternatives] == ["cpu", "cpu"]


def test_a_latency_limit_rejects_the_slow_cpu(cpu_gpu_fit):
    advice = advise(cpu_gpu_fit, 100, 128, budget_w=500, latency_s=2.0, objective="energy", batch=1, model=None,
                    gpu_trials=True)
    assert advice.recommendation.config["backend"] == "gpu"
    assert all("over the latency limit" in p.rejected[0] for p in advice.rejected)


def test_nothing_feasible_names_the_closest_and_what_it_needs(cpu_gpu_fit):
    advice = advise(cpu_gpu_fit, 100, 128, budget_w=5, latency_s=None, objective="energy", batch=1, model=None,
                    gpu_trials=True)
    assert advice.recommendation is None and advice.closest.config["backend"] == "cpu"
    assert advice.needs.startswith("a budget of at least")


def test_outside_the_measured_range_is_flagged(cpu_gpu_fit):
    advice = advise(cpu_gpu_fit, 2000, 128, budget_w=500, latency_s=None, objective="latency", batch=None,
                    model=None, gpu_trials=True)
    assert all("2000 generated tokens is outside the measured 32–128" in p.extrapolation[0]
               for p in [advice.recommendation, *advice.alternatives])
    assert any("outside the measured ranges" in note for note in advice.notes)


def test_held_out_errors_are_stored_per_target(cpu_gpu_fit):
    assert set(cpu_gpu_fit.held_out_mape) >= {"prefill_ms", "decode_ms_per_step", "prefill_power_w",
                                              "decode_power_w", "latency_s", "energy_j"}
    assert set(cpu_gpu_fit.families.values()) <= {"log-linear", "boosting", "forest"}
    assert cpu_gpu_fit.held_out_mape["prefill_ms"] < 0.5


def test_too_little_data_names_the_manifest_to_run():
    with pytest.raises(NotEnoughData, match="advisor-sweep.yaml"):
        fit([_trial(1, "cpu", 4, 0, 32, 1, 32, 1, 10, 10, 10)], "host")


# --- real trials of the default model ---------------------------------------------------------

def test_advise_on_real_trials(measured_db, capsys):
    code, out, err = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10", "--prompt-tokens", "32",
                             "--budget", "50W")
    assert code == 0, err
    assert "Recommended:" in out and "CPU" in out and "ESTIMATED" in out
    assert "no GPU trials on this host" in out and "held-out error" in out


def test_advise_json_has_the_same_content(measured_db, capsys):
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10", "--budget", "0.05kW",
                           "--latency", "5s", "--json")
    data = json.loads(out)
    assert code == 0 and set(data) == {"request", "recommendation", "alternatives", "rejected", "closest", "needs",
                                       "notes", "model"}
    best = data["recommendation"]
    assert set(best["values"]) == {"latency_s", "energy_j", "j_per_token", "avg_power_w", "edp_js"}
    assert best["config"]["backend"] == "cpu" and data["request"]["budget_w"] == 50.0
    assert data["model"]["energy_tags"] == ["estimated"]


def test_a_budget_below_any_measured_power_exits_4_with_the_closest(measured_db, capsys):
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10", "--budget", "0.5W")
    assert code == 4 and "No configuration meets" in out and "it would need a budget of at least" in out


def test_fit_is_cached_until_the_data_changes_and_prediction_needs_no_sklearn(measured_db, capsys):
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--explain")
    assert code == 0 and "Held-out mean absolute % error" in out and "log-linear" in out
    assert "cached fit" in out or "refitted" in out
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--explain")
    assert "cached fit (data unchanged)" in out
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--fit")
    assert code == 0 and out.startswith("refitted")
    script = ("import sys; from energytui.main import main; "
              f"code = main(['advise', '--db', {str(measured_db)!r}, '--tokens', '8', '--budget', '50']); "
              "assert 'sklearn' not in sys.modules, 'cached advice imported scikit-learn'; sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("args, message", [
    (("--budget", "50W"), "give --tokens N"),
    (("--tokens", "10", "--budget", "lots"), "--budget 'lots'"),
    (("--tokens", "10", "--latency", "soon"), "--latency 'soon'"),
    (("--tokens", "10", "--model", "gpt-9"), "--model 'gpt-9': no trials of that model"),
    (("--tokens", "10", "--host", "nope"), "--host nope: unknown host id"),
])
def test_bad_advise_input(measured_db, capsys, args, message):
    code, _, err = run_cli(capsys, "advise", "--db", measured_db, *args)
    assert code in (1, 2) and message in err and err.count("\n") == 1


def test_advise_without_trials_says_what_to_run(tmp_path, capsys):
    from energytui.engine.store import Store

    Store(tmp_path / "empty.db").close()
    code, _, err = run_cli(capsys, "advise", "--db", tmp_path / "empty.db", "--tokens", "10")
    assert code == 1 and "advisor-sweep.yaml" in err


def test_no_budget_is_null_in_strict_json_and_said_in_words(measured_db, capsys):
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10", "--json")
    data = json.loads(out, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert code == 0 and data["request"]["budget_w"] is None
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10")
    assert code == 0 and "no power budget" in out.splitlines()[0]
