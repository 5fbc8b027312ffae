"""Recommendation: predict every candidate for the request, reject what cannot run or does not fit, rank.

Candidates are the configurations measured on this host, moved to the request's batch
size or thread count when asked, plus what-if ones: another GGUF (`--model`), rungs of
the quantization ladder (`--quant`), or a device from the spec table (`--hardware`).
Every prediction names its basis: measured here, calibrated here, or spec prior only.

The power budget is compared with the predicted average power of the request, which is
the sum over the devices the trials measured (CPU packages and DRAM, or the CPU
estimate, plus GPUs; or the wall meter or the battery alone when one was used).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, Sequence

from energytui.engine.errors import UserError
from energytui.engine.manifest import MAX_SEQUENCES, MAX_THREADS

from . import hardware, sensitivity
from .features import QUANT_BITS, Config, ModelShape, Workload
from .fit import Fit
from .predict import (CALIBRATED, MEASURED, SPEC, Basis, NotCalibrated, ambiguity, host_basis, kernel_spread,
                      predict)

# What a predicted energy rests on, by the weakest source tag of the trials it learned from.
PREDICTION_BASIS = {"counter": "from energy counters", "integrated": "from integrated power",
                    "estimated": "ESTIMATED energy", "unknown": "energy of UNKNOWN method"}
OBJECTIVES = {"energy": "energy_j", "edp": "edp_js", "latency": "latency_s"}
_POWER_UNITS = {"w": 1.0, "kw": 1e3, "mw": 1e-3}  # any case, but a capital M is mega (MW), not milli
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "min": 60.0}
MAX_BUDGET_W = 100_000.0  # a power budget above 100 kW is a typo, not a desktop
MAX_REQUEST_TOKENS = 1 << 20  # a million tokens: beyond the context of any model energytui runs
UNMEASURED_WIDEN = 1.5  # intervals for lengths, models or quantizations never measured in this configuration
MEASURED_NEAR = 0.1  # a request within 10 % of a measured prompt and generation length counts as measured
AMBIGUOUS = 1.1  # equally good calibrations reaching 10 % from the prediction are named in its caveats
MEMORY_HEADROOM = 0.9  # the OS and the rest of the machine keep a tenth
TIE = 1e-9  # relative: predictions equal to float rounding are equal (one more bit must not decide)


def exceeds(value: float, limit: float) -> bool:
    return value > limit * (1 + TIE)


def rounded_up(value: float, digits: int = 3) -> str:
    """`value` rounded up to `digits` significant digits: a limit printed so always admits the value."""
    if not value > 0 or not math.isfinite(value):
        return f"{value:.{digits}g}"
    exponent = math.floor(math.log10(value))
    step = 10.0 ** (exponent - digits + 1)
    return f"{math.ceil(value * (1 - TIE) / step) * step:.{max(0, digits - 1 - exponent)}f}"


def parse_power(text: str) -> float:
    """'50W', '50', '0.05kW', '500mW' → watts ('1MW' is a megawatt, and refused as one)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(kW|W|mW|MW)?\s*", str(text), re.IGNORECASE)
    unit = (match.group(2) or "W") if match else "W"
    factor = 1e6 if unit[0] == "M" else _POWER_UNITS[unit.lower()]
    watts = float(match.group(1)) * factor if match else 0.0
    if not 0 < watts <= MAX_BUDGET_W:
        raise UserError(f"--budget {text!r}: give a positive power like 50W, 50 or 0.05kW (at most 100kW)")
    return watts


