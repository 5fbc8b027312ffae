"""The advisor's entry points over the store: which host, which fit (cached or new), advice."""

from __future__ import annotations

import math
import socket

from energytui.engine.errors import UserError
from energytui.engine.report import steady_view
from energytui.engine.store import Store

from .features import QUANT_BITS, ModelShape, kernel_seconds_per_flop
from .fit import SWEEP_HINT, Fit, data_hash, fit, usable_data
from .predict import MEASURED, effective_rates, host_basis


def local_host_id(store: Store) -> str:
    """This machine's host row: same hostname, the one with the latest trial (no llama.cpp import needed)."""
    host = store.latest_host(socket.gethostname())
    if host is None:
        raise UserError(f"--db {store.path}: no trials from this host ({socket.gethostname()}) yet; {SWEEP_HINT}", 1)
    return host


def check_host(store: Store, ref: str) -> str:
    """The id of the host `--host` names, by id or by readable name (a fleet worker's)."""
    host_id = store.host_id_of(ref)
    if host_id is None:
        raise UserError(f"--host {ref}: unknown host; known: {', '.join(store.host_refs()) or 'none'}")
    return host_id


def current_fit(store: Store, host_id: str, refit: bool = False) -> tuple[Fit, bool]:
    """The stored fit if its data is unchanged (and no refit asked), else a new one; (fit, refitted)."""
    # a steady window's trials count with their share of its energy (no prefill/decode split: request mode)
    trials = [steady_view(t) for t in store.trials(host_id=host_id)]
    kernels, _ = host_kernels(store, host_id)
    digest = data_hash(usable_data(trials), kernels)
    latest = store.latest_fit(host_id)
    if latest and latest[0] == digest and not refit:
        return Fit.from_json(latest[1]), False
    new = fit(trials, host_id, kernels=kernels)
    store.save_fit(host_id, new.data_hash, new.to_json())
    return new, True


def has_gpu_trials(store: Store, host_id: str) -> bool:
    return bool(store.done_gpu_trials(host_id))


def what_if_models(ref: str | None, fit: Fit) -> list[ModelShape]:
    """A model given by registry name or GGUF path that this host never ran: its shape from the header."""
    if not ref or any(c.model.matches(ref) for c in fit.config_objects()):
        return []
    from energytui.engine.gguf import read_gguf
    from energytui.engine.models import load_registry, looks_like_path, resolve_model

    path = resolve_model(ref)
    if not path.is_file() and not looks_like_path(ref) and ref not in load_registry()[1]:
        return []  # neither a file nor a known name: the caller lists what was measured
    try:
        return [ModelShape.from_gguf(read_gguf(path), name=path.stem)]
    except UserError as exc:
        raise UserError(f"--model: {exc}") from None


