"""`energytui compare A B`: two sets of trials (runs, hosts or run ids) side by side, configuration by
configuration, with both sides' mean ± stddev and the ratio B/A, like llama.cpp's compare-llama-bench
script but with energy."""

from __future__ import annotations

import json

from .errors import UserError
from .report import TAG_LABELS, build_of, counted, csv_text, stat
from .store import Store

METRICS = (("ttft_ms", "TTFT ms", 1), ("prefill_tps", "prefill tok/s", 1), ("decode_tps", "decode tok/s", 1),
           ("j_per_token", "J/token", 4), ("edp_js", "EDP J·s", 2))
ENERGY_KEYS = ("j_per_token", "edp_js")


def select(store: Store, ref: str) -> tuple[str, list[dict]]:
    """The done trials `ref` names: a run number, a host id, or a run id of a manifest (or an import map)."""
    runs = store.run_numbers()
    if ref.isascii() and ref.isdigit() and int(ref) in runs:  # isdigit alone takes "٣" for 3
        done = store.trials(run=int(ref), done=True)
        if not done:
            raise UserError(f"compare: run {int(ref)} has no done trials (`energytui export` lists each trial and "
                            "how it ended); compare runs that finished some")
        return f"run {int(ref)}", done
    host = store.host_id_of(ref)
    if host is not None:
        named = f" ({ref})" if ref != host else ""
        return f"host {host}{named}", store.trials(host_id=host, done=True)
    trials = store.trials(run_id=ref, done=True)
    if trials:
        return f"run id {ref}", trials
    run_ids = store.run_ids()
    raise UserError(f"compare: {ref!r} is neither a run number ({', '.join(map(str, runs)) or 'none'}), a host id "
                    f"or name ({', '.join(store.host_refs()) or 'none'}) nor a run id with done trials "
                    f"({', '.join(run_ids[:12]) or 'none'}); `energytui report` lists them")


def match_key(trial: dict) -> tuple:
    """What makes two trials the same configuration on either side: model, settings and prompt suite."""
    return (trial["model"], trial["quant"], trial["backend"], build_of(trial), trial["threads"], trial["gpu_layers"],
            trial["n_batch"], trial["batch_size"], trial["suite"] or trial["prompt_id"])


def _label(key: tuple) -> str:
    model, quant, backend, build, threads, layers, n_batch, batch, suite = key
    threads = "?" if threads is None else threads
    extra = f" ngl={layers}" if backend != "cpu" else (" gpu-build" if build == "gpu" else "")
    chunk = f" nb={n_batch}" if n_batch else ""
    return f"{model} {quant} {backend}{extra} t={threads}{chunk} B={batch} {suite}"


def compare(a: list[dict], b: list[dict]) -> tuple[list[dict], list[str], list[str]]:
    """(matched rows, configurations only in A, only in B)."""
    sides: list[dict[tuple, list[dict]]] = [{}, {}]  # A and B: configuration -> its trials
    for side, trials in zip(sides, (a, b)):
        for t in filter(counted, trials):  # a stalled trial measured its stall
            side.setdefault(match_key(t), []).append(t)
    rows = []
    for key in [k for k in sides[0] if k in sides[1]]:
        row = {"configuration": _label(key), "n_a": len(sides[0][key]), "n_b": len(sides[1][key])}
        for metric, _, _ in METRICS:
            left, right = (stat(t.get(metric) for t in side[key]) for side in sides)
            row[metric] = (left, right, right.mean / left.mean if left.mean and right.mean is not None else None)
        row["tags"] = tuple(_tag(side[key]) for side in sides)
        rows.append(row)
    only = [[_label(k) for k in sides[i] if k not in sides[1 - i]] for i in (0, 1)]
    return rows, only[0], only[1]


def _tag(trials: list[dict]) -> str | None:
    tags = {t["energy_tag"] for t in trials if t.get("energy_tag")}
    return next(iter(tags)) if len(tags) == 1 else (", ".join(sorted(tags)) if tags else None)


def text(names: tuple[str, str], rows: list[dict], only_a: list[str], only_b: list[str], fmt: str) -> str:
    if fmt in ("csv", "json"):
        flat = []
        for r in rows:
            record = {"configuration": r["configuration"], "n_a": r["n_a"], "n_b": r["n_b"],
                      "energy_tag_a": r["tags"][0], "energy_tag_b": r["tags"][1]}
            for metric, _, _ in METRICS:
                left, right, ratio = r[metric]
                record.update({f"{metric}_a_mean": left.mean, f"{metric}_a_stdev": left.stdev,
                               f"{metric}_b_mean": right.mean, f"{metric}_b_stdev": right.stdev,
                               f"{metric}_ratio_b_a": ratio})
            flat.append(record)
        if fmt == "json":
            return json.dumps({"a": names[0], "b": names[1], "matched": flat, "only_in_a": only_a,
                               "only_in_b": only_b}, indent=2) + "\n"
        return csv_text(flat, list(flat[0]) if flat else ["configuration"])
    return _markdown(names, rows, only_a, only_b)


def _tagged(cell: str, tag: str | None) -> str:
    """An energy cell with its source beside it, as report writes it: a side's estimate never passes unmarked."""
    return f"{cell} {', '.join(TAG_LABELS.get(t, t) for t in tag.split(', '))}" if tag else cell


def _markdown(names: tuple[str, str], rows: list[dict], only_a: list[str], only_b: list[str]) -> str:
    out = [f"# {names[1]} (B) against {names[0]} (A)", "",
           "Mean ± sample stddev over each side's done trials (stalled ones left out); B/A is the ratio of the "
           "means (above 1: B is higher, better for tok/s, worse for TTFT, J/token and EDP).", ""]
    headers = ["configuration", "n A", "n B"] + [f"{label} {side}" for _, label, _ in METRICS
                                                  for side in ("A", "B", "B/A")]
    out += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    unlike = []
    for r in rows:
        cells = [r["configuration"], str(r["n_a"]), str(r["n_b"])]
        for metric, _, digits in METRICS:
            left, right, ratio = r[metric]
            sides = [_tagged(value.fmt(digits), tag if metric in ENERGY_KEYS and value.mean is not None else None)
                     for value, tag in zip((left, right), r["tags"])]
            cells += [*sides, f"{ratio:.2f}" if ratio is not None else "–"]
        out.append("| " + " | ".join(cells) + " |")
        if r["tags"][0] != r["tags"][1]:
            unlike.append(r["configuration"])
    tags = sorted({tag for r in rows for tag in r["tags"] if tag})
    out += ["", "Energy sources: " + (", ".join(TAG_LABELS.get(t, t) for t in tags) or "none") + "."]
    if unlike:
        out.append("Energy ratios compare figures of different sources (e.g. measured against ESTIMATED) for: "
                   + "; ".join(unlike) + ".")
    for name, only in ((names[0], only_a), (names[1], only_b)):
        if only:
            out += ["", f"Only in {name}:", ""] + [f"- {label}" for label in only]
    return "\n".join(out) + "\n"
