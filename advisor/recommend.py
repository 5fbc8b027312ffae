"""Recommendation: predict every measured configuration for the request, filter by budget and SLO, rank.

The power budget is compared with the predicted average power of the request, which is
the sum over the devices the trials measured (CPU packages and DRAM, or the CPU
estimate, plus GPUs; or the wall meter alone when one was used).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from energytui.engine.errors import UserError

from . import portable
from .features import Config, derive, feature_vector
from energytui.engine.telemetry.base import weakest_source

from .fit import Fit, config_key

# What a predicted energy rests on, by the weakest source tag of the trials it learned from.
PREDICTION_BASIS = {"counter": "from energy counters", "integrated": "from integrated power",
                    "estimated": "ESTIMATED energy"}
OBJECTIVES = {"energy": "energy_j", "edp": "edp_js", "latency": "latency_s"}
_POWER_UNITS = {"w": 1.0, "kw": 1e3, "mw": 1e-3}
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "min": 60.0}


def parse_power(text: str) -> float:
    """'50W', '50', '0.05kW', '500mW' → watts."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(kW|W|mW)?\s*", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--budget {text!r}: give a positive power like 50W, 50 or 0.05kW")
    return float(match.group(1)) * _POWER_UNITS[(match.group(2) or "w").lower()]


