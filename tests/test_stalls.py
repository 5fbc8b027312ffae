"""A trial whose decoding stood still (the process stopped, a laptop suspended, a starved VM) measured the
stall, not its configuration: it is stored with how long it stood still, named in the run's line and the
report, and left out of the means and the advisor's fits."""

import signal
import sqlite3
import time

import pytest

from energytui.advisor.fit import NotEnoughData, fit, usable
from energytui.engine.compare import compare
from energytui.engine.report import counted, markdown_report, stalled, summarise, table_cells
from energytui.engine.runner import STALL_MIN_MS, stalled_ms
from energytui.tui.panes.live import trial_row
from energytui.tui.trials import trial_cells
from helpers import first_tries, run_cli, start_run


@pytest.mark.parametrize("gaps, stood_still", [
    ([10.0] * 50 + [1510.0], 1500.0),  # one step 1.5 s late
    ([10.0] * 50 + [150.0, 490.0], 0.0),  # slow steps under STALL_MIN_MS: a busy machine, measured as it is
    ([300.0] * 20 + [3000.0], 0.0),  # a slow model's step ten times its median: not STALL_FACTOR times
    ([300.0] * 20 + [6300.0], 6000.0),
    ([], None),  # no steps: nothing to tell
])
def test_a_stall_is_a_step_far_past_the_median_and_STALL_MIN_MS(gaps, stood_still):
    assert stalled_ms(gaps) == stood_still
    assert STALL_MIN_MS == 500.0


def _until(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_run_stopped_mid_decode_flags_that_trial_runs_it_again_and_leaves_it_out_of_the_means(
        write_manifest, model_path, tmp_path, capsys):
    """The real `energytui run`, stopped with SIGSTOP for 1.5 s while its second trial decodes 400 tokens."""
    # The first trial's 3 tokens are 2 steps, too few for a stall to stand out (runner.stalled_ms): a loaded
    # machine cannot make the run repeat that one too.
    manifest = write_manifest(f"defaults:\n  model: {model_path}\n  threads: 1\n  n_ctx: 512\nruns:\n"
                              "  - id: stall\n    prompt_tokens: 8\n    max_tokens: [3, 400]\n    ignore_eos: true\n")
    db = tmp_path / "stall.db"
    proc = start_run(manifest, db, "--idle-s", "0.2")
    try:
        _until(lambda: first_tries(db) == ["done", "running"])
        time.sleep(1.0)  # past the idle window and the 8-token prefill: decoding, for 5 s or more
        proc.send_signal(signal.SIGSTOP)
        time.sleep(1.5)
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        short, long, again = [dict(r) for r in conn.execute("SELECT * FROM trials ORDER BY seq")]
    assert short["stalled_ms"] == 0 and counted(short)
    assert 1300 < long["stalled_ms"] < 4000 and long["itl_max_ms"] > long["stalled_ms"], long["stalled_ms"]
    assert long["status"] == "done" and not counted(long)
    assert [trial_cells(t, "label")[1] for t in (short, long)] == ["done", "stalled"]  # the app's trial tables
    assert [trial_row(t)[1] for t in (short, long)] == ["done", "stalled"]  # and the Live tab's recent trials
    said = " ".join(err.split())  # as the terminal's width wrapped it
    assert f"STALLED {long['stalled_ms'] / 1e3:.1f} s: left out of the means" in said
    # run once more at the end of the run, with the same settings
    assert again["retry_of"] == long["id"] and again["status"] == "done" and again["gen_tokens"] == 400
    assert {k: again[k] for k in ("config_id", "prompt_id", "max_tokens", "repetition")} == \
        {k: long[k] for k in ("config_id", "prompt_id", "max_tokens", "repetition")}
    assert f"trial 3/3 stall: Q4_1 cpu t=1 nb=512 B=1 synthetic-8 r0 (trial {long['id']} again: it stalled)" in said
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT n_trials, status FROM runs").fetchall() == [(3, "done")]

    trials = [dict(t, bits_per_weight=5.0, n_params=1) for t in (short, long, again)]
    assert [usable(t, "request") for t in trials] == [True, False, counted(again)]
    n_stalled = 1 + stalled(again)  # a loaded machine can stall the re-run too (it is not run a third time)
    with pytest.raises(NotEnoughData, match=rf"\(has \d+ over \d+, {n_stalled} stalled trial\(s\) left out\)"):
        fit(trials, short["host_id"])
    rows = summarise(trials)
    assert [(r["done"], r["stalled"], r["trials"]) for r in rows] == [(1, 0, 1), (int(counted(again)), n_stalled, 2)]
    assert (f"{n_stalled} done trial(s) whose decoding stood still are left out of `done` and the means"
            in table_cells(rows)[2])
    matched, _, _ = compare(trials[:2], [short])  # both prompts synthetic-8: one configuration to compare
    assert [(r["n_a"], r["n_b"]) for r in matched] == [(1, 1)]

    code, report, _ = run_cli(capsys, "report", "--db", db)
    assert code == 0
    assert (f"## Stalled trials\n\n- trial {long['id']} (stall, synthetic-8): decoding stood still for "
            f"{long['stalled_ms'] / 1e3:.1f} s (longest step {long['itl_max_ms']:.0f} ms against a median of "
            f"{long['itl_p50_ms']:.1f} ms: the process was paused, suspended or starved); left out of the means "
            f"and the advisor's fits; trial {again['id']} ran it again\n") in report
    assert markdown_report(trials, []).count("## Stalled trials") == 1
