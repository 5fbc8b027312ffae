"""Per-configuration summaries (mean ± stddev over trials), exports and the markdown report."""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass

from .telemetry.base import weakest_source

EXPORT_FIELDS = (
    "trial_id", "run_id", "config_id", "status", "model", "quant", "backend", "threads", "gpu_layers", "n_batch",
    "batch_size", "suite", "prompt_id", "prompt_tokens", "gen_tokens", "ttft_ms", "prefill_tps", "decode_tps",
    "decode_tps_per_seq", "itl_p50_ms", "itl_p95_ms", "e2e_ms", "n_ctx", "max_tokens", "ignore_eos", "temperature",
    "seed", "repetition", "bits_per_weight", "n_params", "host_id", "build", "model_path", "started_at",
    "energy_j", "energy_net_j", "energy_cpu_j", "energy_gpu_j", "prefill_energy_j", "decode_energy_j", "j_per_token",
    "avg_power_w", "peak_power_w", "idle_power_w", "edp_js", "energy_source", "energy_tag", "sample_hz",
    "energy_notes", "energy_method", "imported", "caveats", "error",
)
# How each source tag reads next to a number, so an estimate never passes for a measurement.
TAG_LABELS = {"counter": "measured (counter)", "integrated": "measured (integrated power)", "estimated": "ESTIMATED"}
SUMMARY_METRICS = (
    ("ttft_ms", "TTFT ms"), ("prefill_tps", "prefill tok/s"), ("decode_tps", "decode tok/s"),
    ("itl_p95_ms", "ITL p95 ms"), ("e2e_ms", "e2e ms"),
)
ENERGY_METRICS = (("j_per_token", "J/token", 4), ("avg_power_w", "avg W", 1), ("energy_j", "J/request", 2))


def build_of(trial: dict) -> str | None:
    """How the host's llama.cpp was built: "gpu" (with GPU offload) or "cpu"; None where unknown."""
    flag = trial.get("gpu_build")
    return None if flag is None else ("gpu" if int(flag) else "cpu")


def export_record(trial: dict) -> dict:
    derived = {"trial_id": trial.get("id"), "build": build_of(trial)}
    return {field: derived[field] if field in derived else trial.get(field) for field in EXPORT_FIELDS}


def export_text(trials: list[dict], fmt: str) -> str:
    records = [export_record(t) for t in trials]
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


@dataclass
class Stat:
    mean: float | None
    stdev: float | None
    n: int

    def fmt(self, digits: int = 1) -> str:
        if self.mean is None:
            return "–"
        spread = f" ± {self.stdev:.{digits}f}" if self.stdev is not None else ""
        return f"{self.mean:.{digits}f}{spread}"


