"""Does a recommendation made on ESTIMATED energy hold whatever the CPU's static power really is?

The CPU estimate (engine/telemetry/cpu_estimate.py) splits TDP into a static share, drawn by the
visible CPUs whatever runs, and a dynamic rest per busy thread. Its static share is a judgement
within a plausible range (config/cpu_tdp.yaml, with sources). Raising the share by Δ moves
Δ × TDP/threads watts from each busy thread to every visible CPU, so a configuration that keeps
b of V visible CPUs busy for t seconds changes its energy by

    Δ × watts_per_thread × (V − b) × t

which is linear in the share. Each candidate's energy (and EDP, and average power for the budget)
is recomputed from what the advisor already predicted for it, its latency and busy threads, over
the whole range, without running anything: the winner at every share follows from where these
lines cross.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .features import Config, Workload, power_load
from .predict import SPEC, Basis, parts

TABLE = "config/cpu_tdp.yaml"


@dataclass(frozen=True)
class ShareLine:
    """One candidate across static shares: its objective and average power are linear in the share."""

    label: str
    value_at_zero: float  # the objective (J, J·s or s) at a static share of 0
    value_slope: float  # its change per unit of static share
    power_at_zero: float  # average watts at a static share of 0
    power_slope: float

    def value(self, share: float) -> float:
        return self.value_at_zero + self.value_slope * share

    def fits(self, share: float, budget_w: float | None) -> bool:
        return budget_w is None or self.power_at_zero + self.power_slope * share <= budget_w * (1 + 1e-9)


@dataclass(frozen=True)
class Segment:
    low: float
    high: float
    winner: str | None  # None: nothing fits the budget at these shares


def winner_segments(lines: list[ShareLine], low: float, high: float,
                    budget_w: float | None = None) -> list[Segment]:
    """The best line (lowest objective among those within the budget) over [low, high], as runs of shares
    with one winner each. Exact: the winner can only change where two lines cross or a line meets the
    budget, so it is evaluated between consecutive such points."""
    edges = {low, high}
    for i, a in enumerate(lines):
        for b in lines[i + 1:]:
            if a.value_slope != b.value_slope:
                edges.add((b.value_at_zero - a.value_at_zero) / (a.value_slope - b.value_slope))
        if a.power_slope and budget_w is not None:
            edges.add((budget_w - a.power_at_zero) / a.power_slope)
    points = sorted(x for x in edges if low <= x <= high)
    segments: list[Segment] = []
    for start, end in zip(points, points[1:]):
        if end - start < 1e-9:  # two crossings at one share
            continue
        winner = _best(lines, (start + end) / 2, budget_w)
        if segments and segments[-1].winner == winner:
            segments[-1] = Segment(segments[-1].low, end, winner)
        else:
            segments.append(Segment(segments[-1].high if segments else start, end, winner))
    return segments or [Segment(low, high, _best(lines, low, budget_w))]


def _best(lines: list[ShareLine], share: float, budget_w: float | None) -> str | None:
    allowed = [line for line in lines if line.fits(share, budget_w)]
    return min(allowed, key=lambda line: line.value(share)).label if allowed else None


def share_line(label: str, values: dict[str, float], config: Config, basis: Basis, workload: Workload,
               objective: str, estimate: dict) -> ShareLine:
    """A candidate's line from its predicted values (at the trials' static share) and its predicted latency per
    phase and busy CPU threads."""
    phases = parts(basis, config, workload)
    steps = max(workload.gen_tokens - 1, 0) if basis.mode == "phases" else 0
    latency = phases.prefill_s + phases.decode_step_s * steps
    visible = estimate["visible_cpus"]
    busy = min(power_load(config)["cpu_threads"], visible)
    power_slope = estimate["watts_per_thread"] * (visible - busy)  # W per unit share, over the whole request
    energy_slope = power_slope * latency / config.batch_size  # J per request per unit share
    value_slope = {"energy_j": energy_slope, "edp_js": energy_slope * values["latency_s"], "latency_s": 0.0}[objective]
    assumed = estimate["static_share"]
    return ShareLine(label, values[objective] - value_slope * assumed, value_slope,
                     values["avg_power_w"] - power_slope * assumed, power_slope)


def check(estimate: dict, static_range: tuple[float, float, str], recommended: str,
          candidates: list[tuple[str, dict, Config, Basis]], workload: Workload, objective: str,
          budget_w: float | None) -> dict:
    """The static power check of a recommendation: the winner across the plausible range, in plain words.
    `candidates`: (label, predicted values, config, basis) of every configuration that could win on power."""
    low, high, source = static_range
    if not estimate or not estimate.get("visible_cpus"):
        return {"applies": False, "sentence": "cannot be checked against the estimate's static power: the "
                "trials do not record the CPU estimate's parameters (imported or older data)"}
    lines = [share_line(label, values, config, basis, workload, objective, estimate)
             for label, values, config, basis in candidates if basis.name != SPEC]
    lines = [line for line in lines if all(map(math.isfinite, (line.value_at_zero, line.value_slope)))]
    segments = winner_segments(lines, low, high, budget_w)
    holds = len(segments) == 1 and segments[0].winner == recommended
    return {"applies": True, "holds": holds, "assumed_share": estimate["static_share"],
            "assumed_shares": estimate.get("shares", []), "range": [low, high], "range_source": source,
            "segments": [{"from": s.low, "to": s.high, "winner": s.winner} for s in segments],
            "sentence": sentence(segments, recommended, low, high, estimate["static_share"],
                                 [line.label for line in lines])}


def sentence(segments: list[Segment], recommended: str, low: float, high: float, assumed: float,
             contenders: Sequence[str] = ()) -> str:
    """The answer in words: it holds, or the winner by static share with the crossovers found. Names are cut to
    what sets them apart from the other `contenders`."""
    names = short_names([*contenders, *(s.winner for s in segments if s.winner), recommended])
    name = lambda label: names[label] if label else "nothing fits the budget"  # noqa: E731
    span = f"{pct(low)}–{pct(high)} % of TDP"
    if len(segments) == 1:
        only = segments[0].winner
        said = (f"holds for any static share in {span}" if only == recommended
                else f"does not hold: {name(only)} wins for any static share in {span}" if only
                else f"does not hold: nothing fits the budget at any static share in {span}")
    elif len(segments) == 2:
        below, above = segments
        edge = f"static power ≥ {pct(above.low)} % of TDP"
        said = (f"{name(above.winner)} wins if {edge}, else {name(below.winner)}" if above.winner and below.winner
                else f"{name(above.winner)} wins if {edge}; below it nothing fits the budget" if above.winner
                else f"{name(below.winner)} wins below {pct(above.low)} % of TDP; above it nothing fits the budget")
    else:
        pieces = [f"{name(segments[0].winner)} below {pct(segments[0].high)} %"]
        pieces += [f"{name(s.winner)} from {pct(s.low)} to {pct(s.high)} %" for s in segments[1:-1]]
        pieces += [f"{name(segments[-1].winner)} above {pct(segments[-1].low)} % of TDP"]
        said = ", ".join(pieces)
    return f"{said} (the estimate assumed {pct(assumed)} %; plausible range {span}, {TABLE})"


def pct(share: float) -> str:
    return f"{share * 100:.0f}"


def short_names(labels: list[str]) -> dict[str, str]:
    """Each label cut to the parts (" · "-separated) in which the labels differ: "1 thread" against "2 threads"."""
    unique = list(dict.fromkeys(labels))
    split = {label: label.split(" · ") for label in unique}
    if len(unique) < 2 or len({len(p) for p in split.values()}) > 1:
        return {label: label for label in unique}
    differing = [i for i in range(len(split[unique[0]])) if len({p[i] for p in split.values()}) > 1]
    return {label: " · ".join(split[label][i] for i in differing) for label in unique}
