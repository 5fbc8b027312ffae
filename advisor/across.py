"""`advise --host all`: each host's answer from its own calibration, and the best host for the request.

A fleet's hosts (or any database with several hosts) are advised one by one, each from its own trials, as
`advise --host ID` would. Across hosts, latency compares directly. Energy compares only where it was measured
(a counter or integrated power) on every host ranked: an ESTIMATED figure is a model of one CPU, so a host
whose energy is estimated is never ranked by energy against another host.
"""

from __future__ import annotations

from dataclasses import dataclass

from energytui.engine.errors import UserError
from energytui.engine.store import Store
from energytui.engine.telemetry.base import weakest_source

from .recommend import OBJECTIVES, PREDICTION_BASIS, Advice, Request, advise, render
from .service import current_fit, has_gpu_trials, what_if_models


@dataclass
class HostAdvice:
    host_id: str
    name: str | None
    advice: Advice | None
    reason: str | None  # why this host has no answer (too few trials, ...)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host_id})" if self.name else self.host_id

    @property
    def measured_energy(self) -> bool:
        assert self.advice is not None
        return weakest_source(self.advice.model["energy_tags"]) in ("counter", "integrated")


def advise_hosts(store: Store, request: Request, refit: bool = False) -> list[HostAdvice]:
    """Every host with trials, advised from its own fit; a host that cannot be advised says why."""
    answers = []
    for host in store.hosts():
        if not store.trials(host_id=host["id"], done=True):
            continue
        try:
            fit, _ = current_fit(store, host["id"], refit=refit)
            advice = advise(fit, request, has_gpu_trials(store, host["id"]), what_if_models(request.model, fit))
            answers.append(HostAdvice(host["id"], host.get("name"), advice, None))
        except UserError as exc:
            answers.append(HostAdvice(host["id"], host.get("name"), None, str(exc)))
    if not answers:
        raise UserError(f"--db {store.path}: no host has done trials yet; run a manifest first", 1)
    return answers


def best_hosts(answers: list[HostAdvice], objective: str) -> tuple[HostAdvice | None, list[str]]:
    """The host whose recommendation is best for the objective, and what the ranking left out and why."""
    key = OBJECTIVES[objective]
    answered = [a for a in answers if a.advice is not None and a.advice.recommendation is not None]
    notes = []
    if objective != "latency":
        estimated = [a for a in answered if not a.measured_energy]
        if estimated:
            notes.append(f"not ranked by {objective}: {', '.join(a.label for a in estimated)} (ESTIMATED energy, "
                         "a model of each CPU: compare it between configurations of one host, never across hosts)")
        answered = [a for a in answered if a.measured_energy]
    models = {_model(a) for a in answered}
    if len(models) > 1:
        notes.append(f"the hosts' answers run different models ({', '.join(sorted(models))}): give --model to "
                     "compare one model across hosts")
    if not answered:
        return None, notes
    return min(answered, key=lambda a: a.advice.recommendation.values[key]), notes  # type: ignore[union-attr]


def render_hosts(answers: list[HostAdvice], objective: str) -> str:
    """Each host's full answer under its name, then the best host across them."""
    lines = []
    for answer in answers:
        lines += [f"== host {answer.label}", render(answer.advice) if answer.advice else f"no answer: {answer.reason}",
                  ""]
    best, notes = best_hosts(answers, objective)
    if best is not None:
        assert best.advice is not None and best.advice.recommendation is not None
        pick = best.advice.recommendation
        lines.append(f"Across hosts, minimising {objective}: host {best.label}, {pick.label} "
                     f"({_figure(best, objective)}).")
    else:
        lines.append(f"Across hosts, minimising {objective}: no host can be ranked.")
    lines += [f"Note: {note}" for note in notes]
    return "\n".join(lines)


def _model(answer: HostAdvice) -> str:
    assert answer.advice is not None and answer.advice.recommendation is not None
    model = answer.advice.recommendation.config["model"]
    return f"{model['name']} {model['quant']}"


def _figure(answer: HostAdvice, objective: str) -> str:
    """The predicted value the ranking used, with its energy source where it is energy."""
    assert answer.advice is not None and answer.advice.recommendation is not None
    values = answer.advice.recommendation.values
    source = PREDICTION_BASIS.get(weakest_source(answer.advice.model["energy_tags"]) or "unknown", "")
    if objective == "latency":
        return f"{values['latency_s']:.2f} s per request"
    if objective == "edp":
        return f"{values['edp_js']:.3g} J·s per request, {source}"
    return f"{values['energy_j']:.3g} J per request, {source}"


def hosts_json(answers: list[HostAdvice], objective: str) -> str:
    import json

    best, notes = best_hosts(answers, objective)
    document = {"hosts": [{"host_id": a.host_id, "name": a.name, "reason": a.reason,
                           "advice": a.advice.as_json() if a.advice else None} for a in answers],
                "best_host": best.host_id if best else None, "notes": notes}
    return json.dumps(document, indent=2, allow_nan=False)