def parse_duration(text: str) -> float:
    """'5s', '500ms', '5', '1min' → seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|min)?\s*", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--latency {text!r}: give a positive duration like 5s, 500ms or 5")
    return float(match.group(1)) * _TIME_UNITS[(match.group(2) or "s").lower()]


@dataclass
class Request:
    gen_tokens: int
    prompt_tokens: int = 128
    budget_w: float | None = None
    latency_s: float | None = None
    objective: str = "energy"
    batch: int | None = None
    threads: int | None = None
    model: str | None = None
    quants: list[str] = field(default_factory=list)
    hardware: str | None = None

    def check(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UserError(f"--objective {self.objective!r}: choose energy, edp or latency")
        for flag, value, most, what in (
                ("--tokens", self.gen_tokens, MAX_REQUEST_TOKENS, "tokens: beyond any model's context"),
                ("--prompt-tokens", self.prompt_tokens, MAX_REQUEST_TOKENS, "tokens: beyond any model's context"),
                ("--batch", self.batch, MAX_SEQUENCES, "sequences: llama.cpp decodes at most that many together"),
                ("--threads", self.threads, MAX_THREADS, "threads")):
            if value is not None and value < 1:
                raise UserError(f"{flag} {value}: give a whole number ≥ 1")
            if value is not None and value > most:
                raise UserError(f"{flag} {value}: more than {most:,} {what}; give a smaller number")
        for flag, text in (("--model", self.model), ("--hardware", self.hardware)):
            if text is not None and not text.strip():
                raise UserError(f"{flag} '': empty; give a name, or leave {flag} out")
        for quant in self.quants:
            if quant not in QUANT_BITS:
                raise UserError(f"--quant {quant!r}: choose from {', '.join(QUANT_BITS)}")
        if self.hardware:
            hardware.device(self.hardware)  # an unknown name is refused with close matches


@dataclass
class Prediction:
    config: dict
    label: str
    basis: str
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
    changes: list[str]  # what would change the answer
    notes: list[str]
    model: dict  # what the calibration learned from and its held-out errors
    static_power: dict | None = None  # on ESTIMATED energy: does the answer hold across the static share?

    def as_json(self) -> dict:
        return asdict(self)


# --- candidates ----------------------------------------------------------------------------------

def candidates(fit: Fit, req: Request, what_if_models: list[ModelShape]) -> list[tuple[Config, Basis]]:
    """Every configuration to predict, each with the basis its prediction rests on."""
    measured = fit.config_objects()
    configs = measured
    if req.model:
        configs = [c for c in measured if c.model.matches(req.model)]
        if not configs:
            if not what_if_models:
                raise UserError(f"--model {req.model!r}: not measured on this host and not a registry name or GGUF "
                                f"path; measured: {', '.join(fit.models_seen)} (for a quantization never measured, "
                                "use --quant)")
            configs = _unique([replace(c, model=m) for c in measured for m in what_if_models])
    configs = configs + [replace(c, model=c.model.at_quant(q)) for c in configs for q in req.quants
                         if q != c.model.quant]
    if req.batch:
        configs = [replace(c, batch_size=req.batch) for c in configs]
    if req.threads:
        configs = [replace(c, threads=req.threads) if c.gpu_share < 1 else c for c in configs]
    configs = _unique(configs)
    if req.hardware:
        return _spec_candidates(configs, req, req.hardware)
    return [(c, basis_for(fit, c, req)) for c in configs]


def _unique(configs: list[Config]) -> list[Config]:
    return list({c.key(): c for c in configs}.values())


def basis_for(fit: Fit, config: Config, req: Request) -> Basis:
    """Measured here when this configuration ran at these lengths (within MEASURED_NEAR); calibrated here
    otherwise, with wider intervals where it goes beyond what the calibration saw."""
    measured = fit.ranges["per_config"].get(config.key())
    if measured is not None:
        outside = _outside(measured, req)
        if outside:
            return host_basis(fit, CALIBRATED, UNMEASURED_WIDEN, outside)
        if any(_near(prompt, req.prompt_tokens) and _near(gen, req.gen_tokens) for prompt, gen in measured["points"]):
            return host_basis(fit, MEASURED)
        points = sorted(measured["points"])
        ran = ", ".join(f"{prompt}+{gen}" for prompt, gen in points[:6]) + (", …" if len(points) > 6 else "")
        return host_basis(fit, CALIBRATED, why=[f"this configuration ran at other lengths (prompt+generated: {ran})"])
    beyond = _beyond_calibration(fit, config) + _outside(fit.ranges, req)
    probed = config.model.quant in fit.kernels  # the probe timed its kernel: no family guess to widen for
    new_kernel = kernel_spread(fit) if config.model.quant not in fit.quants and not probed else 0.0
    return host_basis(fit, CALIBRATED, UNMEASURED_WIDEN if beyond else 1.0, beyond or ["configuration not measured"],
                      extra=new_kernel)


def _near(measured: int, asked: int) -> bool:
    return abs(asked - measured) <= MEASURED_NEAR * measured


def _beyond_calibration(fit: Fit, config: Config) -> list[str]:
    seen = fit.config_objects()
    reasons = []
    if config.model.quant not in fit.quants:
        kernel = ("its kernel timed by this host's kernel probe" if config.model.quant in fit.kernels
                  else "its kernel speed borrowed from its kernel family")
        reasons.append(f"{config.model.quant} was never measured here ({kernel})")
    elif config.model.path not in {c.model.path for c in seen}:
        reasons.append(f"{config.model.name} was never run here")
    for name, value, values in (("batch", config.batch_size, [c.batch_size for c in seen]),
                                ("threads", config.threads, [c.threads for c in seen if c.threads])):
        if value and values and not min(values) <= value <= max(values):
            measured = f"only {name} {values[0]} was" if min(values) == max(values) else \
                f"{name} {min(values)}–{max(values)} were"
            reasons.append(f"{name} {value}: {measured} measured here")
    return reasons


def _outside(measured: dict, req: Request) -> list[str]:
    flags = []
    for name, value, (low, high) in (("prompt", req.prompt_tokens, measured["prompt"]),
                                     ("generated", req.gen_tokens, measured["gen"])):
        if not low <= value <= high:
            span = f"the {low} measured" if low == high else f"the measured {low}–{high}"
            flags.append(f"{value} {name} tokens is outside {span}")
    return flags


def _spec_candidates(configs: list[Config], req: Request, device_name: str) -> list[tuple[Config, Basis]]:
    dev = hardware.device(device_name)
    coefficients = hardware.prior_coefficients(dev)
    width = hardware.prior_interval()
    basis = Basis(coefficients, {}, "phases", SPEC, {q: width for q in ("latency_s", "energy_j", "j_per_token",
                                                                         "avg_power_w", "edp_js")},
                  [f"{dev.title} from config/hardware.yaml; " + "; ".join(v[1] for v in hardware.ASSUMPTIONS.values())])
    models = {c.model.path: c.model for c in configs}.values()
    out = []
    for model in models:
        cpu = dev.backend == "cpu"
        out.append((Config(host_id=f"spec:{dev.name}", build="cpu" if cpu else "gpu", backend=dev.backend,
                           threads=(req.threads or dev.cores) if cpu else None,
                           gpu_layers=0 if cpu else model.n_layers, n_batch=512, batch_size=req.batch or 1,
                           model=model, device=dev.name), basis))
    return out


# --- physical limits -----------------------------------------------------------------------------

def limits(config: Config, req: Request, fit: Fit) -> list[str]:
    """Reasons this configuration cannot run the request at all (never ranked)."""
    m, reasons = config.model, []
    context = req.prompt_tokens + req.gen_tokens
    if m.n_ctx_train and context > m.n_ctx_train:
        reasons.append(f"cannot run: {req.prompt_tokens} + {req.gen_tokens} tokens exceeds {m.name}'s trained "
                       f"context of {m.n_ctx_train}")
    # a host GPU holds its share of the layers: their weights and their part of the KV cache (and logits)
    share = config.gpu_share if config.gpu_share > 0 and not config.device else 1.0
    weights = m.weight_bytes * share
    per_sequence = (m.kv_bytes_per_token * context + 4 * m.n_vocab) * share
    need_gb = (weights + per_sequence * config.batch_size) / 1024**3
    memory, where = _memory_gb(config, fit)
    if memory and need_gb > memory * MEMORY_HEADROOM:
        fits = int((memory * MEMORY_HEADROOM * 1024**3 - weights) // per_sequence) if per_sequence else 0
        most = f"at most batch {fits} fits" if fits >= 1 else "not even the weights fit"
        reasons.append(f"cannot run: needs {need_gb:.1f} GiB (weights + KV cache for batch {config.batch_size}) "
                       f"but {where} has {memory:.0f} GiB; {most}")
    device = hardware.device(config.device) if config.device else None
    cores, machine = (device.cores, device.title) if device else (fit.host.get("host_cores"), "a host")
    if config.threads and cores and config.threads > cores and config.gpu_share < 1:
        reasons.append(f"cannot run well: {config.threads} threads on {machine} with {cores} CPUs")
    return reasons


def _memory_gb(config: Config, fit: Fit) -> tuple[float | None, str]:
    if config.device:
        dev = hardware.device(config.device)
        return dev.memory_gb, dev.title
    if config.gpu_share == 0:
        return fit.host.get("host_ram_gb"), "this host's RAM"
    return fit.host.get("host_gpu_memory_gb"), "this host's GPU memory"


# --- advice --------------------------------------------------------------------------------------

def advise(fit: Fit, req: Request, gpu_trials: bool, what_if_models: Sequence[ModelShape] = ()) -> Advice:
    req.check()
    key = OBJECTIVES[req.objective]
    pool = candidates(fit, req, list(what_if_models))
    predictions = [_predict(fit, config, basis, req) for config, basis in pool]
    _refuse_if_nothing_can_run(predictions, req)
    feasible = ranked([p for p in predictions if not p.rejected], key)
    rejected = sorted((p for p in predictions if p.rejected),
                      key=lambda p: (not p.values, p.values.get(key, math.inf)))
    runnable = [p for p in rejected if p.values and not _cannot_run(p)]
    closest, needs = (None, None) if feasible or not runnable else _closest(runnable, req)
    static_power = _static_power_check(fit, req, pool, predictions, feasible[0] if feasible else None)
    return Advice(
        request=asdict(req), recommendation=feasible[0] if feasible else None, alternatives=feasible[1:4],
        rejected=rejected, closest=closest, needs=needs, changes=changes(fit, req, pool, feasible, rejected),
        notes=_notes(fit, gpu_trials, predictions, req),
        model={"n_trials": fit.n_trials, "n_configs": fit.n_configs, "mode": fit.mode, "kind": "physical",
               "imported_trials": fit.imported_trials, "held_out_mape": fit.held_out_mape,
               "residual_models": sorted(fit.residuals), "energy_tags": fit.energy_tags,
               "fitted_at": fit.created_at, "host_id": fit.host_id, "excluded": fit.excluded,
               "kernel_probe": sorted(fit.kernels)},
        static_power=static_power,
    )


def ranked(predictions: list[Prediction], key: str) -> list[Prediction]:
    """Best first by `key`; values equal within TIE keep the candidates' order (the same wherever it is asked)."""
    position = {id(p): i for i, p in enumerate(predictions)}
    out: list[Prediction] = []
    tied: list[Prediction] = []
    for p in sorted(predictions, key=lambda p: p.values[key]):
        if tied and exceeds(p.values[key], tied[0].values[key]):
            out += sorted(tied, key=lambda q: position[id(q)])
            tied = []
        tied.append(p)
    return out + sorted(tied, key=lambda q: position[id(q)])


