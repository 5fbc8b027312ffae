"""The advisor: unit parsing, recommendation on constructed data with a known answer, and fitting
on real trials of the default model through the CLI."""

import json
import subprocess
import sys

import pytest

from energytui.advisor.recommend import parse_duration, parse_power
from energytui.engine.errors import UserError

from helpers import run_cli


@pytest.mark.parametrize("text, watts", [("50W", 50), ("50", 50), ("0.05kW", 50), ("500mW", 0.5), (" 12.5 w ", 12.5),
                                         ("500mw", 0.5), ("0.05KW", 50)])
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


@pytest.mark.parametrize("bad", ["1e9W", "200kW", "1MW", "1Mw"])  # a capital M is mega, never milli
def test_budgets_beyond_any_machine_are_refused_by_the_same_grammar(bad):
    with pytest.raises(UserError, match="at most 100kW"):
        parse_power(bad)


# --- real trials of the default model ---------------------------------------------------------

def test_advise_on_real_trials(measured_db, capsys):
    code, out, err = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10", "--prompt-tokens", "32",
                             "--budget", "50W")
    assert code == 0, err
    assert "Recommended:" in out and "CPU" in out and "ESTIMATED" in out
    assert "no GPU trials on this host" in out and "held-out error" in out
    assert "Static power of the CPU estimate: " in out and "of TDP (the estimate assumed " in out


def test_advise_json_has_the_same_content(measured_db, capsys):
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10", "--budget", "0.05kW",
                           "--latency", "5s", "--json")
    data = json.loads(out)
    assert code == 0 and set(data) == {"request", "recommendation", "alternatives", "rejected", "closest", "needs",
                                       "changes", "notes", "model", "static_power"}
    best = data["recommendation"]
    assert set(best["values"]) == {"latency_s", "energy_j", "j_per_token", "avg_power_w", "edp_js"}
    assert best["config"]["backend"] == "cpu" and data["request"]["budget_w"] == 50.0
    assert best["basis"] in ("measured here", "calibrated here")
    assert set(best["config"]) >= {"host_id", "build", "backend", "threads", "gpu_layers", "n_batch", "batch_size",
                                   "model"}
    assert best["config"]["build"] == "cpu" and best["config"]["model"]["quant"] == "Q4_1"
    assert all(low > 0 for low, _high in best["intervals"].values())
    assert data["model"]["kind"] == "physical" and isinstance(data["changes"], list)
    assert data["model"]["energy_tags"] == ["estimated"]
    check = data["static_power"]  # estimated energy: does the answer hold across the estimate's static power?
    assert check["applies"] and check["range"] == [0.1, 0.5] and check["sentence"]
    assert {"Q4_1", "Q8_0", "F16"} <= set(data["model"]["kernel_probe"])  # timed once for this host, stored


def test_a_budget_below_any_measured_power_exits_4_with_the_closest(measured_db, capsys):
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10", "--budget", "0.5W")
    assert code == 4 and "No configuration meets" in out and "it would need a budget of at least" in out