def parse_duration(text: str) -> float:
    """'5s', '500ms', '5', '1min' → seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|min)?\s*", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--latency {text!r}: give a positive duration like 5s, 500ms or 5")
    return float(match.group(1)) * _TIME_UNITS[(match.group(2) or "s").lower()]


@dataclass
class Prediction:
    config: dict
    label: str
    values: dict[str, float]  # latency_s, energy_j, j_per_token, avg_power_w, edp_js
    intervals: dict[str, list[float]]  # quantity -> [low, high]
    extrapolation: list[str]
    rejected: list[str] = field(default_factory=list)


@dataclass
class Advice:
    request: dict
    recommendation: Prediction | None
    alternatives: list[Prediction]
    rejected: list[Prediction]
    closest: Prediction | None
    needs: str | None
    notes: list[str]
    model: dict  # what the fit learned from and its held-out errors

    def as_json(self) -> dict:
        return asdict(self)


def predict(fit: Fit, config: Config, prompt_tokens: int, gen_tokens: int) -> dict[str, float]:
    x = [feature_vector(config, prompt_tokens, gen_tokens, fit.quants)]
    parts = {target: float(portable.predict(model, x)[0]) for target, model in fit.models.items()}
    return derive(parts, gen_tokens, config.batch_size)


def candidates(fit: Fit, batch: int | None, model: str | None) -> list[Config]:
    configs = fit.config_objects()
    if model:
        configs = [c for c in configs if model in (c.model, c.quant) or c.model_path.endswith(model)]
        if not configs:
            raise UserError(f"--model {model!r}: no trials of that model on this host; measured: "
                            f"{', '.join(fit.models_seen)}")
    if batch:
        unique = {}
        for c in configs:
            moved = Config(**{**c.as_dict(), "batch_size": batch})
            unique.setdefault(config_key(moved), moved)
        configs = list(unique.values())
    return configs


def _extrapolation(fit: Fit, config: Config, prompt_tokens: int, gen_tokens: int) -> list[str]:
    measured = fit.ranges["per_config"].get(config_key(config))
    if measured is None:
        return [f"batch {config.batch_size} was never measured with this configuration"]
    flags = []
    for name, value, (low, high) in (("prompt", prompt_tokens, measured["prompt"]), ("generated", gen_tokens, measured["gen"])):
        if not low <= value <= high:
            flags.append(f"{value} {name} tokens is outside the measured {low}–{high}")
    return flags


def advise(fit: Fit, gen_tokens: int, prompt_tokens: int, budget_w: float | None, latency_s: float | None,
           objective: str, batch: int | None, model: str | None, gpu_trials: bool) -> Advice:
    if objective not in OBJECTIVES:
        raise UserError(f"--objective {objective!r}: choose energy, edp or latency")
    if gen_tokens < 1 or prompt_tokens < 1:
        raise UserError("--tokens and --prompt-tokens must be whole numbers ≥ 1")
    key = OBJECTIVES[objective]
    predictions = []
    for config in candidates(fit, batch, model):
        values = predict(fit, config, prompt_tokens, gen_tokens)
        intervals = {q: [values[q] * (1 - fit.intervals.get(q, 0)), values[q] * (1 + fit.intervals.get(q, 0))]
                     for q in ("latency_s", "energy_j", "j_per_token", "avg_power_w")}
        prediction = Prediction(config.as_dict(), config.label(), values, intervals,
                                _extrapolation(fit, config, prompt_tokens, gen_tokens))
        if budget_w is not None and values["avg_power_w"] > budget_w:
            prediction.rejected.append(f"over budget: {values['avg_power_w']:.1f} W > {budget_w:g} W")
        if latency_s is not None and values["latency_s"] > latency_s:
            prediction.rejected.append(f"over the latency limit: {values['latency_s']:.2f} s > {latency_s:g} s")
        predictions.append(prediction)
    feasible = sorted((p for p in predictions if not p.rejected), key=lambda p: p.values[key])
    rejected = sorted((p for p in predictions if p.rejected), key=lambda p: p.values[key])
    closest, needs = (None, None) if feasible else _closest(rejected, budget_w, latency_s)
    return Advice(
        request={"gen_tokens": gen_tokens, "prompt_tokens": prompt_tokens, "budget_w": budget_w,
                 "latency_s": latency_s, "objective": objective, "batch": batch, "model": model},
        recommendation=feasible[0] if feasible else None, alternatives=feasible[1:4], rejected=rejected,
        closest=closest, needs=needs, notes=_notes(fit, gpu_trials, predictions),
        model={"n_trials": fit.n_trials, "n_configs": fit.n_configs, "families": fit.families, "mode": fit.mode,
               "imported_trials": fit.imported_trials,
               "held_out_mape": fit.held_out_mape, "energy_tags": fit.energy_tags, "fitted_at": fit.created_at,
               "host_id": fit.host_id},
    )


def _closest(rejected: list[Prediction], budget_w: float | None, latency_s: float | None) -> tuple[Prediction, str]:
    """The candidate that misses by the smallest factor, and what it would take."""
    def miss(p: Prediction) -> float:
        over_power = p.values["avg_power_w"] / budget_w if budget_w else 0
        over_time = p.values["latency_s"] / latency_s if latency_s else 0
        return max(over_power, over_time)

    best = min(rejected, key=miss)
    over_budget = budget_w is not None and best.values["avg_power_w"] > budget_w
    needs = [f"a budget of at least {best.values['avg_power_w']:.1f} W"] if over_budget else []
    if latency_s is not None and best.values["latency_s"] > latency_s:
        needs.append(f"a latency limit of at least {best.values['latency_s']:.2f} s")
    return best, " and ".join(needs)


def _notes(fit: Fit, gpu_trials: bool, predictions: list[Prediction]) -> list[str]:
    notes = []
    if "estimated" in fit.energy_tags:
        notes.append("energy and power figures rest on ESTIMATED CPU power (utilisation × TDP model, "
                     "see `energytui doctor`), not on a meter")
    if not gpu_trials:
        notes.append("no GPU trials on this host: only what was measured is compared; GPU options need GPU "
                     "trials (run config/manifests/seed-study.yaml on a machine with a GPU, or import them)")
    if predictions and all(p.extrapolation for p in predictions):
        notes.append("the request is outside the measured ranges for every candidate: predictions extrapolate; "
                     "measure it with a manifest whose prompt_tokens and max_tokens cover the request")
    if fit.imported_trials:
        notes.append(f"{fit.imported_trials} of the trials were imported from logs: whole requests only, prompt "
                     "tokens estimated from characters, energy as the other machine recorded it")
    return notes


def render(advice: Advice) -> str:
    r = advice.request
    batch = f"batch {r['batch']}" if r["batch"] else "each configuration's measured batch size"
    slo = f", latency ≤ {r['latency_s']:g} s" if r["latency_s"] else ""
    budget = f"budget {r['budget_w']:g} W" if r["budget_w"] is not None else "no power budget"
    weakest = weakest_source(advice.model["energy_tags"])
    tag = f" [{PREDICTION_BASIS[weakest]}]" if weakest else ""
    lines = [f"Request: {r['gen_tokens']} generated tokens after a {r['prompt_tokens']}-token prompt, {batch}, "
             f"{budget}{slo}, minimising {r['objective']}.", ""]
    if advice.recommendation:
        lines += ["Recommended:", *_describe(advice.recommendation, tag)]
    else:
        lines += ["No configuration meets the budget and latency limit."]
        if advice.closest:
            lines += ["Closest:", *_describe(advice.closest, tag), f"  it would need {advice.needs}"]
    if advice.alternatives:
        lines += ["", "Next best:"] + [line for p in advice.alternatives for line in _describe(p, tag, brief=True)]
    if advice.rejected:
        lines += ["", "Rejected:"] + [f"  {p.label}: {'; '.join(p.rejected)}" for p in advice.rejected]
    m = advice.model
    errors = ", ".join(f"{k} {v:.1%}" for k, v in m["held_out_mape"].items())
    lines += ["", f"Model: fitted on {m['n_trials']} trials over {m['n_configs']} configurations of host "
              f"{m['host_id']} ({m['fitted_at']}); held-out error with whole configurations left out "
              f"(mean absolute %): {errors}. Intervals cover 90% of held-out errors."]
    lines += [f"Note: {note}" for note in advice.notes]
    return "\n".join(lines)


def _describe(p: Prediction, tag: str, brief: bool = False) -> list[str]:
    v, i = p.values, p.intervals

    def span(q: str, fmt: str) -> str:
        return f"{v[q]:{fmt}} ({i[q][0]:{fmt}}–{i[q][1]:{fmt}})"

    head = f"  {p.label}"
    if brief:
        return [f"{head}: {span('latency_s', '.2f')} s, {span('energy_j', '.2f')} J{tag} per request"]
    lines = [head, f"    latency          {span('latency_s', '.2f')} s",
             f"    energy/request   {span('energy_j', '.3g')} J{tag}",
             f"    energy/token     {span('j_per_token', '.3g')} J{tag}",
             f"    average power    {span('avg_power_w', '.1f')} W{tag}"]
    lines += [f"    extrapolating: {flag}" for flag in p.extrapolation]
    return lines


def to_json(advice: Advice) -> str:
    import json

    return json.dumps(advice.as_json(), indent=2, allow_nan=False)  # strict JSON for scripts