def _static_power_check(fit: Fit, req: Request, pool: list[tuple[Config, Basis]], predictions: list[Prediction],
                        best: Prediction | None) -> dict | None:
    """On ESTIMATED energy, whether the recommendation holds across the plausible static power
    (advisor/sensitivity.py); None for measured energy, a spec prior, or no recommendation."""
    if best is None or req.hardware or "estimated" not in fit.energy_tags:
        return None
    from energytui.engine.telemetry.cpu_estimate import load_static_power

    table = load_static_power()
    contenders = [(p.label, p.values, config, basis) for (config, basis), p in zip(pool, predictions)
                  if p.values and all(r.startswith("over budget") for r in p.rejected)]
    return sensitivity.check(fit.cpu_estimate, (table.low, table.high, table.range_source), best.label, contenders,
                             Workload(req.prompt_tokens, req.gen_tokens), OBJECTIVES[req.objective], req.budget_w)


def _predict(fit: Fit, config: Config, basis: Basis, req: Request, with_intervals: bool = True) -> Prediction:
    reasons = limits(config, req, fit)
    values: dict[str, float] = {}
    intervals: dict[str, list[float]] = {}
    caveats: list[str] = []
    try:
        values, intervals = predict(basis, config, Workload(req.prompt_tokens, req.gen_tokens), with_intervals)
    except NotCalibrated as exc:
        reasons.append(f"cannot predict: {exc}")
    if intervals and basis.name != SPEC:
        caveats = _ambiguity_caveat(values, intervals, basis)
    if values and req.budget_w is not None and exceeds(values["avg_power_w"], req.budget_w):
        reasons.append(f"over budget: {rounded_up(values['avg_power_w'])} W > {req.budget_w:g} W")
    if values and req.latency_s is not None and exceeds(values["latency_s"], req.latency_s):
        reasons.append(f"over the latency limit: {rounded_up(values['latency_s'])} s > {req.latency_s:g} s")
    extrapolation = [w for w in basis.why if basis.name != MEASURED] + caveats
    return Prediction(config.as_dict(), config.label(), basis.name, values, intervals, extrapolation, reasons)


