"""`energytui import`: trials measured elsewhere, from CSV logs of the common shape.

    timestamp,run_id,backend,prompt_id,prompt_template,prompt_length_chars,latency_ms,tokens_generated,energy_joules,notes

one row per prompt, with a YAML map from run ids (`cpu-t8`, `gpu-l22`, ...) to
configurations, the host and the model. Energy may be empty in the log and given in
a companion power log `timestamp,backend,energy_joules,notes` instead. Imported trials
keep their own host, are marked imported, and carry their caveats: no per-token
timings, no prefill/decode split, prompt tokens estimated from characters.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from .errors import UserError
from .store import Store

LOG_COLUMNS = ("timestamp", "run_id", "backend", "prompt_id", "prompt_template", "prompt_length_chars", "latency_ms",
               "tokens_generated", "energy_joules", "notes")
POWER_COLUMNS = ("timestamp", "backend", "energy_joules", "notes")
ENERGY_TAGS = ("counter", "integrated", "estimated", "unknown")  # how the log's energy was obtained, declared
# The keys a map may have: anything else is a typo, named rather than ignored.
MAP_KEYS = {
    "": ("host", "model", "energy_source", "caveats", "chars_per_token", "runs"),
    "host": ("name", "cpu", "gpu", "ram_gb", "cores", "energy_devices", "os", "llama_cpp", "gpu_driver"),
    "model": ("name", "quant", "bits_per_weight", "n_params", "n_layers", "arch"),
    "run": ("backend", "threads", "gpu_layers", "batch_size", "n_batch", "n_ctx"),
}
POWER_MATCH_S = 5.0  # a power-log row belongs to the log row with the same backend within this many seconds


@dataclass
class ImportResult:
    run: int
    host_id: str
    trials: int
    with_energy: int
    skipped: list[str]


def _read_csv(path: Path, columns: tuple[str, ...], what: str) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise UserError(f"{path}: {what} not found; check the path")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}: {what} lacks the column(s) {', '.join(missing)}; "
                                f"expected {','.join(columns)}")
            return list(enumerate(reader, start=2))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the {what} as UTF-8") from None


def _map_error(path: Path, key: str, problem: str) -> UserError:
    return UserError(f"{path}: key {key!r}: {problem}")


def load_map(path: Path) -> dict:
    """The YAML map: host, model, energy_source, caveats, runs (run id → configuration)."""
    if not path.is_file():
        raise UserError(f"{path}: import map not found; check the path")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable YAML map ({str(exc).splitlines()[0]}); fix the YAML") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: the map must be a mapping with host, model and runs")
    _known_keys(path, doc, "", "")
    for key in ("host", "model", "runs"):
        if not isinstance(doc.get(key), dict) or not doc[key]:
            raise _map_error(path, key, "missing or not a mapping")
    _known_keys(path, doc["host"], "host", "host.")
    _known_keys(path, doc["model"], "model", "model.")
    for key in ("name", "cpu"):
        if not isinstance(doc["host"].get(key), str):
            raise _map_error(path, f"host.{key}", "needs a text value")
    model = doc["model"]
    for key, kind in (("name", str), ("quant", str), ("bits_per_weight", (int, float)), ("n_params", int),
                      ("n_layers", int)):
        if not isinstance(model.get(key), kind) or isinstance(model.get(key), bool):
            raise _map_error(path, f"model.{key}", f"needs a {'number' if kind is not str else 'text value'}")
    if "energy_source" not in doc:
        raise _map_error(path, "energy_source", f"missing: declare how the log's energy was obtained "
                         f"({', '.join(ENERGY_TAGS)})")
    if doc["energy_source"] not in ENERGY_TAGS:
        raise _map_error(path, "energy_source", f"{doc['energy_source']!r} is not one of {', '.join(ENERGY_TAGS)}")
    ratio = doc.get("chars_per_token", 4.0)
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or ratio <= 0:
        raise _map_error(path, "chars_per_token", f"{ratio!r} is not a positive number")
    for run_id, config in doc["runs"].items():
        if not isinstance(config, dict) or config.get("backend") not in ("cpu", "gpu", "hybrid"):
            raise _map_error(path, f"runs.{run_id}.backend", "use cpu, gpu or hybrid")
        _known_keys(path, config, "run", f"runs.{run_id}.")
        for key in ("threads", "gpu_layers", "batch_size", "n_batch", "n_ctx"):
            value = config.get(key)  # absent: unknown (threads, n_batch, n_ctx) or the default (0 layers, batch 1)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < (0 if key == "gpu_layers" else 1)):
                raise _map_error(path, f"runs.{run_id}.{key}", f"{value!r} is not a valid whole number")
    return doc


def _known_keys(path: Path, section: dict, kind: str, prefix: str) -> None:
    if not isinstance(section, dict):
        return
    allowed = MAP_KEYS[kind]
    for key in section:
        if key not in allowed:
            raise _map_error(path, f"{prefix}{key}", f"unknown key; use {', '.join(allowed)}")


def _timestamp(path: Path, line: int, text: str) -> float:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise UserError(f"{path}: line {line}: timestamp {text!r} is neither ISO 8601 nor seconds") from None


def _number(path: Path, line: int, column: str, text: str, kind=float):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise UserError(f"{path}: line {line}: {column} {text!r} is not a number") from None
    if value < 0:
        raise UserError(f"{path}: line {line}: {column} {value} is negative")
    return value


def import_logs(store: Store, log: Path, map_path: Path, power_log: Path | None = None,
                again: bool = False) -> ImportResult:
    """Validate everything first, then write one run of imported trials (once per log, map and power log)."""
    mapping = load_map(map_path)
    content = _sha(log, map_path, *([power_log] if power_log else []))
    earlier = store.run_with_sha(content)
    if earlier is not None and not again:
        raise UserError(f"{log}: already imported as run {earlier} (the same log, map and power log); "
                        "pass --again to import it once more")
    rows = _read_csv(log, LOG_COLUMNS, "log")
    power = _power_rows(power_log) if power_log else []
    chars_per_token = float(mapping.get("chars_per_token", 4.0))
    trials, skipped = [], []
    for line, row in rows:
        config = mapping["runs"].get(row["run_id"])
        if config is None:
            skipped.append(f"line {line}: run id {row['run_id']!r} is not in {map_path.name}")
            continue
        trials.append(_trial(log, line, row, config, mapping, power, chars_per_token))
    if not trials:
        raise UserError(f"{log}: no row matched a run id of {map_path}; map them under `runs:`")
    host = _host(mapping)
    for trial in trials:  # a configuration is the host's: two hosts with the same run ids never merge
        trial["config_id"] = _digest([host["id"], trial["run_id"], mapping["runs"][trial["run_id"]]])
    model = mapping["model"]
    model_path = f"imported:{model['name']}"
    store.upsert_host(host)
    store.upsert_model({"path": model_path, "name": model["name"], "quant": model["quant"],
                        "bits_per_weight": float(model["bits_per_weight"]), "n_params": model["n_params"],
                        "n_layers": model["n_layers"], "arch": model.get("arch"), "sha256": None, "size": None,
                        "derived_from": None, "derivation": None})
    rows_out = [{**t, "model": model["name"], "model_path": model_path, "quant": model["quant"]} for t in trials]
    run = store.create_run(str(log.resolve()), content, host["id"], rows_out, status="done")
    return ImportResult(run, host["id"], len(trials), sum(t["energy_j"] is not None for t in trials), skipped)


def _power_rows(path: Path) -> list[tuple[float, str, float | None]]:
    out = []
    for line, row in _read_csv(path, POWER_COLUMNS, "power log"):
        energy = _number(path, line, "energy_joules", row["energy_joules"]) if row["energy_joules"].strip() else None
        out.append((_timestamp(path, line, row["timestamp"]), row["backend"], energy))
    return out


def _trial(log: Path, line: int, row: dict, config: dict, mapping: dict, power: list, chars_per_token: float) -> dict:
    when = _timestamp(log, line, row["timestamp"])
    latency_ms = _number(log, line, "latency_ms", row["latency_ms"])
    gen = _number(log, line, "tokens_generated", row["tokens_generated"], int)
    chars = _number(log, line, "prompt_length_chars", row["prompt_length_chars"], int)
    energy, energy_origin = None, None
    if row["energy_joules"].strip():
        energy, energy_origin = _number(log, line, "energy_joules", row["energy_joules"]), "log"
    else:
        matches = [(abs(t - when), e) for t, backend, e in power if backend == row["backend"] and e is not None]
        if matches and min(matches)[0] <= POWER_MATCH_S:
            energy, energy_origin = min(matches)[1], "power log"
    caveats = [f"imported from {log.name}: no per-token timings, no prefill/decode split",
               f"prompt tokens estimated as {chars} characters / {chars_per_token:g}"]
    if mapping.get("caveats"):
        caveats.append(str(mapping["caveats"]))
    if energy is None:
        caveats.append("no energy in the log or the power log")
    batch = config.get("batch_size", 1)
    tag = mapping["energy_source"]
    return {
        # a thread count the log did not record stays unknown, never a made-up 1
        "status": "done", "run_id": row["run_id"], "backend": config["backend"], "threads": config.get("threads"),
        "gpu_layers": config.get("gpu_layers", 0), "batch_size": batch, "n_batch": config.get("n_batch"),
        "n_ctx": config.get("n_ctx"), "suite": row.get("prompt_template") or None, "prompt_id": row["prompt_id"],
        "prompt_tokens": max(1, round(chars / chars_per_token)), "gen_tokens": gen, "e2e_ms": latency_ms,
        "energy_j": energy, "j_per_token": energy / gen if energy is not None and gen else None,
        "avg_power_w": energy / (latency_ms / 1e3) if energy is not None and latency_ms else None,
        "edp_js": energy * latency_ms / 1e3 if energy is not None else None,  # energy-delay product, as measured
        "energy_tag": tag if energy is not None else None,
        "energy_source": f"{mapping['host'].get('energy_devices', 'system')}:{tag}" if energy is not None else None,
        "energy_method": (f"{tag}: as recorded on {mapping['host']['name']} ({energy_origin})"
                          if energy is not None else None),
        "imported": 1, "caveats": "; ".join(caveats), "started_at": row["timestamp"],
        "repetition": 0,  # no per-token timings: decode tok/s and TTFT stay unknown
    }


def _host(mapping: dict) -> dict:
    facts = mapping["host"]
    identity = "|".join(str(facts.get(k)) for k in ("name", "cpu", "gpu", "ram_gb"))
    return {"id": "imp-" + hashlib.sha256(identity.encode()).hexdigest()[:8], "hostname": facts["name"],
            "cpu": facts["cpu"], "cores": facts.get("cores"), "ram_gb": facts.get("ram_gb"), "gpu": facts.get("gpu"),
            "gpu_driver": facts.get("gpu_driver"), "os": facts.get("os"), "llama_cpp": facts.get("llama_cpp"),
            "gpu_offload": _gpu_build(mapping), "python": None, "imported": 1}


def _gpu_build(mapping: dict) -> int | None:
    """1 when a run offloaded layers (so llama.cpp had GPU offload), 0 without a GPU, else unknown."""
    if any(run.get("backend") in ("gpu", "hybrid") for run in mapping["runs"].values()):
        return 1
    return None if mapping["host"].get("gpu") else 0


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def _sha(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
