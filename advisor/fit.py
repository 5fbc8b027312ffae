"""Calibration: the physical model's few effective constants, fitted per host on its trials.

For each part (prefill time, decode-step time, prefill power, decode power) a
non-negative linear fit on the physical columns of features.py finds seconds per FLOP,
seconds per byte, overheads and watts. The fit minimises relative error and is made
robust by re-weighting: trials far off the rest (a noisy neighbour on the machine)
are down-weighted rather than allowed to bend the constants. Held-out errors come from
grouped cross-validation (whole configurations held out), and a residual model is
kept only where that cross-validation shows it helps.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from energytui.engine.errors import UserError
from energytui.engine.record import check_names
from energytui.engine.report import counted, stalled
from energytui.engine.telemetry.cpu_estimate import parse_method

from . import portable
from .features import (COLUMNS, TILED_KERNELS, Config, Parts, Workload, config_of, decode_work, derive, power_load,
                       prefill_work, vector)

if TYPE_CHECKING:  # numpy is imported where fitting needs it: a cached `advise` never pays for it
    import numpy as np

MIN_CONFIGS, MIN_TRIALS = 3, 12
SWEEP_HINT = "run `energytui run config/manifests/calibrate.yaml` (about 3 minutes)"
INTERVAL_QUANTILE = 0.9  # intervals cover 90% of the held-out errors
PARTS = ("prefill_s", "decode_step_s", "prefill_w", "decode_w")
REQUEST_PARTS = ("latency_s", "power_w")
KERNEL_COLUMNS = {"prefill_s": ("cpu_flops/thread", "gpu_flops"), "decode_step_s": ("cpu_flops/thread", "gpu_flops"),
                  "latency_s": ("cpu_flops/thread", "gpu_flops")}
RESIDUAL_GAIN = 0.9  # keep a residual model only if it cuts the held-out error by at least 10 %
RESIDUAL_MIN_POINTS = 0.005  # ... and by at least half a percentage point
# Other calibrations the trials cannot tell from the chosen one: mean absolute relative error within
# 2/sqrt(trials) of the chosen fit's, relatively, plus this much. Where the trials never varied a factor
# (one thread count, one weight size, one prompt length), columns that differ only in that factor trade
# places freely, and a request that changes it is predicted across all of them (predict.py), not by
# whichever split the solver happened to land on.
EQUALLY_GOOD = 0.002
# The trial fields a fit learns from, per mode (besides the configuration features.config_of reads).
NEEDED = {"phases": ("ttft_ms", "e2e_ms", "prefill_energy_j", "decode_energy_j"), "request": ("e2e_ms", "energy_j")}
check_names({name for names in NEEDED.values() for name in names} | {"status", "gen_tokens", "batch_size",
            "bits_per_weight", "n_params", "prompt_tokens", "idle_power_w", "energy_tag", "energy_method", "model",
            "imported"}, "advisor/fit.py")


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
    mode: str  # "phases" (measured here) or "request" (imported whole-request logs)
    coefficients: dict[str, dict[str, float]]  # part -> column -> coefficient
    residuals: dict[str, dict]  # part -> portable residual model (only where CV showed it helps)
    # part -> other coefficient sets that fit the trials as well (EQUALLY_GOOD): the calibration's own ambiguity
    alternatives: dict[str, list[dict[str, float]]]
    held_out_mape: dict[str, float]  # per part, plus latency_s and energy_j per request
    in_sample_mape: dict[str, float]
    residual_cv: dict[str, dict[str, float]]  # part -> {"physical": mape, "physical+residual": mape}
    intervals: dict[str, dict[str, float]]  # basis -> quantity -> log half-width
    configs: list[dict]
    ranges: dict  # measured prompt/gen ranges, overall and per configuration
    energy_tags: list[str]
    models_seen: list[str] = field(default_factory=list)
    imported_trials: int = 0
    steady_trials: int = 0  # trials whose energy is their share of a steady-state window (a slow power source)
    excluded: dict[str, int] = field(default_factory=dict)  # reason -> trials left out
    quants: list[str] = field(default_factory=list)
    host: dict = field(default_factory=dict)
    kernels: dict = field(default_factory=dict)  # the host's kernel probe: quant -> rows -> threads -> s/FLOP
    # The CPU estimate the trials' energy came from (cpu_estimate_of), for the advisor's static power check.
    cpu_estimate: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Fit":
        return cls(**json.loads(text))

    def config_objects(self) -> list[Config]:
        return [Config.from_dict(c) for c in self.configs]



FIT_VERSION = "physical-8"  # part of the data hash: a new model never reuses an older model's cached fit


def data_hash(trials: list[dict], kernels: dict | None = None) -> str:
    digest = hashlib.sha256(FIT_VERSION.encode())
    digest.update(json.dumps(kernels or {}, sort_keys=True).encode())
    for t in sorted(trials, key=lambda t: t["id"]):
        digest.update(f"{t['id']}|{t['finished_at']}|{t['energy_j']}|{t['e2e_ms']}\n".encode())
    return digest.hexdigest()


# --- from trials to targets -------------------------------------------------------------------

def steps_of(trial: dict) -> float:
    return (trial.get("gen_tokens") or 0) / (trial.get("batch_size") or 1)


def usable(trial: dict, mode: str = "phases") -> bool:
    """Done and never stalled (counted), with the mode's timings and energy, and the model's size and bits per
    weight known."""
    needed = NEEDED[mode]
    return bool(counted(trial) and steps_of(trial) >= (2 if mode == "phases" else 1)
                and trial.get("bits_per_weight") and trial.get("n_params") and trial.get("prompt_tokens")
                and all(trial.get(k) for k in needed) and (mode == "request" or trial["e2e_ms"] > trial["ttft_ms"]))


def targets_of(trial: dict, mode: str) -> dict[str, float]:
    if mode == "request":
        return {"latency_s": trial["e2e_ms"] / 1e3, "power_w": trial["energy_j"] / (trial["e2e_ms"] / 1e3)}
    decode_ms = trial["e2e_ms"] - trial["ttft_ms"]
    return {"prefill_s": trial["ttft_ms"] / 1e3, "decode_step_s": decode_ms / (steps_of(trial) - 1) / 1e3,
            "prefill_w": trial["prefill_energy_j"] / (trial["ttft_ms"] / 1e3),
            "decode_w": trial["decode_energy_j"] / (decode_ms / 1e3)}


def workload_of(trial: dict) -> Workload:
    return Workload(int(trial["prompt_tokens"]), max(int(round(steps_of(trial))), 1))


def design(config: Config, workload: Workload, part: str, kernels: dict | None = None) -> list[float]:
    """The physical columns of one part (request mode: a whole request's time is prefill + all steps);
    `kernels` is the host's kernel probe (engine/kernels.py), if any."""
    if part == "prefill_s":
        return vector(prefill_work(config, workload, kernels), COLUMNS["prefill"])
    if part == "decode_step_s":
        return vector(decode_work(config, workload, kernels), COLUMNS["decode"])
    if part == "latency_s":
        steps = max(workload.gen_tokens - 1, 0)
        return (design(config, workload, "prefill_s", kernels)
                + [steps * v for v in design(config, workload, "decode_step_s", kernels)])
    return vector(power_load(config), COLUMNS["power"])


def columns_of(part: str) -> list[str]:
    if part == "latency_s":
        return [f"prefill:{c}" for c in COLUMNS["prefill"]] + [f"decode:{c}" for c in COLUMNS["decode"]]
    return list(COLUMNS[{"prefill_s": "prefill", "decode_step_s": "decode"}.get(part, "power")])


def kernel_columns(part: str, quants: list[str]) -> list[str]:
    """The calibrated columns: compute columns split per quantization type, since llama.cpp's kernels
    differ by type (here Q4_0's repacked path ran prefill four times faster than Q4_1's)."""
    out = []
    for column in columns_of(part):
        bare = column.split(":")[-1]
        out += [f"{column}@{q}" for q in quants] if bare in KERNEL_COLUMNS.get(part, ()) and quants else [column]
    return out


def expand(x: list[float], part: str, quant: str, quants: list[str]) -> list[float]:
    """A row of the generic design spread over the per-quantization columns (its own quant's only)."""
    out = []
    for column, value in zip(columns_of(part), x):
        if column.split(":")[-1] in KERNEL_COLUMNS.get(part, ()) and quants:
            out += [value if q == quant else 0.0 for q in quants]
        else:
            out.append(value)
    return out


def coefficient(coefficients: dict[str, float], column: str, quant: str) -> float | None:
    """A column's coefficient for a quantization; an unmeasured one takes the mean of the measured ones of
    its kernel family (tiled GEMM or dot product), else of all measured ones."""
    if column in coefficients:
        return coefficients[column]
    if f"{column}@{quant}" in coefficients:
        return coefficients[f"{column}@{quant}"]
    kernels = {k.split("@")[1]: v for k, v in coefficients.items() if k.startswith(f"{column}@")}
    family = [v for q, v in kernels.items() if (q in TILED_KERNELS) == (quant in TILED_KERNELS)]
    chosen = family or list(kernels.values())
    return sum(chosen) / len(chosen) if chosen else None


LENGTHS_NEVER_LOWER = [1, 1, 0, 0, 0, 0]  # residual_features' prompt and generation lengths come first
RESIDUAL_STAGES, RESIDUAL_RATE = 60, 0.1


def residual_features(config: Config, workload: Workload) -> list[float]:
    return [math.log(workload.prompt_tokens), math.log(max(workload.gen_tokens, 1)), math.log(config.batch_size),
            float(config.threads or 0), config.gpu_share, config.model.bits_per_weight]


# --- the robust non-negative fit ----------------------------------------------------------------

def fit_nonnegative(x: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None,
                    free: np.ndarray | None = None, rounds: int = 3) -> np.ndarray:
    """Coefficients ≥ 0 minimising the squared *relative* error of `offset + x @ coef` against `y`, with
    outliers down-weighted; columns not `free` keep a coefficient of 0 (the caller pins them).

    Columns are scaled to unit size so the solver treats FLOPs and bytes alike; every
    round re-weights trials by a Tukey-style weight on their relative residual against
    the median absolute deviation of all residuals.
    """
    import numpy as np
    from sklearn.linear_model import LinearRegression

    offset = np.zeros(len(y)) if offset is None else offset
    free = np.ones(x.shape[1], bool) if free is None else free
    a = x / y[:, None]
    scale = np.abs(a).max(axis=0)
    live = (scale > 0) & free
    coef = np.zeros(x.shape[1])
    weights = np.ones(len(y))
    for _ in range(rounds):
        model = LinearRegression(fit_intercept=False, positive=True)
        model.fit(a[:, live] / scale[live], 1 - offset / y, sample_weight=weights)
        coef[live] = model.coef_ / scale[live]
        rel = (x @ coef + offset) / y - 1
        mad = max(float(np.median(np.abs(rel - np.median(rel)))), 0.01)
        weights = np.clip(1 - (rel / (6 * mad)) ** 2, 0.0, 1.0) ** 2
        if weights.sum() < 0.5 * len(y):  # too few trials agree: keep everything, unweighted
            weights = np.ones(len(y))
    return coef


def equally_good(x: np.ndarray, y: np.ndarray, coef: np.ndarray, pinned: np.ndarray) -> list[np.ndarray]:
    """The extreme coefficient sets (each column at its least and at its most) among those ≥ 0 whose mean
    absolute relative error on the trials is within what their number cannot tell from `coef`'s
    (EQUALLY_GOOD), `pinned` columns kept; those that differ from `coef`.

    Linear programs over the trials' design: where two columns were proportional in every trial, one
    set gives the first column everything and another the second, and predictions for a request that
    separates them span both; where noise hides how two columns split, the sets reach as far as the
    noise lets them.
    """
    import numpy as np
    from scipy.optimize import linprog

    a = x / y[:, None]  # relative units: a trial's prediction over its measurement
    scale = np.abs(a).max(axis=0)
    live = (scale > 0) & ~pinned
    if not live.any():
        return []
    n, k = len(y), int(live.sum())
    a_live = a[:, live] / scale[live]
    chosen = coef[live] * scale[live]
    rest = a @ coef - a_live @ chosen  # the pinned columns' share of each prediction
    loss = float(np.mean(np.abs(a @ coef - 1)))
    allowed = loss * (1 + 2 / math.sqrt(n)) + EQUALLY_GOOD
    # variables: k coefficients, then n absolute errors e_i ≥ |a_i·c + rest_i - 1|, with mean(e) ≤ allowed
    eye = np.eye(n)
    constraints = np.vstack([np.hstack([a_live, -eye]), np.hstack([-a_live, -eye]),
                             np.concatenate([np.zeros(k), np.full(n, 1 / n)])[None, :]])
    limits = np.concatenate([1 - rest, rest - 1, [allowed]])
    found: list[np.ndarray] = [chosen]
    for column in range(k):
        for sign in (1.0, -1.0):  # least, then most
            objective = np.zeros(k + n)
            objective[column] = sign
            result = linprog(objective, A_ub=constraints, b_ub=limits, bounds=(0, None), method="highs")
            if result.status == 0 and not any(np.abs(result.x[:k] - f).max() < 1e-6 * max(f.max(), 1e-12)
                                              for f in found):
                found.append(result.x[:k])
    out = []
    for scaled in found[1:]:
        candidate = coef.copy()
        candidate[live] = scaled / scale[live]
        out.append(candidate)
    return out


def _idle_offsets(data: list[dict]):
    """Each trial's idle power, measured in its idle window before prefill: the "idle" of idle + dynamic is
    measured, not fitted, so one thread count alone still calibrates the watts per busy thread. None when
    most trials have no idle window (imported logs)."""
    import numpy as np

    idle = [t.get("idle_power_w") for t in data]
    known = [v for v in idle if v is not None]
    if len(known) < len(idle) / 2:
        return None
    middle = float(np.median(known))
    return np.array([middle if v is None else v for v in idle])


def _solver(parts: tuple[str, ...], quants: list[str], idle):
    """fit_nonnegative per part, with the power parts' "fixed" column pinned to the measured idle."""
    import numpy as np

    def solve(part: str, x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if idle is None or part not in ("prefill_w", "decode_w"):
            return fit_nonnegative(x, y)
        free = np.array([c != "fixed" for c in kernel_columns(part, quants)])
        coef = fit_nonnegative(x, y, offset=idle[rows], free=free)
        coef[~free] = float(np.median(idle[rows]))
        return coef

    return solve


def fit(trials: list[dict], host_id: str, groups_by: str = "config_id", kernels: dict | None = None) -> Fit:
    """Calibrate the physical model on a host's trials (with its kernel probe, where it has one); held-out
    errors by grouped cross-validation."""
    import numpy as np

    from sklearn.model_selection import GroupKFold

    mode = choose_mode(trials)
    parts = PARTS if mode == "phases" else REQUEST_PARTS
    data, excluded = _usable_rows(trials, mode)
    rows = [(config_of(t), workload_of(t)) for t in data]
    configs = {c.key(): c for c, _ in rows}
    if len(configs) < MIN_CONFIGS or len(data) < MIN_TRIALS:
        n_stalled = sum(map(stalled, trials))
        left_out = f", {n_stalled} stalled trial(s) left out" if n_stalled else ""
        raise NotEnoughData(f"the advisor needs at least {MIN_TRIALS} done trials with energy over {MIN_CONFIGS} "
                            f"configurations on this host (has {len(data)} over {len(configs)}{left_out}); "
                            f"{SWEEP_HINT}")
    y = {p: np.array([targets_of(t, mode)[p] for t in data]) for p in parts}
    quants = sorted({t["quant"] for t in data})
    unprobed = [q for q in quants if q not in (kernels or {})]  # their compute goes to per-type columns
    x = {p: np.array([expand(design(c, w, p, kernels), p, c.model.quant, unprobed) for c, w in rows]) for p in parts}
    r = np.array([residual_features(c, w) for c, w in rows])
    groups = np.array([str(t.get(groups_by)) for t in data])
    folds = list(GroupKFold(n_splits=min(5, len(set(groups)))).split(r, groups=groups))

    idle = _idle_offsets(data) if mode == "phases" else None
    solve = _solver(parts, unprobed, idle)
    everything = np.arange(len(data))
    oof, residual_cv = {}, {}
    for p in parts:
        plain, with_residual = np.empty(len(data)), np.empty(len(data))
        for train, test in folds:
            coef = solve(p, x[p][train], y[p][train], train)
            plain[test] = np.maximum(x[p][test] @ coef, 1e-12)
            residual = _fit_residual(r[train], y[p][train] / np.maximum(x[p][train] @ coef, 1e-12))
            with_residual[test] = plain[test] * np.exp(_predict_residual(residual, r[test]))
        residual_cv[p] = {"physical": _mape(plain, y[p]), "physical+residual": _mape(with_residual, y[p])}
        oof[p] = with_residual if _residual_helps(residual_cv[p]) else plain

    coefficients, alternatives, residuals, fitted = {}, {}, {}, {}
    for p in parts:
        coef = solve(p, x[p], y[p], everything)
        names = kernel_columns(p, unprobed)
        calibrated = np.abs(x[p]).max(axis=0) > 0
        coefficients[p] = {names[i]: float(coef[i]) for i in range(len(names)) if calibrated[i]}
        pinned = np.array([idle is not None and p in ("prefill_w", "decode_w") and n == "fixed" for n in names])
        alternatives[p] = [{names[i]: float(v[i]) for i in range(len(names)) if calibrated[i]}
                           for v in equally_good(x[p], y[p], coef, pinned)]
        fitted[p] = np.maximum(x[p] @ coef, 1e-12)
        if _residual_helps(residual_cv[p]):
            residuals[p] = _fit_residual(r, y[p] / fitted[p])
            fitted[p] = fitted[p] * np.exp(_predict_residual(residuals[p], r))

    held_out, held_out_log = _per_request_errors(data, rows, oof, mode)
    in_sample, in_sample_log = _per_request_errors(data, rows, fitted, mode)
    held_out.update({p: _mape(oof[p], y[p]) for p in parts})
    in_sample.update({p: _mape(fitted[p], y[p]) for p in parts})
    return Fit(
        host_id=host_id, data_hash=data_hash(data, kernels), created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        n_trials=len(data), n_configs=len(configs), mode=mode, coefficients=coefficients, residuals=residuals,
        alternatives=alternatives,
        held_out_mape=held_out, in_sample_mape=in_sample, residual_cv=residual_cv,
        intervals={"measured here": in_sample_log, "calibrated here": held_out_log},
        configs=[c.as_dict() for c in configs.values()], ranges=_ranges(data, rows),
        energy_tags=sorted({t["energy_tag"] for t in data if t.get("energy_tag")}),
        models_seen=sorted({t["model"] for t in data}), imported_trials=sum(bool(t.get("imported")) for t in data),
        steady_trials=sum(bool(t.get("window_id")) for t in data),
        excluded=excluded, quants=quants,
        host={k: data[0].get(k) for k in ("gpu_build", "host_cores", "host_ram_gb", "host_gpu_memory_gb")},
        kernels=kernels or {},
        cpu_estimate=cpu_estimate_of(data),
    )


def cpu_estimate_of(data: list[dict]) -> dict:
    """The CPU estimate behind the trials' energy, read back from their methods: static share (the mean where
    runs used several), watts per hardware thread, visible CPUs; {} when no trial's energy was estimated so."""
    found = [(parse_method(t.get("energy_method")), t) for t in data if t.get("energy_tag") == "estimated"]
    known = [(p, t) for p, t in found if p is not None]
    if not known:
        return {}
    visible = [p.visible_cpus or t.get("host_cores") for p, t in known]
    return {"static_share": sum(p.static_share for p, _ in known) / len(known),
            "shares": sorted({round(p.static_share, 4) for p, _ in known}),
            "watts_per_thread": sum(p.watts_per_thread for p, _ in known) / len(known),
            "visible_cpus": max((v for v in visible if v), default=None),
            "trials": len(known), "estimated_trials": len(found)}


def _usable_rows(trials: list[dict], mode: str) -> tuple[list[dict], dict[str, int]]:
    data: list[dict] = []
    excluded: dict[str, int] = {}  # why -> trials left out
    for t in trials:
        if not usable(t, mode):
            continue
        config = config_of(t)
        if config.threads is None and config.gpu_share < 1.0:
            excluded["thread count not recorded (CPU work cannot be scaled)"] = \
                excluded.get("thread count not recorded (CPU work cannot be scaled)", 0) + 1
            continue
        data.append(t)
    return data, excluded


def choose_mode(trials: list[dict]) -> str:
    """Phases when the trials have them (measured here); whole requests for imported logs."""
    phases = sum(usable(t, "phases") for t in trials)
    return "phases" if phases >= MIN_TRIALS or phases >= sum(usable(t, "request") for t in trials) else "request"


def usable_data(trials: list[dict]) -> list[dict]:
    return _usable_rows(trials, choose_mode(trials))[0]


def _residual_helps(scores: dict[str, float]) -> bool:
    gain = scores["physical"] - scores["physical+residual"]
    return scores["physical+residual"] < RESIDUAL_GAIN * scores["physical"] and gain >= RESIDUAL_MIN_POINTS


def _fit_residual(features: np.ndarray, ratio: np.ndarray) -> dict:
    """Gradient boosting of depth-2 trees on log(actual / physical), squared error, 90 % row subsamples.

    Every tree is constrained never to fall with a longer prompt or generation: the physical parts only
    grow with the lengths, so a residual that does not fall keeps every time, power and energy from
    dipping where a tree splits (scikit-learn's GradientBoostingRegressor takes no such constraint,
    its trees do).
    """
    import numpy as np
    from sklearn.tree import DecisionTreeRegressor

    target = np.log(ratio)
    rng = np.random.default_rng(0)
    base = float(target.mean())
    current = np.full(len(target), base)
    trees = []
    for _ in range(RESIDUAL_STAGES):
        rows = rng.random(len(target)) < 0.9
        tree = DecisionTreeRegressor(max_depth=2, monotonic_cst=LENGTHS_NEVER_LOWER, random_state=0)
        tree.fit(features[rows], (target - current)[rows])
        current += RESIDUAL_RATE * tree.predict(features)
        trees.append(tree)
    return portable.export_trees(base, RESIDUAL_RATE, trees)


def _predict_residual(model: dict | None, features: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.log(portable.predict(model, features)) if model else np.zeros(len(features))


def _mape(predicted: np.ndarray, actual: np.ndarray) -> float:
    import numpy as np

    return float(np.mean(np.abs(predicted / actual - 1)))


def parts_from(values: dict[str, float], mode: str) -> Parts:
    if mode == "request":
        return Parts(values["latency_s"], 0.0, values["power_w"], values["power_w"])
    return Parts(values["prefill_s"], values["decode_step_s"], values["prefill_w"], values["decode_w"])


def _per_request_errors(data: list[dict], rows: list, predicted: dict[str, np.ndarray],
                        mode: str) -> tuple[dict[str, float], dict[str, float]]:
    """Errors of latency, energy and power per request built from predicted parts.

    Returns MAPE per trial, MAPE of each configuration's mean (`… config mean`: what the
    advisor predicts is a configuration's expected cost, which a single noisy trial
    misses by its own noise too), and the 90 % quantile of |log(predicted / actual)| per
    trial that sets the intervals (a log interval never goes below zero).
    """
    import numpy as np

    logs: dict[str, list[float]] = {"latency_s": [], "energy_j": [], "avg_power_w": []}
    pairs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for i, t in enumerate(data):
        config, workload = rows[i]
        values = {p: float(v[i]) for p, v in predicted.items()}
        gen = workload.gen_tokens if mode == "phases" else 1
        d = derive(parts_from(values, mode), gen, config.batch_size)
        latency, energy = t["e2e_ms"] / 1e3, t["energy_j"] / config.batch_size
        actual = {"latency_s": latency, "energy_j": energy, "avg_power_w": energy * config.batch_size / latency}
        for quantity, value in actual.items():
            logs[quantity].append(math.log(d[quantity] / value))
            pairs.setdefault((quantity, str(t.get("config_id"))), []).append((d[quantity], value))
    mape = {k: float(np.mean(np.abs(np.expm1(v)))) for k, v in logs.items()}
    for quantity in logs:
        means = [np.mean(pair, axis=0) for (q, _), pair in pairs.items() if q == quantity]
        mape[f"{quantity} config mean"] = float(np.mean([abs(p / a - 1) for p, a in means]))
    widths = {k: float(np.quantile(np.abs(v), INTERVAL_QUANTILE)) for k, v in logs.items()}
    widths["j_per_token"] = widths["energy_j"]
    widths["edp_js"] = widths["energy_j"] + widths["latency_s"]
    return mape, widths


def _ranges(data: list[dict], rows: list) -> dict:
    per_config: dict[str, dict] = {}
    for t, (config, workload) in zip(data, rows):
        entry = per_config.setdefault(config.key(), {"prompt": [workload.prompt_tokens] * 2,
                                                     "gen": [workload.gen_tokens] * 2, "points": []})
        for key, value in (("prompt", workload.prompt_tokens), ("gen", workload.gen_tokens)):
            entry[key] = [min(entry[key][0], value), max(entry[key][1], value)]
        if [workload.prompt_tokens, workload.gen_tokens] not in entry["points"]:
            entry["points"].append([workload.prompt_tokens, workload.gen_tokens])
    prompts = [w.prompt_tokens for _, w in rows]
    gens = [w.gen_tokens for _, w in rows]
    return {"prompt": [min(prompts), max(prompts)], "gen": [min(gens), max(gens)], "per_config": per_config}