def _ambiguity_caveat(values: dict[str, float], intervals: dict[str, list[float]], basis: Basis) -> list[str]:
    """A line where calibrations that fit the trials equally well disagree about this request."""
    reach = {q: ambiguity(values, intervals, basis, q) for q in ("latency_s", "energy_j")}
    if max(reach.values()) < AMBIGUOUS:
        return []
    return ["the trials never separated what this request changes (e.g. a thread count, weight size or length "
            "they did not vary): calibrations that fit them equally well differ here by up to "
            + " and ".join(f"×{reach[q]:.2f} in {name}" for q, name in (("latency_s", "latency"),
                                                                       ("energy_j", "energy")))
            + "; the interval spans them all"]


def _cannot_run(p: Prediction) -> bool:
    return any(r.startswith("cannot") for r in p.rejected)


def _refuse_if_nothing_can_run(predictions: list[Prediction], req: Request) -> None:
    context = [p for p in predictions if any("trained context" in r for r in p.rejected)]
    if predictions and len(context) == len(predictions):
        reason = next(r for r in context[0].rejected if "trained context" in r).removeprefix("cannot run: ")
        raise UserError(f"--prompt-tokens {req.prompt_tokens} --tokens {req.gen_tokens}: {reason}; "
                        "shorten the prompt or the generation")


