"""The advisor's entry points over the store: which host, which fit (cached or new), advice."""

from __future__ import annotations

import socket

from energytui.engine.errors import UserError
from energytui.engine.store import Store

from .fit import SWEEP_HINT, Fit, data_hash, fit, usable_data


def local_host_id(store: Store) -> str:
    """This machine's host row: same hostname, the one with the latest trial (no llama.cpp import needed)."""
    row = store.db.execute(
        "SELECT h.id FROM hosts h LEFT JOIN trials t ON t.host_id = h.id WHERE h.hostname = ? "
        "GROUP BY h.id ORDER BY MAX(t.id) DESC LIMIT 1", [socket.gethostname()]).fetchone()
    if row is None:
        raise UserError(f"--db {store.path}: no trials from this host ({socket.gethostname()}) yet; {SWEEP_HINT}", 1)
    return row[0]


def check_host(store: Store, host_id: str) -> str:
    if not store.db["hosts"].count_where("id = ?", [host_id]):
        known = ", ".join(r["id"] for r in store.db["hosts"].rows) or "none"
        raise UserError(f"--host {host_id}: unknown host id; known: {known}")
    return host_id


def current_fit(store: Store, host_id: str, refit: bool = False) -> tuple[Fit, bool]:
    """The stored fit if its data is unchanged (and no refit asked), else a new one; (fit, refitted)."""
    trials = store.trials("t.host_id = ?", [host_id])
    digest = data_hash(usable_data(trials))
    latest = store.latest_fit(host_id)
    if latest and latest[0] == digest and not refit:
        return Fit.from_json(latest[1]), False
    new = fit(trials, host_id)
    store.save_fit(host_id, new.data_hash, new.to_json())
    return new, True


def has_gpu_trials(store: Store, host_id: str) -> bool:
    return bool(store.db["trials"].count_where("host_id = ? AND status = 'done' AND backend != 'cpu'", [host_id]))


def explain(fit: Fit) -> str:
    mode = "prefill/decode phases" if fit.mode == "phases" else "whole requests (imported logs: no phase split)"
    lines = [f"Fitted {fit.created_at} on {fit.n_trials} done trials with energy, {fit.n_configs} configurations, "
             f"host {fit.host_id}, modelling {mode}; data hash {fit.data_hash[:12]}.",
             f"Models: {', '.join(fit.models_seen)}; prompt tokens {fit.ranges['prompt'][0]}–{fit.ranges['prompt'][1]}, "
             f"generated tokens per sequence {fit.ranges['gen'][0]}–{fit.ranges['gen'][1]}; energy sources: "
             f"{', '.join(fit.energy_tags) or 'none'}.", "",
             "Held-out mean absolute % error (grouped cross-validation: whole configurations left out):"]
    families = sorted({name for scores in fit.cv_mape.values() for name in scores})
    lines.append(f"  {'target':20s}" + "".join(f"{name:>12s}" for name in families) + "   chosen")
    for target, scores in fit.cv_mape.items():
        lines.append(f"  {target:20s}" + "".join(f"{scores[name]:>12.1%}" for name in families)
                     + f"   {fit.families[target]}")
    for quantity in ("latency_s", "energy_j", "avg_power_w"):
        lines.append(f"  {quantity + ' per request':20s}{fit.held_out_mape[quantity]:>12.1%}   (from the chosen parts; "
                     f"90% interval ±{fit.intervals[quantity]:.1%})")
    return "\n".join(lines)
