"""Prediction from a calibration (this host's fit) or a spec prior: the coefficients alone (numpy only
where a residual model was kept)."""

from __future__ import annotations

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


def host_basis(fit: Fit, name: str, widen: float = 1.0, why: list[str] | None = None, extra: float = 0.0) -> Basis:
    """This host's calibration; intervals from its held-out errors, times `widen`, plus `extra` log width."""
    widths = fit.intervals["measured here" if name == MEASURED else "calibrated here"]
    return Basis(fit.coefficients, fit.residuals, fit.mode, name,
                 {k: v * widen + extra for k, v in widths.items()}, why or [], fit.kernels)


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
    """One part (seconds or watts) from the basis's coefficients on the configuration's physical columns."""
    coefficients = basis.coefficients[part]
    x = design(config, workload, part, basis.kernels)
    if any(math.isnan(v) for v in x):
        raise NotCalibrated("its thread count is unknown")
    value = 0.0
    for column, work in zip(columns_of(part), x):
        factor = coefficient(coefficients, column, config.model.quant)
        bare = column.split(":")[-1]
        if work and factor is None and bare.startswith(_DEVICE_COLUMNS) and basis.name != SPEC:
            device = "GPU" if "gpu" in bare or bare in ("weight_uploads", "split_steps") else "CPU"
            raise NotCalibrated(f"the {device} was never measured on this host ({part}: {bare})")
        value += (factor or 0.0) * work
    if part in basis.residuals:
        value *= portable.predict_one(basis.residuals[part], residual_features(config, workload))
    return max(value, 1e-9)


def parts(basis: Basis, config: Config, workload: Workload) -> Parts:
    return parts_from({part: part_value(basis, config, workload, part) for part in basis.coefficients}, basis.mode)


def predict(basis: Basis, config: Config, workload: Workload) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(values, 90 % intervals) per request; intervals are multiplicative, so never below zero."""
    # request mode predicts whole requests (no decode step time), so per token is still per generated token
    values = derive(parts(basis, config, workload), workload.gen_tokens, config.batch_size)
    intervals = {}
    for quantity, value in values.items():
        width = basis.widths.get(quantity, basis.widths.get("energy_j", 0.0))
        intervals[quantity] = [value * math.exp(-width), value * math.exp(width)]
    return values, intervals


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