def _closest(rejected: list[Prediction], req: Request) -> tuple[Prediction, str]:
    """The candidate that misses by the smallest factor, and what it would take."""
    def miss(p: Prediction) -> float:
        over_power = p.values["avg_power_w"] / req.budget_w if req.budget_w else 0
        over_time = p.values["latency_s"] / req.latency_s if req.latency_s else 0
        return max(over_power, over_time)

    best = min(rejected, key=miss)
    needs = []
    if req.budget_w is not None and exceeds(best.values["avg_power_w"], req.budget_w):
        needs.append(f"a budget of at least {rounded_up(best.values['avg_power_w'])} W")
    if req.latency_s is not None and exceeds(best.values["latency_s"], req.latency_s):
        needs.append(f"a latency limit of at least {rounded_up(best.values['latency_s'])} s")
    return best, " and ".join(needs)


# --- what would change the answer ----------------------------------------------------------------

Length = Literal["prompt_tokens", "gen_tokens"]  # the request's lengths that changes() varies


def changes(fit: Fit, req: Request, pool: list[tuple[Config, Basis]], feasible: list[Prediction],
            rejected: list[Prediction]) -> list[str]:
    """One line each: the prompt and generation lengths where another configuration would win, and the
    power budgets at which the answer changes."""
    if not feasible:
        return []
    lines = []
    best = feasible[0]
    lengths: tuple[tuple[Length, str], ...] = (("prompt_tokens", "prompt tokens"), ("gen_tokens", "generated tokens"))
    for field_name, noun in lengths:
        line = _crossover(fit, req, pool, field_name, noun, best.label)
        if line:
            lines.append(line)
    return lines + _budget_changes(req, best, feasible, rejected)


def _budget_changes(req: Request, best: Prediction, feasible: list[Prediction],
                    rejected: list[Prediction]) -> list[str]:
    key, power = OBJECTIVES[req.objective], best.values["avg_power_w"]
    lines = []
    only_budget = ranked([p for p in rejected if p.values and all(r.startswith("over budget") for r in p.rejected)
                          and exceeds(best.values[key], p.values[key])], key)
    if only_budget:  # the smallest budget that improves the answer, then the one that gives the best of all
        least = min(p.values["avg_power_w"] for p in only_budget)
        nearest = next(p for p in only_budget if not exceeds(p.values["avg_power_w"], least))
        for better in [nearest] + [only_budget[0]] * (only_budget[0] is not nearest):
            gain = 1 - better.values[key] / best.values[key]
            lines.append(f"a budget of {rounded_up(better.values['avg_power_w'])} W would allow {better.label} "
                         f"({gain:.0%} lower {req.objective})")
    lower = [p for p in feasible if p.values["avg_power_w"] < 0.97 * power]
    if lower:
        lines.append(f"under {power:.3g} W the answer becomes {min(lower, key=lambda p: p.values[key]).label}")
    else:
        lines.append(f"under {power:.3g} W nothing fits: the recommendation draws the least power")
    return lines


