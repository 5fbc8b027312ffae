"""Per-configuration summaries (mean ± stddev over trials), exports and the markdown report."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .record import EXPORTED
from .record import unit as unit_of
from .telemetry.base import weakest_source
from .telemetry.cpu_estimate import parse_method

EXPORT_FIELDS = tuple(field.export for field in EXPORTED if field.export)
# How each source tag reads next to a number, so an estimate never passes for a measurement.
TAG_LABELS = {"counter": "measured (counter)", "integrated": "measured (integrated power)", "estimated": "ESTIMATED",
              "unknown": "method UNKNOWN"}
SUMMARY_METRICS = tuple((name, f"{label} {unit_of(name)}") for name, label in (
    ("ttft_ms", "TTFT"), ("prefill_tps", "prefill"), ("decode_tps", "decode"), ("itl_p95_ms", "ITL p95"),
    ("e2e_ms", "e2e")))
ENERGY_METRICS = (("j_per_token", unit_of("j_per_token"), 4), ("avg_power_w", f"avg {unit_of('avg_power_w')}", 1),
                  ("energy_j", f"{unit_of('energy_j')}/request", 2),
                  ("edp_js", f"EDP {unit_of('edp_js')} (mean of trials)", 2))


def build_of(trial: dict) -> str | None:
    """How the host's llama.cpp was built: "gpu" (with GPU offload) or "cpu"; None where unknown."""
    flag = trial.get("gpu_build")
    return None if flag is None else ("gpu" if int(flag) else "cpu")


def missing_trace_reason(trial: dict) -> str:
    """Why a trial has no power samples to plot."""
    if trial.get("imported"):
        return "no power trace: imported from a log that recorded energy per prompt, not power samples"
    if trial.get("status") != "done":
        return f"no power trace: the trial is {trial.get('status')}"
    return "no power trace: no power samples were recorded for it (meter off or no power source)"


def export_record(trial: dict) -> dict:
    derived = {"build": build_of(trial)}
    return {field.export: derived[field.name] if field.name in derived else trial.get(field.name)
            for field in EXPORTED}


def export_text(trials: list[dict], fmt: str) -> str:
    records = [export_record(t) for t in trials]
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    return csv_text(records, list(EXPORT_FIELDS))