def stat(values) -> Stat:
    values = [v for v in values if v is not None]
    if not values:
        return Stat(None, None, 0)
    return Stat(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


def config_label(trial: dict) -> str:
    layers = f" ngl={trial['gpu_layers']}" if trial["backend"] != "cpu" else ""
    threads = trial["threads"] if trial["threads"] is not None else "?"
    build = " gpu-build" if trial["backend"] == "cpu" and build_of(trial) == "gpu" else ""
    chunk = f" nb={trial['n_batch']}" if trial.get("n_batch") else ""
    prompt = trial["suite"] or trial["prompt_id"]
    origin = " (imported)" if trial.get("imported") else ""
    return (f"{trial['run_id']}{origin}: {trial['quant']} {trial['backend']}{build} t={threads}{layers}"
            f"{chunk} B={trial['batch_size']} {prompt}")


def summarise(trials: list[dict]) -> list[dict]:
    """One row per configuration with counts by status and mean ± stddev of done trials."""
    groups: dict[tuple, list[dict]] = {}
    for trial in trials:  # two hosts never merge, even with the same manifest configuration
        groups.setdefault((trial.get("host_id"), trial["config_id"]), []).append(trial)
    rows = []
    for (_host, config_id), members in groups.items():
        done = [t for t in members if t["status"] == "done"]
        row = {"config_id": config_id, "label": config_label(members[0]), "trials": len(members),
               "done": len(done), "failed": sum(t["status"] == "failed" for t in members),
               "aborted": sum(t["status"] == "aborted" for t in members),
               "prompt_tokens": stat(t["prompt_tokens"] for t in done),
               "gen_tokens": stat(t["gen_tokens"] for t in done)}
        row.update({key: stat(t[key] for t in done) for key, _ in SUMMARY_METRICS})
        row.update({key: stat(t.get(key) for t in done) for key, _, _ in ENERGY_METRICS})
        row["energy_tag"] = weakest_source({t["energy_tag"] for t in done if t.get("energy_tag")})
        rows.append(row)
    return rows


def energy_cell(row: dict, key: str, digits: int) -> str:
    """An energy figure with its source tag beside it, e.g. '0.0123 ± 0.0004 ESTIMATED'."""
    if row[key].mean is None:
        return "–"
    return f"{row[key].fmt(digits)} {TAG_LABELS.get(row['energy_tag'], row['energy_tag'])}"


def _table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = (["configuration", "done", "prompt tok", "gen tok"] + [label for _, label in SUMMARY_METRICS]
               + [label for _, label, _ in ENERGY_METRICS])
    body = [[r["label"], f"{r['done']}/{r['trials']}", r["prompt_tokens"].fmt(0), r["gen_tokens"].fmt(0)]
            + [r[key].fmt() for key, _ in SUMMARY_METRICS]
            + [energy_cell(r, key, digits) for key, _, digits in ENERGY_METRICS] for r in rows]
    return headers, body


def energy_legend(trials: list[dict]) -> list[str]:
    """How the energy figures were obtained, one line per distinct method."""
    methods = sorted({t["energy_method"] for t in trials if t.get("energy_method")})
    lines = [f"energy: {line}" for method in methods for line in method.splitlines()]
    if any(t.get("energy_tag") == "estimated" for t in trials):
        lines.append("energy marked ESTIMATED comes from a model, not a meter: compare it between "
                     "configurations on this host, never with measured figures")
    return lines or ["energy: not measured for these trials"]


def summary_table(rows: list[dict], trials: list[dict]) -> str:
    """A plain-text table for the terminal, with the energy legend under it."""
    headers, body = _table(rows)
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *body)]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [headers, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + [""] + energy_legend(trials))


def markdown_report(trials: list[dict], hosts: list[dict]) -> str:
    rows = summarise(trials)
    out = ["# energytui report", ""]
    for host in hosts:
        out.append(f"Host `{host['id']}`: {host['cpu']}, {host['cores']} CPUs, {host['ram_gb']} GiB RAM, "
                   f"GPU {host['gpu'] or 'none'}, llama-cpp-python {host['llama_cpp']}, {host['os']}.")
    out += ["", "Timings are measured on the monotonic clock around llama.cpp's decode calls; model load and "
            "warm-up are excluded. Values are mean ± sample stddev over the done trials of each configuration. "
            "Energy is gross (idle included) over prefill + decode, with its source beside every figure.", ""]
    headers, body = _table(rows)
    out.append("| " + " | ".join(headers) + " |")
    out.append("|" + "---|" * len(headers))
    out += ["| " + " | ".join(cells) + " |" for cells in body]
    out += ["", "## How energy was obtained", ""] + [f"- {line}" for line in energy_legend(trials)]
    flagged = [t for t in trials if t.get("energy_notes")]
    if flagged:
        out += ["", "## Energy flags", ""]
        out += [f"- trial {t['id']} ({t['run_id']}, {t['prompt_id']}): {t['energy_notes']}" for t in flagged]
    failures = [t for t in trials if t["status"] in ("failed", "aborted")]
    if failures:
        out += ["", "## Trials that did not finish", ""]
        out += [f"- trial {t['id']} ({t['run_id']}, {t['prompt_id']}): {t['status']}: {t['error']}" for t in failures]
    return "\n".join(out) + "\n"