def _winner(fit: Fit, req: Request, pool: list[tuple[Config, Basis]]) -> str | None:
    feasible = [p for p in (_predict(fit, config, basis, req, with_intervals=False) for config, basis in pool)
                if not p.rejected]
    return ranked(feasible, OBJECTIVES[req.objective])[0].label if feasible else None


def _with_length(req: Request, field_name: Length, tokens: int) -> Request:
    return replace(req, prompt_tokens=tokens) if field_name == "prompt_tokens" else replace(req, gen_tokens=tokens)


def _crossover(fit: Fit, req: Request, pool: list[tuple[Config, Basis]], field_name: Length, noun: str,
               best: str) -> str | None:
    """The nearest length, above and below the request, where the winner changes (bisected to the token)."""
    limit = min((c.model.n_ctx_train for c, _ in pool if c.model.n_ctx_train), default=8192)
    current = getattr(req, field_name)
    other = req.gen_tokens if field_name == "prompt_tokens" else req.prompt_tokens
    for direction in (2.0, 0.5):
        low, value = current, current
        while 1 <= value * direction and value * direction + other <= limit:
            value = max(int(value * direction), 1)
            winner = _winner(fit, _with_length(req, field_name, value), pool)
            if winner and winner != best:
                lo, hi = sorted((low, value))  # the request's winner holds at one end, not at the other
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    same = _winner(fit, _with_length(req, field_name, mid), pool) == best
                    lo, hi = (mid, hi) if same == (direction > 1) else (lo, mid)
                edge = hi if direction > 1 else lo  # the nearest length where it no longer wins
                winner = _winner(fit, _with_length(req, field_name, edge), pool) or "nothing that fits"
                if edge == 1:
                    return f"{winner} wins at 1 {noun[:-1]}"
                return f"{winner} wins {'from' if direction > 1 else 'at or below'} {edge} {noun}"
            low = value
            if value == 1:
                break
    return None


def _notes(fit: Fit, gpu_trials: bool, predictions: list[Prediction], req: Request) -> list[str]:
    notes = []
    if "estimated" in fit.energy_tags and not req.hardware:
        notes.append("energy and power figures rest on ESTIMATED CPU power (static + busy threads × dynamic power "
                     "from TDP, see `energytui doctor`), not on a meter")
    if req.hardware:
        notes.append(f"what-if on {req.hardware}: spec prior only (config/hardware.yaml and stated assumptions), "
                     f"nothing measured; intervals ±{hardware.SPEC_PRIOR_FACTOR - 1:.0%} or wider; power is the "
                     "device's own")
    elif not gpu_trials:
        notes.append("no GPU trials on this host: GPU options are what-if only (`--hardware NAME` from "
                     "config/hardware.yaml), or run config/manifests/gpu-check.yaml on a machine with a GPU")
    elif not any(c.gpu_share > 0 for c in fit.config_objects()):
        notes.append("this host's GPU trials have no usable timings or energy (none is in the calibration), so no "
                     "GPU option was considered: run them again with a GPU power source (`energytui doctor` names it)")
    if predictions and all(p.basis != MEASURED for p in predictions) and not req.hardware:
        notes.append("no candidate was measured at this request: every figure is calibrated here (the physical model "
                     "with this host's constants), with intervals from held-out configurations")
    if fit.imported_trials:
        notes.append(f"{fit.imported_trials} of the trials were imported from logs: whole requests only, prompt "
                     "tokens estimated from characters, energy as the other machine recorded it")
    if fit.steady_trials:
        notes.append(f"{fit.steady_trials} of the trials have energy from steady-state windows (a power source "
                     "slower than a trial): each its share of its window's energy, with no prefill/decode split")
    if (not req.hardware and not fit.host.get("host_gpu_memory_gb")
            and any(p.config["gpu_layers"] or p.config["backend"] == "gpu" for p in predictions)):
        notes.append("this host's GPU memory was not recorded (imported trials, or measured before energytui "
                     "recorded it): whether a batch fits on the GPU was not checked")
    for reason, count in fit.excluded.items():
        notes.append(f"{count} trials left out of the calibration: {reason}")
    shares = fit.cpu_estimate.get("shares", [])
    if len(shares) > 1 and not req.hardware:
        notes.append("the trials' CPU estimates assumed different static shares ("
                     + ", ".join(f"{share:.0%}" for share in shares) + "): the calibration blends them, and the "
                     f"static power check starts from their mean, {fit.cpu_estimate['static_share']:.0%}")
    return notes


