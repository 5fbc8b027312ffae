"""The running trial's phases as a display polls them (engine/queue.py LiveTrial), from a real run with the meter:
the re-warm between the idle window and prefill is a phase of its own, so a live chart never draws its busy
half-second as prefill."""

from energytui.engine import runner
from energytui.engine.manifest import load_manifest
from energytui.engine.metering import Meter
from energytui.engine.queue import queue_manifest, run_queue
from energytui.engine.store import Store

MANIFEST = """defaults:
  model: {model}
  threads: 2
  n_ctx: 128
  ignore_eos: true
  repetitions: 2
runs:
  - id: phases
    prompt_tokens: 16
    max_tokens: 4
"""


def test_the_re_warm_is_a_phase_of_its_own_and_prefill_starts_with_the_clock(write_manifest, model_path, engine,
                                                                            tmp_path, quiet_meter):
    manifest = load_manifest(write_manifest(MANIFEST.format(model=model_path)), gpu_offload=False)
    store = Store(tmp_path / "phases.db")
    run = queue_manifest(store, manifest, resume=False)
    ended = []

    def on_event(event) -> None:
        if event.kind == "trial_end":
            ended.append((event.live.view().marks, event.trial))

    meter = Meter.open(quiet_meter)
    meter.start()
    try:
        assert run_queue(store, run, engine, on_event, meter=meter) == "done"
    finally:
        meter.close()
        store.close()
    assert len(ended) == 2
    for marks, trial in ended:
        assert list(marks) == ["loading", "idle", "re-warm", "prefill", "decode", "idle after"]
        # the re-warm runs its whole length; prefill's mark is the meter's edge just before the trial's clock
        assert marks["prefill"] - marks["re-warm"] >= runner.REWARM_S * 1e9
        assert marks["re-warm"] < marks["prefill"] <= trial["t_start_ns"] < marks["decode"] == trial["t_first_ns"]
