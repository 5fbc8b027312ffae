"""Prediction from a calibration (this host's fit) or a spec prior: the coefficients alone (numpy only
where a residual model was kept)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from . import portable
from .features import Config, Parts, Workload, derive, kernel_seconds_per_flop
from .fit import Fit, coefficient, columns_of, design, parts_from, residual_features

# Columns that need a device the calibration must have seen; the rest are overheads that may be 0.
_DEVICE_COLUMNS = ("gpu_", "weight_uploads", "split_steps", "cpu_")

MEASURED, CALIBRATED, SPEC = "measured here", "calibrated here", "spec prior only"


class NotCalibrated(Exception):
    """The configuration needs a device or term this calibration never saw."""


@dataclass
class Basis:
    """What a prediction rests on and how wide its interval is (log half-widths per quantity)."""

    coefficients: dict[str, dict[str, float]]
    residuals: dict[str, dict]
    mode: str
    name: str
    widths: dict[str, float]
    why: list[str] = field(default_factory=list)
    kernels: dict = field(default_factory=dict)  # the host's kernel probe (none for a spec prior)
    # part -> coefficient sets that fit the trials as well as `coefficients` (fit.equally_good)
    alternatives: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def host_basis(fit: Fit, name: str, widen: float = 1.0, why: list[str] | None = None, extra: float = 0.0) -> Basis:
    """This host's calibration; intervals from its held-out errors, times `widen`, plus `extra` log width."""
    widths = fit.intervals["measured here" if name == MEASURED else "calibrated here"]
    return Basis(fit.coefficients, fit.residuals, fit.mode, name,
                 {k: v * widen + extra for k, v in widths.items()}, why or [], fit.kernels, fit.alternatives)


def kernel_spread(fit: Fit) -> float:
    """Half the log range of the measured kernels' compute constants: how far an unmeasured type's speed
    may fall from the one it borrows (here Q4_0's and Q4_1's prefill differ fourfold)."""
    spreads = []
    for part in fit.coefficients.values():
        for column in {k.split("@")[0] for k in part if "@" in k}:
            values = [v for k, v in part.items() if k.startswith(f"{column}@") and v > 0]
            if len(values) > 1:
                spreads.append(math.log(max(values) / min(values)) / 2)
    return max(spreads, default=math.log(2) / 2)  # one type measured: assume up to twice as fast or slow


def part_value(basis: Basis, config: Config, workload: Workload, part: str) -> float:
    """One part (seconds or watts) on the configuration's physical columns: the middle (geometric) of what
    the equally good calibrations predict, so a split the trials cannot decide is never decided by the solver."""
    return _middle(part_values(basis, config, workload, part))


def _middle(values: list[float]) -> float:
    return math.sqrt(min(values) * max(values))


def part_values(basis: Basis, config: Config, workload: Workload, part: str) -> list[float]:
    """The part under the basis's coefficients and under each equally good alternative set."""
    x = design(config, workload, part, basis.kernels)
    if any(math.isnan(v) for v in x):
        raise NotCalibrated("its thread count is unknown")
    sets = [basis.coefficients[part], *basis.alternatives.get(part, [])]
    values = [_dot(basis, config, part, x, coefficients) for coefficients in sets]
    if part in basis.residuals:
        factor = portable.predict_one(basis.residuals[part], residual_features(config, workload))
        values = [v * factor for v in values]
    return [max(v, 1e-9) for v in values]


def _dot(basis: Basis, config: Config, part: str, x: list[float], coefficients: dict[str, float]) -> float:
    value = 0.0
    for column, work in zip(columns_of(part), x):
        factor = coefficient(coefficients, column, config.model.quant)
        bare = column.split(":")[-1]
        if work and factor is None and bare.startswith(_DEVICE_COLUMNS) and basis.name != SPEC:
            device = "GPU" if "gpu" in bare or bare in ("weight_uploads", "split_steps") else "CPU"
            raise NotCalibrated(f"the {device} was never measured on this host ({part}: {bare})")
        value += (factor or 0.0) * work
    return value