def test_fit_is_cached_until_the_data_changes_and_prediction_needs_no_sklearn(measured_db, capsys):
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--explain")
    assert code == 0 and "Held-out mean absolute % error" in out and "physical" in out
    assert "Calibrated constants:" in out and "  at 2 threads: " in out and "  decode_step_s: " in out
    assert "kernel probe (llama.cpp's CPU matrix kernels timed on this host" in out and "Q4_1 " in out
    assert "cached fit" in out or "refitted" in out
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--explain")
    assert "cached fit (data unchanged)" in out
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--fit")
    assert code == 0 and out.startswith("refitted")
    script = ("import sys; from energytui.main import main; "
              f"code = main(['advise', '--db', {str(measured_db)!r}, '--tokens', '8', '--budget', '50']); "
              "assert 'sklearn' not in sys.modules, 'cached advice imported scikit-learn'; "
              "assert 'numpy' not in sys.modules, 'cached advice imported numpy'; sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("args, message", [
    (("--budget", "50W"), "give --tokens N"),
    (("--tokens", "10", "--budget", "lots"), "--budget 'lots'"),
    (("--tokens", "10", "--latency", "soon"), "--latency 'soon'"),
    (("--tokens", "10", "--model", "gpt-9"), "--model 'gpt-9': not measured on this host"),
    (("--tokens", "10", "--host", "nope"), "--host nope: unknown host;"),
    (("--tokens", "0"), "--tokens 0: give a whole number ≥ 1"),
    (("--tokens", "10", "--batch", "0"), "--batch 0: give a whole number ≥ 1"),
    (("--tokens", "10", "--batch", "-3"), "--batch -3: give a whole number ≥ 1"),
    (("--tokens", "10", "--threads", "0"), "--threads 0: give a whole number ≥ 1"),
    (("--tokens", "10", "--prompt-tokens", "1000000"),
     "1000000 + 10 tokens exceeds SmolLM2-135M-Instruct.Q4_1's trained context of 8192"),
    (("--tokens", "10", "--hardware", "rtx-3060"), "--hardware 'rtx-3060': not in config/hardware.yaml; did you mean "
                                                   "rtx-3060-12gb?"),
    (("--tokens", "10", "--hardware", "rtx-9999"), "`energytui advise --hardware list` shows the devices"),
    (("--tokens", "10", "--quant", "Q9_9"), "--quant 'Q9_9': choose from"),
])
def test_bad_advise_input(measured_db, capsys, args, message):
    code, _, err = run_cli(capsys, "advise", "--db", measured_db, *args)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_an_unreadable_gguf_for_a_what_if_is_one_line(measured_db, capsys, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00")
    code, _, err = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10", "--model", str(bad))
    assert code == 2 and f"error: --model: {bad}: GGUF header is truncated" in err and err.count("\n") == 1


def test_too_little_data_exits_1_naming_the_calibration(tmp_path, capsys, measured_db):
    import shutil
    import sqlite3

    few = tmp_path / "few.db"
    shutil.copyfile(measured_db, few)
    with sqlite3.connect(few) as conn:
        conn.execute("DELETE FROM trials WHERE id > 5")
    code, _, err = run_cli(capsys, "advise", "--db", few, "--tokens", "10")
    assert code == 1 and "config/manifests/calibrate.yaml" in err and err.count("\n") == 1


def test_advise_without_trials_says_what_to_run(tmp_path, capsys):
    from energytui.engine.store import Store

    Store(tmp_path / "empty.db").close()
    code, _, err = run_cli(capsys, "advise", "--db", tmp_path / "empty.db", "--tokens", "10")
    assert code == 1 and "calibrate.yaml" in err


def test_no_budget_is_null_in_strict_json_and_said_in_words(measured_db, capsys):
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10", "--json")
    data = json.loads(out, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert code == 0 and data["request"]["budget_w"] is None
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "10")
    assert code == 0 and "no power budget" in out.splitlines()[0]


def test_what_if_answers_on_real_trials(measured_db, capsys, tmp_path, model_path):
    """A quantization, a GGUF and a GPU never measured here: each answered and labelled as such."""
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "16", "--batch", "1",
                           "--quant", "Q8_0,F16", "--json")
    data = json.loads(out)
    quants = {p["config"]["model"]["quant"]: p for p in [data["recommendation"], *data["alternatives"],
                                                          *data["rejected"]] if p}
    assert code == 0 and {"Q4_1", "Q8_0", "F16"} <= set(quants)
    assert quants["F16"]["basis"] == "calibrated here"
    assert any("F16 was never measured here" in why for why in quants["F16"]["extrapolation"])
    assert quants["F16"]["config"]["model"]["decode_bytes"] > 2.5 * quants["Q4_1"]["config"]["model"]["decode_bytes"]

    other = tmp_path / "other-model.gguf"
    other.symlink_to(model_path)
    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "16", "--model", other)
    assert code == 0 and "other-model (Q4_1" in out and "[calibrated here]" in out
    assert "other-model was never run here" in out

    code, out, _ = run_cli(capsys, "advise", "--db", measured_db, "--tokens", "128", "--hardware", "rtx-3060-12gb")
    assert code == 0 and "GPU [rtx-3060-12gb]" in out and "[spec prior only]" in out
    assert "spec prior only (config/hardware.yaml" in out and "ESTIMATED" not in out.split("Model:")[0]


def test_the_spec_table_lists_every_device_with_its_figures(capsys):
    code, out, _ = run_cli(capsys, "advise", "--hardware", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["name", "kind", "GB/s"]
    rtx = next(line for line in lines if line.startswith("rtx-3060-12gb "))
    assert rtx.split()[1:6] == ["gpu", "360", "51.0", "170", "13"] and "NVIDIA GeForce RTX 3060" in rtx
    assert lines[-1] == "sources of every figure: config/hardware.yaml"
