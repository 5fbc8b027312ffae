"""Fitting: a few model families per target, chosen by cross-validation that holds out whole configurations.

The held-out errors are stored with the fit and shown to the user; a fit is reused
until the data it learned from changes (its hash).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from energytui.engine.errors import UserError

from . import portable
from .features import MODES, Config, config_of, derive, feature_vector, targets_of, usable

MIN_CONFIGS, MIN_TRIALS = 3, 12
SWEEP_HINT = "run `energytui models ladder` then `energytui run config/manifests/advisor-sweep.yaml`"
INTERVAL_QUANTILE = 0.9  # intervals cover 90% of the held-out relative errors


class NotEnoughData(UserError):
    def __init__(self, message: str):
        super().__init__(message, exit_code=1)


@dataclass
class Fit:
    host_id: str
    data_hash: str
    created_at: str
    n_trials: int
    n_configs: int
    families: dict[str, str]  # target -> chosen family
    models: dict[str, dict]  # target -> portable model
    cv_mape: dict[str, dict[str, float]]  # target -> family -> held-out MAPE
    held_out_mape: dict[str, float]  # chosen families, plus latency_s and energy_j per request
    intervals: dict[str, float]  # quantity -> relative half-width
    configs: list[dict]
    ranges: dict  # measured prompt/gen ranges, overall and per configuration
    energy_tags: list[str]
    models_seen: list[str] = field(default_factory=list)
    mode: str = "phases"  # "request" for imported whole-request logs
    imported_trials: int = 0
    quants: list[str] = field(default_factory=list)  # the quantization indicators' order in the features

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Fit":
        return cls(**json.loads(text))

    def config_objects(self) -> list[Config]:
        return [Config(**c) for c in self.configs]


def config_key(config: Config) -> str:
    return json.dumps(config.as_dict(), sort_keys=True)


def data_hash(trials: list[dict]) -> str:
    digest = hashlib.sha256()
    for t in sorted(trials, key=lambda t: t["id"]):
        digest.update(f"{t['id']}|{t['finished_at']}|{t['energy_j']}|{t['e2e_ms']}\n".encode())
    return digest.hexdigest()


def _families():
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "log-linear": (lambda: make_pipeline(StandardScaler(), Ridge(alpha=0.1)), portable.export_linear),
        "boosting": (lambda: GradientBoostingRegressor(n_estimators=150, max_depth=3, learning_rate=0.08,
                                                       subsample=0.9, random_state=0), portable.export_boosting),
        "forest": (lambda: RandomForestRegressor(n_estimators=80, min_samples_leaf=2, random_state=0),
                   portable.export_forest),
    }


def fit(trials: list[dict], host_id: str) -> Fit:
    """Fit every target with every family, keep the best by grouped CV, refit it on all data."""
    from sklearn.model_selection import GroupKFold

    mode = choose_mode(trials)
    targets = MODES[mode]
    data = [t for t in trials if usable(t, mode)]
    configs = {config_key(config_of(t)): config_of(t) for t in data}
    if len(configs) < MIN_CONFIGS or len(data) < MIN_TRIALS:
        raise NotEnoughData(f"the advisor needs at least {MIN_TRIALS} done trials with energy over {MIN_CONFIGS} "
                            f"configurations on this host (has {len(data)} over {len(configs)}); {SWEEP_HINT}")
    quants = sorted({t["quant"] for t in data})
    x = np.array([feature_vector(config_of(t), t["prompt_tokens"], t["gen_tokens"] // t["batch_size"], quants)
                  for t in data])
    y = {name: np.array([targets_of(t, mode)[name] for t in data]) for name in targets}
    groups = np.array([t["config_id"] for t in data])
    folds = list(GroupKFold(n_splits=min(5, len(set(groups)))).split(x, groups=groups))
    families = _families()
    oof = {target: {} for target in targets}
    for target in targets:
        for name, (make, _export) in families.items():
            predicted = np.empty(len(data))
            for train, test in folds:
                model = make().fit(x[train], np.log(y[target][train]))
                predicted[test] = np.exp(model.predict(x[test]))
            oof[target][name] = predicted
    cv_mape = {t: {n: _mape(p, y[t]) for n, p in oof[t].items()} for t in targets}
    chosen = {t: min(cv_mape[t], key=cv_mape[t].get) for t in targets}
    models = {t: families[chosen[t]][1](families[chosen[t]][0]().fit(x, np.log(y[t]))) for t in targets}
    held_out, intervals = _derived_errors(data, {t: oof[t][chosen[t]] for t in targets})
    held_out.update({t: cv_mape[t][chosen[t]] for t in targets})
    return Fit(
        host_id=host_id, data_hash=data_hash(data), created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        n_trials=len(data), n_configs=len(configs), families=chosen, models=models, cv_mape=cv_mape,
        held_out_mape=held_out, intervals=intervals, configs=[c.as_dict() for c in configs.values()],
        ranges=_ranges(data), energy_tags=sorted({t["energy_tag"] for t in data if t.get("energy_tag")}),
        models_seen=sorted({t["model"] for t in data}), mode=mode,
        imported_trials=sum(bool(t.get("imported")) for t in data), quants=quants,
    )


def choose_mode(trials: list[dict]) -> str:
    """Phases when the trials have them (measured here); whole requests for imported logs."""
    phases = sum(usable(t, "phases") for t in trials)
    return "phases" if phases >= MIN_TRIALS or phases >= sum(usable(t, "request") for t in trials) else "request"


def usable_data(trials: list[dict]) -> list[dict]:
    mode = choose_mode(trials)
    return [t for t in trials if usable(t, mode)]


def _mape(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted / actual - 1)))


def _derived_errors(data: list[dict], oof: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Held-out errors of latency and energy per request, built from the parts' held-out predictions."""
    rel = {"latency_s": [], "energy_j": [], "avg_power_w": []}
    for i, t in enumerate(data):
        parts = {target: float(values[i]) for target, values in oof.items()}
        predicted = derive(parts, t["gen_tokens"] // t["batch_size"], t["batch_size"])
        actual_latency = t["e2e_ms"] / 1e3
        actual_energy = t["energy_j"] / t["batch_size"]
        rel["latency_s"].append(predicted["latency_s"] / actual_latency - 1)
        rel["energy_j"].append(predicted["energy_j"] / actual_energy - 1)
        rel["avg_power_w"].append(predicted["avg_power_w"] / (actual_energy * t["batch_size"] / actual_latency) - 1)
    mape = {k: statistics.fmean(abs(v) for v in values) for k, values in rel.items()}
    intervals = {k: float(np.quantile(np.abs(values), INTERVAL_QUANTILE)) for k, values in rel.items()}
    intervals["j_per_token"] = intervals["energy_j"]
    return mape, intervals


def _ranges(data: list[dict]) -> dict:
    per_config: dict[str, dict] = {}
    for t in data:
        entry = per_config.setdefault(config_key(config_of(t)), {"prompt": [t["prompt_tokens"]] * 2,
                                                                 "gen": [t["gen_tokens"] // t["batch_size"]] * 2})
        for key, value in (("prompt", t["prompt_tokens"]), ("gen", t["gen_tokens"] // t["batch_size"])):
            entry[key] = [min(entry[key][0], value), max(entry[key][1], value)]
    return {
        "prompt": [min(t["prompt_tokens"] for t in data), max(t["prompt_tokens"] for t in data)],
        "gen": [min(t["gen_tokens"] // t["batch_size"] for t in data), max(t["gen_tokens"] // t["batch_size"] for t in data)],
        "per_config": per_config,
    }