def parts(basis: Basis, config: Config, workload: Workload) -> Parts:
    return parts_from({part: part_value(basis, config, workload, part) for part in basis.coefficients}, basis.mode)


def predict(basis: Basis, config: Config, workload: Workload,
            with_intervals: bool = True) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(values, 90 % intervals) per request; intervals are multiplicative, so never below zero.

    An interval spans every calibration the trials cannot tell apart (Basis.alternatives), each
    widened by the held-out error, and the value is their middle: where the trials never varied what
    the request changes, the answer says so by its width rather than by the solver's arbitrary choice.
    """
    spans = {part: part_values(basis, config, workload, part) for part in basis.coefficients}
    # request mode predicts whole requests (no decode step time), so per token is still per generated token
    values = derive(parts_from({part: _middle(v) for part, v in spans.items()}, basis.mode), workload.gen_tokens,
                    config.batch_size)
    if not with_intervals:
        return values, {}
    low, high = dict(values), dict(values)
    for corner in itertools.product(*({min(v), max(v)} for v in spans.values())):
        other = derive(parts_from(dict(zip(spans, corner)), basis.mode), workload.gen_tokens, config.batch_size)
        for quantity, value in other.items():
            low[quantity], high[quantity] = min(low[quantity], value), max(high[quantity], value)
    intervals = {}
    for quantity, value in values.items():
        width = _width(basis, quantity)
        intervals[quantity] = [low[quantity] * math.exp(-width), high[quantity] * math.exp(width)]
    return values, intervals


def _width(basis: Basis, quantity: str) -> float:
    """The log half-width of a quantity's held-out error (J/token and EDP have none of their own: energy's)."""
    return basis.widths.get(quantity, basis.widths.get("energy_j", 0.0))


def ambiguity(values: dict[str, float], intervals: dict[str, list[float]], basis: Basis, quantity: str) -> float:
    """How far (a factor ≥ 1) the calibrations the trials cannot tell apart reach from the point prediction."""
    width = _width(basis, quantity)
    low, high = intervals[quantity]
    return max(high * math.exp(-width) / values[quantity], values[quantity] / (low * math.exp(width)))


def effective_rates(basis: Basis, threads: int, quant: str = "") -> dict[str, float]:
    """The calibration in words: effective bandwidth, compute and overheads at a thread count."""
    c = basis.coefficients
    rates = {}
    prefill, decode = c.get("prefill_s", {}), c.get("decode_step_s", {})
    per_byte = decode.get("cpu_weight_bytes/thread", 0) / threads + decode.get("cpu_weight_bytes", 0)
    probed = kernel_seconds_per_flop(basis.kernels, quant, 64, threads) if prefill.get("cpu_kernel_s") else None
    per_flop = (prefill["cpu_kernel_s"] * probed if probed else
                (coefficient(prefill, "cpu_flops/thread", quant) or 0) / threads + prefill.get("cpu_flops", 0))
    if per_byte:
        rates["cpu decode bandwidth GB/s"] = 1e-9 / per_byte
    if per_flop:
        rates["cpu prefill compute GFLOP/s"] = 1e-9 / per_flop
    if decode.get("gpu_weight_bytes"):
        rates["gpu decode bandwidth GB/s"] = 1e-9 / decode["gpu_weight_bytes"]
    gpu_per_flop = coefficient(prefill, "gpu_flops", quant)
    if gpu_per_flop:
        rates["gpu prefill compute GFLOP/s"] = 1e-9 / gpu_per_flop
    for device in ("cpu", "gpu"):
        if decode.get(f"{device}_step"):
            rates[f"{device} decode step overhead ms"] = decode[f"{device}_step"] * 1e3
    for phase in ("prefill_w", "decode_w"):
        if phase in c:
            rates[f"{phase[:-2]} idle+static W"] = c[phase].get("fixed", 0.0)
            if c[phase].get("cpu_threads"):
                rates[f"{phase[:-2]} W per busy thread"] = c[phase]["cpu_threads"]
    return rates