def csv_text(records: list[dict], fields: list[str]) -> str:
    """Records as CSV with a header row (`fields`: the columns, in order)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
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
    """Mean and sample stddev in floats (statistics.stdev's exact fractions cost a second over 10,000 trials)."""
    values = [v for v in values if v is not None]
    if not values:
        return Stat(None, None, 0)
    mean = math.fsum(values) / len(values)
    spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return Stat(mean, spread, len(values))


def config_label(trial: dict) -> str:
    layers = f" ngl={trial['gpu_layers']}" if trial["backend"] != "cpu" else ""
    threads = trial["threads"] if trial["threads"] is not None else "?"
    build = " gpu-build" if trial["backend"] == "cpu" and build_of(trial) == "gpu" else ""
    chunk = f" nb={trial['n_batch']}" if trial.get("n_batch") else ""
    prompt = trial["suite"] or trial["prompt_id"]
    origin = " (imported)" if trial.get("imported") else ""
    return (f"{trial['run_id']}{origin}: {trial['quant']} {trial['backend']}{build} t={threads}{layers}"
            f"{chunk} B={trial['batch_size']} {prompt}")


# What can set two configurations apart beyond their short label, in the order a longer label names them.
DISTINGUISHING = (("model", lambda t: Path(t.get("model_path") or "").name.removesuffix(".gguf") or None),
                  ("ctx", lambda t: t.get("n_ctx")), ("max", lambda t: t.get("max_tokens")),
                  ("temp", lambda t: t.get("temperature")), ("seed", lambda t: t.get("seed")),
                  ("chat", lambda t: None if t.get("chat") is None else ("on" if t["chat"] else "off")),
                  ("eos", lambda t: None if t.get("ignore_eos") is None else
                   ("ignored" if t["ignore_eos"] else "stops")),
                  ("host", lambda t: t.get("host_name") or t.get("host_id")))


def config_key(trial: dict) -> tuple:
    """A configuration as the tables group it: two hosts never merge."""
    return trial.get("host_id"), trial["config_id"]


def config_labels(trials: list[dict]) -> dict[tuple, str]:
    """Each configuration's label (by config_key), distinct: where two share config_label, each names the
    settings that differ among them (model file, n_ctx, ...), and, if still alike, its config id."""
    firsts: dict[tuple, dict] = {}
    for trial in trials:
        firsts.setdefault(config_key(trial), trial)
    alike: dict[str, list[tuple]] = {}
    for key, trial in firsts.items():
        alike.setdefault(config_label(trial), []).append(key)
    labels = {}
    for short, keys in alike.items():
        if len(keys) == 1:
            labels[keys[0]] = short
            continue
        differing = [(name, value_of) for name, value_of in DISTINGUISHING
                     if len({value_of(firsts[k]) for k in keys}) > 1]
        for key in keys:
            labels[key] = " ".join([short] + [f"{name}={value_of(firsts[key])}" for name, value_of in differing])
        if len({labels[k] for k in keys}) < len(keys):  # alike in every named setting: the id tells them apart
            labels.update({k: f"{labels[k]} #{k[1][:6]}" for k in keys})
    return labels


def steady_view(trial: dict) -> dict:
    """A trial as its configuration's energy figures count it. In a steady window (engine/telemetry/steady.py)
    its energy is its share by the tokens' clock: the window's busy power × the trial's own duration, tagged
    with the window's source (none where the window has no figures); other trials are unchanged."""
    if not trial.get("window_id"):
        return trial
    power, e2e_ms, tokens = trial.get("window_busy_power_w"), trial.get("e2e_ms"), trial.get("gen_tokens")
    if power is None or e2e_ms is None:
        return {**trial, **dict.fromkeys(("energy_j", "j_per_token", "avg_power_w", "edp_js", "energy_tag"))}
    energy = power * e2e_ms / 1e3
    return {**trial, "energy_j": energy, "j_per_token": energy / tokens if tokens else None, "avg_power_w": power,
            "edp_js": energy * e2e_ms / 1e3, "energy_tag": trial.get("window_tag")}


def window_uncertainty(trials: list[dict]) -> float | None:
    """The largest relative uncertainty of the steady windows these trials' energy comes from."""
    shares = [t["window_energy_uncertainty_j"] / (t["window_energy_per_request_j"] * t["window_requests"])
              for t in trials if t.get("window_energy_uncertainty_j") is not None
              and t.get("window_energy_per_request_j") and t.get("window_requests")]
    return max(shares) if shares else None


def steady_mark(row: dict) -> str:
    """' (steady window ±1.2 %)' after a row's energy figures where they come from steady windows."""
    if not row.get("steady_windows"):
        return ""
    share = row.get("window_uncertainty")
    return " (steady window" + (f" ±{share:.1%})" if share is not None else ")")


def counted(trial: dict) -> bool:
    """Whether a trial's figures go into means, charts and the advisor's fits: done, and its decoding never stood
    still (stalled_ms: a paused, suspended or starved process measured the stall, not the configuration)."""
    return trial["status"] == "done" and not trial.get("stalled_ms")


def stalled(trial: dict) -> bool:
    """A done trial left out of the means because its decoding stood still."""
    return trial["status"] == "done" and not counted(trial)


def stall_line(trial: dict, trials: list[dict]) -> str:
    """Why a done trial is left out of the means, with its figures, and the trial that ran it again."""
    again = next((f"; trial {t['id']} ran it again" for t in trials if t.get("retry_of") == trial["id"]), "")
    return (f"decoding stood still for {trial['stalled_ms'] / 1e3:.1f} s (longest step {trial['itl_max_ms']:.0f} ms "
            f"against a median of {trial['itl_p50_ms']:.1f} ms: the process was paused, suspended or starved); "
            f"left out of the means and the advisor's fits{again}")


def summarise(trials: list[dict], by: str = "config") -> list[dict]:
    """One row per configuration (or backend, or host) with counts by status and mean ± stddev of the trials
    that count (done, never stalled); `stalled` counts the done trials left out."""
    groups: dict[tuple, list[dict]] = {}
    for trial in trials:  # two hosts never merge, even with the same manifest configuration
        groups.setdefault(_group_of(trial, by), []).append(trial)
    labels = config_labels(trials) if by == "config" else {}
    rows = []
    for members in groups.values():
        done = [t for t in members if counted(t)]
        first = members[0]
        label = labels[config_key(first)] if by == "config" else _group_label(first, by)
        row = {"config_id": first["config_id"] if by == "config" else None, "host_id": first.get("host_id"),
               "backend": first["backend"] if by != "host" else None, "label": label,
               "trials": len(members),
               "done": len(done), "failed": sum(t["status"] == "failed" for t in members),
               "aborted": sum(t["status"] == "aborted" for t in members),
               "stalled": sum(map(stalled, members)),
               "prompt_tokens": stat(t["prompt_tokens"] for t in done),
               "gen_tokens": stat(t["gen_tokens"] for t in done)}
        row.update({key: stat(t[key] for t in done) for key, _ in SUMMARY_METRICS})
        views = [steady_view(t) for t in done]
        row.update({key: stat(t.get(key) for t in views) for key, _, _ in ENERGY_METRICS})
        row["edp_of_means_js"] = edp_of_means(views)
        row["energy_tag"] = weakest_source({t["energy_tag"] for t in views if t.get("energy_tag")})
        row["steady_windows"] = len({t["window_id"] for t in done if t.get("window_id")})
        row["window_uncertainty"] = window_uncertainty(done)
        rows.append(row)
    return rows


def energy_cell(row: dict, key: str, digits: int) -> str:
    """An energy figure with its source tag beside it, e.g. '0.0123 ± 0.0004 ESTIMATED'."""
    if row[key].mean is None:
        return "–"
    return f"{row[key].fmt(digits)} {TAG_LABELS.get(row['energy_tag'], row['energy_tag'])}{steady_mark(row)}"


def table_cells(rows: list[dict], compact: bool = False) -> tuple[list[str], list[list[str]], str | None]:
    """(headers, body, caption) of the per-row table. `compact` (the terminal): when every row's energy has
    the same source, the caption says it once instead of every cell."""
    tags = {r["energy_tag"] for r in rows if r["energy_tag"]}
    shared = TAG_LABELS.get(next(iter(tags)), next(iter(tags))) if compact and len(tags) == 1 else None
    energy_headers = [label for _, label, _ in ENERGY_METRICS] + ["EDP J·s (product of means)"]
    if shared:
        energy_headers = [short_header(h) for h in energy_headers]
    headers = (["configuration", "done", "prompt tok", "gen tok"] + [label for _, label in SUMMARY_METRICS]
               + energy_headers)
    body = [[r["label"], f"{r['done']}/{r['trials']}", r["prompt_tokens"].fmt(0), r["gen_tokens"].fmt(0)]
            + [r[key].fmt() for key, _ in SUMMARY_METRICS]
            + [r[key].fmt(digits) + (steady_mark(r) if r[key].mean is not None else "") if shared
               else energy_cell(r, key, digits) for key, _, digits in ENERGY_METRICS]
            + [_product_cell(r, tagged=not shared)] for r in rows]
    caption = (f"energy columns ({', '.join(energy_headers)}): {shared}; EDP = the mean of per-trial EDP, "
               "EDP of means = mean energy × mean latency") if shared else None
    n_stalled = sum(r.get("stalled", 0) for r in rows)
    if n_stalled:  # "done" counts the trials in the means: say where the others went
        left_out = (f"{n_stalled} done trial(s) whose decoding stood still are left out of `done` and the means "
                    "(the report lists them)")
        caption = f"{caption}; {left_out}" if caption else left_out
    return headers, body, caption


def short_header(header: str) -> str:
    """A header as the terminal's table shows it (its caption says once how EDP is averaged)."""
    return header.replace(" (mean of trials)", "").replace(" (product of means)", " of means")


def column_names() -> list[str]:
    """The per-row table's columns, named as the terminal shows them."""
    return [short_header(header) for header in table_cells([])[0]]


def column_positions(names: list[str]) -> list[int]:
    """Where the named columns are in table_cells' headers, in the order named. A name is a header in any
    case, short or long (markdown) form, '.' standing for '·'; ValueError says which name is wrong."""
    def key(name: str) -> str:
        return " ".join(name.replace("·", ".").casefold().split())

    long_names = table_cells([])[0]
    lookup = {key(name): i for i, name in enumerate(long_names)}
    lookup.update({key(short_header(name)): i for i, name in enumerate(long_names)})
    if not names:
        raise ValueError(f"no column named; the columns are: {', '.join(column_names())}")
    positions = []
    for name in names:
        if key(name) not in lookup:
            raise ValueError(f"unknown column {name!r}; the columns are: {', '.join(column_names())}")
        if lookup[key(name)] in positions:
            raise ValueError(f"column {name!r} is named twice")
        positions.append(lookup[key(name)])
    return positions


def select_columns(headers: list[str], body: list[list[str]],
                   positions: list[int] | None) -> tuple[list[str], list[list[str]]]:
    """The table with only the columns at `positions`, in that order (all of them for None)."""
    if positions is None:
        return headers, body
    return [headers[i] for i in positions], [[row[i] for i in positions] for row in body]


def _product_cell(row: dict, tagged: bool = True) -> str:
    value = row["edp_of_means_js"]
    if value is None:
        return "–"
    tag = f" {TAG_LABELS.get(row['energy_tag'], row['energy_tag'])}" if tagged else ""
    return f"{value:.2f}{tag}{steady_mark(row)}"


def energy_legend(trials: list[dict]) -> list[str]:
    """How the energy figures were obtained, one line per distinct method."""
    methods = sorted({t["energy_method"] for t in trials if t.get("energy_method")})
    lines = [f"energy: {line}" for method in methods for line in method.splitlines()]
    if any(t.get("window_id") for t in trials):
        lines.append("energy marked (steady window): a power source updating slower than a trial lasts cannot "
                     "measure one trial, so each configuration's requests ran back to back over a steady-state "
                     "window after an idle window as long; a request's energy is the window's steady power × its "
                     "own duration; ± is the window's uncertainty (its readings' spread and one update period "
                     "of the busy-idle step over the window's length)")
    if any(t.get("energy_tag") == "estimated" for t in trials):
        lines.append("energy marked ESTIMATED comes from a model, not a meter: compare it between "
                     "configurations on this host, never with measured figures")
    if any(_has_static_power(method) for method in methods):
        lines.append("the CPU estimate's static power is drawn whatever runs, so it is also its idle power: gross "
                     "energy (energy_j) includes it, net energy leaves out the estimate's static part")
    return lines or ["energy: not measured for these trials"]


def _has_static_power(method: str) -> bool:
    estimate = parse_method(method)
    return estimate is not None and estimate.static_share > 0


def markdown_report(trials: list[dict], hosts: list[dict], by: str = "config", rows: list[dict] | None = None,
                    columns: list[int] | None = None) -> str:
    """The report; `columns`: positions of the table's columns to show, in order (column_positions)."""
    rows = summarise(trials, by) if rows is None else rows
    out = ["# energytui report", ""]
    seen = {t.get("host_id") for t in trials}
    for host in hosts:
        if host["id"] in seen:
            out.append(_host_line(host))
    out += [""] + _timing_lines(trials) + [""]
    headers, body = select_columns(*table_cells(rows)[:2], columns)
    out.append("| " + " | ".join(headers) + " |")
    out.append("|" + "---|" * len(headers))
    out += ["| " + " | ".join(cells) + " |" for cells in body]
    best = best_lines(rows)
    if best:
        out += ["", "## Best", ""] + [f"- {line}" for line in best]
    out += ["", "## How energy was obtained", ""] + [f"- {line}" for line in energy_legend(trials)]
    caveats = imported_caveats(trials)
    if caveats:
        out += ["", "## Caveats of imported data", ""] + [f"- host {host}: {text}" for host, text in caveats]
    left_out = list(filter(stalled, trials))
    if left_out:
        out += ["", "## Stalled trials", ""]
        out += [f"- trial {t['id']} ({t['run_id']}, {t['prompt_id']}): {stall_line(t, trials)}" for t in left_out]
    flagged = [t for t in trials if t.get("energy_notes")]
    if flagged:
        out += ["", "## Energy flags", ""]
        out += [f"- trial {t['id']} ({t['run_id']}, {t['prompt_id']}): {t['energy_notes']}" for t in flagged]
    failures = [t for t in trials if t["status"] in ("failed", "aborted")]
    if failures:
        out += ["", "## Trials that did not finish", ""]
        out += [f"- trial {t['id']} ({t['run_id']}, {t['prompt_id']}): {t['status']}: {t['error']}" for t in failures]
    return "\n".join(out) + "\n"


def imported_caveats(trials: list[dict]) -> list[tuple[str | None, str]]:
    """(host, caveat) once each: a trial's own figures (its prompt's characters) folded into the rule."""
    found = set()
    for t in trials:
        for part in (t.get("caveats") or "").split("; ") if t.get("imported") else ():
            if part.startswith("prompt tokens estimated as "):
                ratio = part.rsplit(" / ", 1)[-1]
                part = f"prompt tokens estimated from the prompt's characters ({ratio} characters a token)"
            if part:
                found.add((t.get("host_id"), part))
    return sorted(found)


def _host_line(host: dict) -> str:
    """What is known of a host; what a log did not record says so."""
    def known(key: str, unit: str = "") -> str:
        return "unknown" if host.get(key) in (None, "") else f"{host[key]}{unit}"

    origin = " (imported from logs)" if host.get("imported") else ""
    name = f" ({host['name']})" if host.get("name") else ""
    return (f"Host `{host['id']}`{name}{origin}: {known('cpu')}, {known('cores')} CPUs, {known('ram_gb', ' GiB')} RAM, "
            f"GPU {host.get('gpu') or 'none recorded'}, llama-cpp-python {known('llama_cpp')} "
            f"(built with: {known('build')}), OS {known('os')}.")


def _timing_lines(trials: list[dict]) -> list[str]:
    lines = ["Values are mean ± sample stddev over the done trials of each row; EDP (energy-delay product) is "
             "shown as the mean of per-trial EDP and as mean energy × mean latency."]
    if any(not t.get("imported") for t in trials):
        lines.append("Measured trials: timings on the monotonic clock around llama.cpp's decode calls, model load "
                     "and warm-up excluded; energy is gross (idle included) over prefill + decode, with its source "
                     "beside every figure.")
    if any(t.get("imported") for t in trials):
        lines.append("Imported trials: latency and energy per prompt as the log recorded them (a per-prompt "
                     "llama-cli run may include model load and warm-up); no TTFT, prefill or decode split, so those "
                     "columns stay empty; energy carries the source the map declared.")
    return lines


# --- roll-ups: per configuration, backend or host, as markdown, CSV or JSON --------------------------

GROUPINGS = ("config", "backend", "host")
BEST_BY = (("energy_j", "energy per request", "J/request", 2), ("edp_js", "EDP", "J·s", 2),
           ("e2e_ms", "latency", "ms e2e", 0))


def _group_of(trial: dict, by: str) -> tuple:
    """Two hosts never merge: every grouping keeps the host."""
    host = trial.get("host_id")
    return {"config": (host, trial["config_id"]), "backend": (host, trial["backend"]), "host": (host,)}[by]


def _group_label(trial: dict, by: str) -> str:
    """A backend's or a host's label (configurations: config_labels)."""
    origin = " (imported)" if trial.get("imported") else ""
    name = f" ({trial['host_name']})" if trial.get("host_name") else ""
    return f"host {trial.get('host_id')}{name}{origin}" + (f": {trial['backend']}" if by == "backend" else "")


def edp_of_means(done: list[dict]) -> float | None:
    """Mean energy × mean end-to-end seconds: the product of means, beside the mean of per-trial EDP."""
    energy, e2e = stat(t.get("energy_j") for t in done), stat(t.get("e2e_ms") for t in done)
    return energy.mean * e2e.mean / 1e3 if energy.mean is not None and e2e.mean is not None else None


def best_lines(rows: list[dict]) -> list[str]:
    """Per host, the best row by energy per request, by EDP and by latency (rows with the figure only)."""
    lines = []
    for host in dict.fromkeys(r["host_id"] for r in rows):
        mine = [r for r in rows if r["host_id"] == host and r["done"]]
        parts = []
        for key, name, unit, digits in BEST_BY:
            ranked = [r for r in mine if r[key].mean is not None]
            if ranked:
                best = min(ranked, key=lambda r: r[key].mean)
                figure = energy_cell(best, key, digits) if key != "e2e_ms" else best[key].fmt(digits)
                parts.append(f"by {name}: {best['label']} ({figure} {unit})")
        tags = {r["energy_tag"] for r in mine if r["energy_tag"]}
        mixed = f" (mixed energy sources: {', '.join(sorted(tags))}; energy ranks compare unlike figures)" \
            if len(tags) > 1 else ""
        if parts:
            lines.append(f"best on host {host}{mixed}: " + "; ".join(parts))
    return lines


def records(rows: list[dict], by: str) -> list[dict]:
    """One flat record per row for CSV and JSON: means, sample stddevs, counts, the energy source."""
    out = []
    for r in rows:
        record = {"group": by, "host_id": r["host_id"], "backend": r.get("backend"), "config_id": r.get("config_id"),
                  "label": r["label"], "trials": r["trials"], "done": r["done"], "failed": r["failed"],
                  "aborted": r["aborted"], "stalled": r["stalled"]}
        for key in ("prompt_tokens", "gen_tokens", *(k for k, _ in SUMMARY_METRICS),
                    *(k for k, _, _ in ENERGY_METRICS)):
            record[f"{key}_mean"], record[f"{key}_stdev"] = r[key].mean, r[key].stdev
        record["edp_of_means_js"] = r["edp_of_means_js"]
        record["energy_tag"] = r["energy_tag"]
        record["energy_window"] = "steady" if r.get("steady_windows") else "trial"
        record["window_uncertainty"] = r.get("window_uncertainty")
        out.append(record)
    return out


def report_text(trials: list[dict], hosts: list[dict], by: str = "config", fmt: str = "md",
                columns: list[int] | None = None) -> str:
    """The report as markdown (its table's `columns` only, when given), CSV or JSON."""
    rows = summarise(trials, by)
    if fmt == "json":
        return json.dumps(records(rows, by), indent=2) + "\n"
    if fmt == "csv":
        flat = records(rows, by)
        return csv_text(flat, list(flat[0]) if flat else ["group"])
    return markdown_report(trials, hosts, by, rows, columns)
