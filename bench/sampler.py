"""What the power sampler costs: decode tokens/s with the meter's sampling on against off.

    .venv/bin/python bench/sampler.py [--threads 2] [--rounds 8] [--rate 100] [--estimate-interval 0.1]

Alternates rounds (off, on, off, on, ...) of the same fixed-length decode (1-token
prompt, 128 generated tokens, default model) so that drift on a shared machine hits
both sides alike. "On" samples as `energytui run` does: measured sources at --rate, the
CPU estimate every --estimate-interval seconds (0: at --rate, as before edge readings) and
at the trial's edges from the runner's thread. Prints tokens/s mean ± stddev per side, their
ratio, and the achieved rate per source. Targets: ratio ≥ 0.99; achieved ≥ 95% of requested.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from energytui.engine.manifest import TrialSpec  # noqa: E402
from energytui.engine.models import default_model_name, resolve_model  # noqa: E402
from energytui.engine.metering import Meter, MeterOptions  # noqa: E402
from energytui.engine.runner import Engine  # noqa: E402
from energytui.engine.telemetry import discover  # noqa: E402
from energytui.engine.telemetry.cpu_estimate import CHART_INTERVAL_S  # noqa: E402

GENERATE = 128


def spec(model: Path, threads: int, prompt_tokens: int, max_tokens: int) -> TrialSpec:
    return TrialSpec(
        run_id="bench", config_id="bench", model=str(model), model_path=str(model), quant="", backend="cpu",
        threads=threads, gpu_layers=0, n_batch=512, batch_size=1, n_ctx=prompt_tokens + max_tokens + 8, suite=None,
        prompt_id=f"synthetic-{prompt_tokens}", prompt_text=None, prompt_tokens_target=prompt_tokens, chat=False,
        max_tokens=max_tokens, ignore_eos=True, temperature=0.0, seed=0, repetition=0, cooldown_s=0.0)

TARGET_RATIO, TARGET_RATE_SHARE = 0.99, 0.95


def decode_tps(engine: Engine, model: Path, threads: int, meter: Meter | None = None) -> float:
    """With a started meter: its sampler running and its edge readings (Meter.mark), as `energytui run` has."""
    return engine.run(spec(model, threads, 1, GENERATE + 1), on_edge=meter.mark if meter else None
                      ).metrics()["decode_tps"]


def requested_hz(source, rate: float) -> float:
    return min(rate, 1 / source.poll_interval_s) if source.poll_interval_s > 0 else rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--estimate-interval", type=float, default=CHART_INTERVAL_S)
    parser.add_argument("--model", default=default_model_name())
    args = parser.parse_args()
    model = resolve_model(args.model)
    sources, _ = discover(cpu_poll_interval_s=args.estimate_interval)
    meter = Meter(sources, [], MeterOptions(rate_hz=args.rate))  # started and stopped each round
    engine = Engine()
    decode_tps(engine, model, args.threads)  # load and warm up outside the measured rounds
    off: list[float] = []
    on: list[float] = []
    achieved: dict[str, list[float]] = {}
    for round_no in range(args.rounds):
        off.append(decode_tps(engine, model, args.threads))
        meter.start()
        sampler = meter.sampler
        assert sampler is not None
        try:
            on.append(decode_tps(engine, model, args.threads, meter))
        finally:
            sampler.stop()  # not meter.close(): the sources serve every round
        for name, stats in sampler.stats().items():
            achieved.setdefault(name, []).append(stats.achieved_hz)
        print(f"round {round_no + 1}/{args.rounds}: off {off[-1]:.1f}  on {on[-1]:.1f} tok/s", file=sys.stderr)
    engine.close()
    meter.close()
    ratio = statistics.fmean(on) / statistics.fmean(off)
    print(f"model {model.name}, {args.threads} threads, {args.rounds} alternating rounds of {GENERATE} decoded tokens")
    print(f"sampler off {statistics.fmean(off):6.1f} ± {statistics.stdev(off):4.1f} tok/s")
    rates = ", ".join(f"{s.name} ({s.source}) {requested_hz(s, args.rate):g} Hz"
                      + (" and at the edges" if s in meter.edge_sources else "") for s in sources)
    print(f"sampler on  {statistics.fmean(on):6.1f} ± {statistics.stdev(on):4.1f} tok/s: {rates}")
    ratio_ok = ratio >= TARGET_RATIO
    print(f"ratio on/off {ratio:.3f} (target ≥ {TARGET_RATIO}) {'PASS' if ratio_ok else 'FAIL'}")
    rate_ok = True
    for source in sources:
        hz = statistics.fmean(achieved[source.name])
        share = hz / requested_hz(source, args.rate)
        rate_ok &= share >= TARGET_RATE_SHARE
        print(f"achieved {source.name}: {hz:.1f} Hz = {share:.1%} of requested "
              f"(target ≥ {TARGET_RATE_SHARE:.0%}) {'PASS' if share >= TARGET_RATE_SHARE else 'FAIL'}")
    return 0 if ratio_ok and rate_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