# --- text ----------------------------------------------------------------------------------------

def render(advice: Advice) -> str:
    from energytui.engine.telemetry.base import weakest_source

    r = advice.request
    batch = f"batch {r['batch']}" if r["batch"] else "each configuration's measured batch size"
    slo = f", latency ≤ {r['latency_s']:g} s" if r["latency_s"] else ""
    budget = f"budget {r['budget_w']:g} W" if r["budget_w"] is not None else "no power budget"
    weakest = weakest_source(advice.model["energy_tags"])
    tag = f" [{PREDICTION_BASIS[weakest]}]" if weakest and not r["hardware"] else ""
    lines = [f"Request: {r['gen_tokens']} generated tokens after a {r['prompt_tokens']}-token prompt, {batch}, "
             f"{budget}{slo}, minimising {r['objective']}.", ""]
    if advice.recommendation:
        lines += ["Recommended:", *_describe(advice.recommendation, tag)]
    elif advice.rejected and all(_cannot_run(p) for p in advice.rejected):
        lines += ["No configuration can run this request here (each one's reason is under Rejected)."]
    else:
        lines += ["No configuration meets the budget and latency limit."]
        if advice.closest:
            lines += ["Closest:", *_describe(advice.closest, tag), f"  it would need {advice.needs}"]
    if advice.alternatives:
        lines += ["", "Next best:"] + [line for p in advice.alternatives for line in _describe(p, tag, brief=True)]
    if advice.rejected:
        lines += ["", "Rejected:"] + [f"  {p.label}: {'; '.join(p.rejected)}" for p in advice.rejected]
    if advice.static_power:
        lines += ["", f"Static power of the CPU estimate: {advice.static_power['sentence']}."]
    if advice.changes:
        lines += ["", "What would change the answer:"] + [f"  {line}" for line in advice.changes]
    if r["hardware"]:
        return "\n".join(lines + ["", f"Model: physical, spec prior only: {r['hardware']}'s constants from "
                                   "config/hardware.yaml, nothing calibrated on it; intervals ×/÷ "
                                   f"{hardware.SPEC_PRIOR_FACTOR:g} or wider."] + [f"Note: {n}" for n in advice.notes])
    m, e = advice.model, advice.model["held_out_mape"]
    errors = ", ".join(f"{name} {e[key]:.1%} per trial ({e[key + ' config mean']:.1%} on configuration means)"
                       for name, key in (("latency", "latency_s"), ("energy", "energy_j")))
    compute = ("FLOPs × this host's probed kernel time" if m.get("kernel_probe") else "FLOPs ÷ compute")
    lines += ["", f"Model: physical (prefill = {compute}, decode = bytes ÷ bandwidth + kernel time, "
              "power = idle + dynamic), "
              f"calibrated on {m['n_trials']} trials over {m['n_configs']} configurations of host {m['host_id']} "
              f"({m['fitted_at']}); held-out error with whole configurations left out: {errors}. "
              "Intervals cover 90% of held-out errors (`advise --explain` for the parts and constants)."]
    lines += [f"Note: {note}" for note in advice.notes]
    return "\n".join(lines)


def _describe(p: Prediction, tag: str, brief: bool = False) -> list[str]:
    v, i = p.values, p.intervals

    def span(q: str, fmt: str) -> str:
        return f"{v[q]:{fmt}} ({i[q][0]:{fmt}}–{i[q][1]:{fmt}})"

    head = f"  {p.label}  [{p.basis}]"
    if brief:
        return [f"{head}: {span('latency_s', '.2f')} s, {span('energy_j', '.3g')} J{tag} per request"]
    lines = [head, f"    latency          {span('latency_s', '.2f')} s",
             f"    energy/request   {span('energy_j', '.3g')} J{tag}",
             f"    energy/token     {span('j_per_token', '.3g')} J{tag}",
             f"    average power    {span('avg_power_w', '.1f')} W{tag}"]
    lines += [f"    {'basis' if p.basis == SPEC else 'not measured'}: {flag}" for flag in p.extrapolation]
    return lines


def to_json(advice: Advice) -> str:
    import json

    return json.dumps(advice.as_json(), indent=2, allow_nan=False)  # strict JSON for scripts