def explain(fit: Fit) -> str:
    mode = "prefill/decode phases" if fit.mode == "phases" else "whole requests (imported logs: no phase split)"
    lines = [f"Calibrated {fit.created_at} on {fit.n_trials} done trials with energy, {fit.n_configs} configurations, "
             f"host {fit.host_id}, modelling {mode}; data hash {fit.data_hash[:12]}.",
             f"Models: {', '.join(fit.models_seen)}; "
             f"prompt tokens {fit.ranges['prompt'][0]}–{fit.ranges['prompt'][1]}, "
             f"generated tokens per sequence {fit.ranges['gen'][0]}–{fit.ranges['gen'][1]}; energy sources: "
             f"{', '.join(fit.energy_tags) or 'none'}.", *_estimate_line(fit), "",
             "Held-out mean absolute % error (grouped cross-validation: whole configurations left out):",
             f"  {'part':22s}{'physical':>10s}{'+residual':>11s}   used"]
    for part, scores in fit.residual_cv.items():
        used = "physical + residual model" if part in fit.residuals else "physical"
        lines.append(f"  {part:22s}{scores['physical']:>10.1%}{scores['physical+residual']:>11.1%}   {used}")
    for quantity in ("latency_s", "energy_j", "avg_power_w"):
        width = fit.intervals["calibrated here"][quantity]
        lines.append(f"  {quantity + ' per request':22s}{fit.held_out_mape[quantity]:>10.1%}   per trial; "
                     f"{fit.held_out_mape[quantity + ' config mean']:.1%} on configuration means; "
                     f"90% interval ×/÷ {math.exp(width):.2f}")
    lines += ["", "Calibrated constants:"]
    threads = sorted({c.threads for c in fit.config_objects() if c.threads})
    basis = host_basis(fit, MEASURED)
    for count in threads:
        rates = effective_rates(basis, count)
        rates.pop("cpu prefill compute GFLOP/s", None)
        lines.append(f"  at {count} thread{'s' * (count != 1)}: "
                     + ", ".join(f"{name} {value:.3g}" for name, value in rates.items()))
        compute = {q: effective_rates(basis, count, q).get("cpu prefill compute GFLOP/s") for q in fit.quants}
        lines.append("    cpu prefill compute GFLOP/s by quantization: "
                     + ", ".join(f"{q} {v:.3g}" for q, v in compute.items() if v))
    if fit.kernels:
        lines.append("  kernel probe (llama.cpp's CPU matrix kernels timed on this host; cpu_kernel_s scales them), "
                     "GFLOP/s at 1 / 64 rows:")
        shown = sorted((q for q in fit.kernels if q in fit.quants or q in QUANT_BITS),  # one name per rung
                       key=lambda q: (q not in fit.quants, q))
        for count in sorted({c.threads for c in fit.config_objects() if c.threads} | {1}):
            speeds = {q: [kernel_seconds_per_flop(fit.kernels, q, rows, count) for rows in (1, 64)] for q in shown}
            lines.append(f"    {count} thread{'s' * (count != 1)}: " + ", ".join(
                f"{q} {1e-9 / a:.0f}/{1e-9 / b:.0f}" for q, (a, b) in speeds.items() if a and b))
    for part, coefficients in fit.coefficients.items():
        lines.append(f"  {part}: " + ", ".join(f"{c} {v:.3g}" for c, v in coefficients.items() if v))
    lines.append("  other calibrations that fit the trials as well (their constants at their least and most): "
                 + ", ".join(f"{part} {len(sets)}" for part, sets in fit.alternatives.items())
                 + "; a prediction is their middle and its interval spans them")
    return "\n".join(lines)


def _estimate_line(fit: Fit) -> list[str]:
    """The CPU estimate the trials' energy came from, as their stored method states it."""
    estimate = fit.cpu_estimate
    if not estimate:
        return []
    return [f"CPU estimate (read from {estimate['trials']} trials' energy method): static share "
            f"{estimate['static_share']:.0%} of TDP, {estimate['watts_per_thread']:.3g} W per hardware thread at "
            f"TDP, {estimate['visible_cpus']} visible CPUs."]


def host_kernels(store: Store, host_id: str) -> tuple[dict, str]:
    """This host's kernel probe (engine/kernels.py) and a line saying where it came from. Run once per
    host and llama.cpp version, a few seconds, and stored; another host's trials get none (their kernels
    were never timed), and neither does a probe that cannot run here."""
    version, kernels = store.kernel_rates(host_id)
    if kernels:
        return kernels, f"kernel probe of this host (llama-cpp-python {version})"
    host = store.host_row(host_id) or {}
    if host.get("hostname") != socket.gethostname() or host.get("imported"):
        return {}, "no kernel probe (another host's trials)"
    from importlib.metadata import version as installed

    here = installed("llama_cpp_python")
    if host.get("llama_cpp") != here:
        return {}, (f"no kernel probe (this host's trials ran llama-cpp-python {host.get('llama_cpp')}, "
                    f"{here} is installed)")
    from energytui.engine import kernels as probe
    from energytui.engine.host import build_change
    from energytui.engine.llama_backend import system_info

    build = system_info()
    if host.get("build") not in (None, build):
        return {}, (f"no kernel probe (this host's trials ran another build of llama-cpp-python {here}, "
                    f"{build_change(host['build'], build)})")
    threads = sorted({1, int(host.get("cores") or 1), *store.thread_counts(host_id)})
    try:
        result = probe.probe(list(probe.GGML_TYPES), threads)
    except probe.KernelProbeFailed as exc:
        return {}, f"no kernel probe ({exc}); quantizations never run here borrow their kernel family's speed"
    store.save_kernel_rates(host_id, result["llama_cpp"], result["rates"])  # kept for next time where writable
    return result["rates"], f"kernel probe of this host (llama-cpp-python {result['llama_cpp']}), run now"
