"""Per-configuration summaries (mean ± stddev over trials), exports and the markdown report."""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass

EXPORT_FIELDS = (
    "trial_id", "run_id", "config_id", "status", "model", "quant", "backend", "threads", "gpu_layers", "n_batch",
    "batch_size", "suite", "prompt_id", "prompt_tokens", "gen_tokens", "ttft_ms", "prefill_tps", "decode_tps",
    "decode_tps_per_seq", "itl_p50_ms", "itl_p95_ms", "e2e_ms", "n_ctx", "max_tokens", "ignore_eos", "temperature",
    "seed", "repetition", "bits_per_weight", "n_params", "host_id", "started_at", "error",
)
SUMMARY_METRICS = (
    ("ttft_ms", "TTFT ms"), ("prefill_tps", "prefill tok/s"), ("decode_tps", "decode tok/s"),
    ("itl_p95_ms", "ITL p95 ms"), ("e2e_ms", "e2e ms"),
)


def export_record(trial: dict) -> dict:
    return {field: trial.get("id") if field == "trial_id" else trial.get(field) for field in EXPORT_FIELDS}


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
    prompt = trial["suite"] or trial["prompt_id"]
    return (f"{trial['run_id']}: {trial['quant']} {trial['backend']} t={trial['threads']}{layers} "
            f"nb={trial['n_batch']} B={trial['batch_size']} {prompt}")


def summarise(trials: list[dict]) -> list[dict]:
    """One row per configuration with counts by status and mean ± stddev of done trials."""
    groups: dict[str, list[dict]] = {}
    for trial in trials:
        groups.setdefault(trial["config_id"], []).append(trial)
    rows = []
    for config_id, members in groups.items():
        done = [t for t in members if t["status"] == "done"]
        row = {"config_id": config_id, "label": config_label(members[0]), "trials": len(members),
               "done": len(done), "failed": sum(t["status"] == "failed" for t in members),
               "aborted": sum(t["status"] == "aborted" for t in members),
               "prompt_tokens": stat(t["prompt_tokens"] for t in done),
               "gen_tokens": stat(t["gen_tokens"] for t in done)}
        row.update({key: stat(t[key] for t in done) for key, _ in SUMMARY_METRICS})
        rows.append(row)
    return rows


def summary_table(rows: list[dict]) -> str:
    """A plain-text table for the terminal."""
    headers = ["configuration", "done", "prompt tok", "gen tok"] + [label for _, label in SUMMARY_METRICS]
    body = [[r["label"], f"{r['done']}/{r['trials']}", r["prompt_tokens"].fmt(0), r["gen_tokens"].fmt(0)]
            + [r[key].fmt() for key, _ in SUMMARY_METRICS] for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *body)]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)) for line in [headers, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_report(trials: list[dict], hosts: list[dict]) -> str:
    rows = summarise(trials)
    out = ["# energytui report", ""]
    for host in hosts:
        out.append(f"Host `{host['id']}`: {host['cpu']}, {host['cores']} CPUs, {host['ram_gb']} GiB RAM, "
                   f"GPU {host['gpu'] or 'none'}, llama-cpp-python {host['llama_cpp']}, {host['os']}.")
    out += ["", "Timings are measured on the monotonic clock around llama.cpp's decode calls; model load and "
            "warm-up are excluded. Values are mean ± sample stddev over the done trials of each configuration.", ""]
    headers = ["configuration", "done", "prompt tok", "gen tok"] + [label for _, label in SUMMARY_METRICS]
    out.append("| " + " | ".join(headers) + " |")
    out.append("|" + "---|" * len(headers))
    for r in rows:
        cells = [r["label"], f"{r['done']}/{r['trials']}", r["prompt_tokens"].fmt(0), r["gen_tokens"].fmt(0)]
        out.append("| " + " | ".join(cells + [r[key].fmt() for key, _ in SUMMARY_METRICS]) + " |")
    failures = [t for t in trials if t["status"] in ("failed", "aborted")]
    if failures:
        out += ["", "## Trials that did not finish", ""]
        out += [f"- trial {t['id']} ({t['run_id']}, {t['prompt_id']}): {t['status']}: {t['error']}" for t in failures]
    return "\n".join(out) + "\n"
