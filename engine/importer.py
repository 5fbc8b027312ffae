"""`energytui import`: trials measured elsewhere, from CSV logs of the common shape.

    timestamp,run_id,backend,prompt_id,prompt_template,prompt_length_chars,latency_ms,tokens_generated,energy_joules,notes

one row per prompt, with a YAML map from run ids (`cpu-t8`, `gpu-l22`, ...) to
configurations, the host and the model. Energy may be empty in the log and given in
a companion power log `timestamp,backend,energy_joules,notes` instead. Imported trials
keep their own host, are marked imported, and carry their caveats: no per-token
timings, no prefill/decode split, prompt tokens estimated from characters.

Everything is read and checked before anything is written, and the writes are one
transaction: a refused or failed import leaves the database as it was.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


from .errors import UserError
# The manifest's backend rules (cpu: no layers, gpu: all, hybrid: some), so the map is checked like a manifest.
from .manifest import (BACKENDS, MAX_SEQUENCES, MAX_THREADS, MAX_WHOLE, Problem, ValueChecker, parse_yaml,
                       yaml_kind)
from .paths import check_regular_file, read_file
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
# Sane bounds (low, high, whole number?): beyond them a value is a typo or a unit mix-up, and a whole number
# could overflow SQLite's 64-bit integers half-way through the writes.
MODEL_NUMBERS = {"bits_per_weight": (0.5, 64.0, False), "n_params": (1, 10**15, True), "n_layers": (1, 10_000, True)}
HOST_NUMBERS = {"ram_gb": (0.01, 10.0**6, False), "cores": (1, 100_000, True)}
RUN_NUMBERS = {"threads": (1, MAX_THREADS, True), "batch_size": (1, MAX_SEQUENCES, True),  # as in a manifest
               "n_batch": (1, MAX_WHOLE, True), "n_ctx": (16, MAX_WHOLE, True)}
CHARS_PER_TOKEN = (0.1, 100.0, False)
HOST_TEXTS, MODEL_TEXTS = ("gpu", "energy_devices", "os", "llama_cpp", "gpu_driver"), ("arch",)  # optional
LOG_NUMBERS = {"prompt_length_chars": (0, 10**9), "tokens_generated": (0, 10**9),  # a log's cells
               "latency_ms": (0.001, 1e9), "energy_joules": (0.0, 1e9)}  # latency > 0: the power is energy / it
# A cell's number as people and spreadsheets write it: ASCII digits only (Python's int() and float() also take
# 4_00 and other scripts' digits, which no log means).
WHOLE_CELL = re.compile(r"[+-]?[0-9]+")
NUMBER_CELL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
NOT_FINITE_CELL = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
FIRST_YEAR, LAST_YEAR = 1970, 2100  # a timestamp beyond them is a typo or in other units (ms, µs)
TIMESTAMP_RANGE = (datetime(FIRST_YEAR, 1, 1, tzinfo=timezone.utc).timestamp(),
                   datetime(LAST_YEAR + 1, 1, 1, tzinfo=timezone.utc).timestamp())


@dataclass
class ImportResult:
    run: int
    host_id: str
    trials: int
    with_energy: int
    skipped: list[str]


def _check_file(path: Path, what: str) -> None:
    """Before a file is read or hashed: a missing file, a folder or a device is one line, not a traceback."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give the {what} file")
    check_regular_file(path, what)


def _read_csv(path: Path, columns: tuple[str, ...], what: str) -> list[tuple[int, dict]]:
    """(line number, row) of each row, every row with all of `columns`."""
    _check_file(path, what)
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark that would stick to the first column's name
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = _csv_rows(path, csv.DictReader(fh), columns, what)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the {what} as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror}); check its permissions") from None
    if not rows:
        raise UserError(f"{path}: the {what} has no rows, only a header; give a {what} with its rows")
    return rows


def _csv_rows(path: Path, reader: csv.DictReader, columns: tuple[str, ...], what: str) -> list[tuple[int, dict]]:
    try:
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: {what} lacks the column(s) {', '.join(missing)}; "
                            f"expected {','.join(columns)}")
        rows = [(reader.line_num, row) for row in reader]  # line_num: right past blank or multi-line rows too
    except csv.Error as exc:
        raise UserError(f"{path}: line {reader.line_num}: not readable CSV ({exc}); fix that line") from None
    for line, row in rows:
        short = [c for c in columns if row.get(c) is None]  # csv leaves the fields past a short row's end None
        if short:
            raise UserError(f"{path}: line {line}: the row has no {', '.join(short)} (fewer fields than the "
                            "header); complete the row")
    return rows


def _map_error(path: Path, key: str, problem: str) -> UserError:
    return UserError(f"{path}: key {key!r}: {problem}")


class _MapProblem(Problem):
    """The manifest checker's messages, worded as the map's others: key 'runs.ID.KEY'."""

    def __call__(self, run_id: str | None, key: str | None, problem: str, fix: str | None = None) -> UserError:
        return _map_error(self.path, f"runs.{run_id}.{key}", problem + (f"; {fix}" if fix else ""))


def load_map(path: Path) -> dict:
    """The YAML map: host, model, energy_source, caveats, runs (run id → configuration), checked like a manifest:
    the first problem is one line naming the key."""
    doc = _read_map(path)
    _known_keys(path, doc, "", "")
    for key in ("host", "model", "runs"):
        if not isinstance(doc.get(key), dict) or not doc[key]:
            raise _map_error(path, key, "missing or not a mapping")
    _check_section(path, doc["host"], "host", ("name", "cpu"), HOST_TEXTS, HOST_NUMBERS, numbers_required=False)
    _check_section(path, doc["model"], "model", ("name", "quant"), MODEL_TEXTS, MODEL_NUMBERS, numbers_required=True)
    if "energy_source" not in doc:
        raise _map_error(path, "energy_source", f"missing: declare how the log's energy was obtained "
                         f"({', '.join(ENERGY_TAGS)})")
    if doc["energy_source"] not in ENERGY_TAGS:
        raise _map_error(path, "energy_source", f"{doc['energy_source']!r} is not one of {', '.join(ENERGY_TAGS)}")
    _map_number(path, "chars_per_token", doc.get("chars_per_token", 4.0), CHARS_PER_TOKEN)
    doc["runs"] = _runs_by_text_id(path, doc["runs"])
    for run_id, config in doc["runs"].items():
        _check_run(path, run_id, config, doc["model"]["n_layers"])
    return doc


def _read_map(path: Path) -> dict:
    _check_file(path, "import map")
    raw_bytes = read_file(path, "import map")
    doc = parse_yaml(raw_bytes, Problem(path), "import map")
    if not isinstance(doc, dict):
        raise UserError(f"{path}: the map must be a mapping with host, model and runs")
    return doc


def _runs_by_text_id(path: Path, runs: dict) -> dict:
    """The runs keyed by their ids as text, as the log's run_id cells are: YAML reads `1:` as a number."""
    by_text: dict = {}
    for run_id, config in runs.items():
        if isinstance(run_id, bool) or not isinstance(run_id, (str, int)):
            raise _map_error(path, f"runs.{run_id}", f"a run id must be text, and YAML reads {run_id} as a "
                             f"{yaml_kind(run_id)}; put it in quotes, as the log writes it")
        if str(run_id) in by_text:
            raise _map_error(path, f"runs.{run_id}", "the run id is given twice (once quoted); keep one")
        by_text[str(run_id)] = config
    return by_text


def _check_section(path: Path, section: dict, kind: str, required: tuple[str, ...], texts: tuple[str, ...],
                   numbers: dict, numbers_required: bool) -> None:
    """The map's host or model: known keys, its text values, and its numbers within their bounds."""
    _known_keys(path, section, kind, f"{kind}.")
    for key in required:
        _map_text(path, f"{kind}.{key}", section.get(key))
    for key in texts:
        _map_text(path, f"{kind}.{key}", section.get(key), required=False)
    for key, bounds in numbers.items():
        if numbers_required or section.get(key) is not None:  # a host's numbers are unknown unless given
            _map_number(path, f"{kind}.{key}", section.get(key), bounds)


def _check_run(path: Path, run_id, config, n_layers: int) -> None:
    if not isinstance(config, dict) or config.get("backend") not in BACKENDS:
        raise _map_error(path, f"runs.{run_id}.backend", "use cpu, gpu or hybrid")
    _known_keys(path, config, "run", f"runs.{run_id}.")
    for key, bounds in RUN_NUMBERS.items():
        if config.get(key) is not None:  # absent: unknown (threads, n_batch, n_ctx) or the default (batch 1)
            _map_number(path, f"runs.{run_id}.{key}", config[key], bounds)
    _check_layers(path, run_id, config, n_layers)


def _check_layers(path: Path, run_id, config: dict, n_layers: int) -> None:
    """gpu_layers by the manifest's rules; a count the map gives as `all` or `half`, or leaves out for a gpu run,
    is written in as the number (a cpu run's is left as written, so its configuration id stays the same)."""
    if config["backend"] == "hybrid" and config.get("gpu_layers") is None:  # a manifest's "half" would be a guess
        raise _map_error(path, f"runs.{run_id}.gpu_layers", f"missing: say how many of the model's {n_layers} "
                         "layers the hybrid run offloaded")
    resolved = {"backend": config["backend"], "gpu_layers": config.get("gpu_layers")}
    ValueChecker(path, _MapProblem(path), gpu_offload=True).check_backend(str(run_id), resolved, n_layers)
    if resolved["gpu_layers"] != config.get("gpu_layers", 0):
        config["gpu_layers"] = resolved["gpu_layers"]


def _map_text(path: Path, key: str, value, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise _map_error(path, key, f"{'missing' if value is None else repr(value)}: needs a text value; "
                         "write one (in quotes if YAML reads it as something else)")


def _map_number(path: Path, key: str, value, bounds: tuple) -> None:
    low, high, whole = bounds
    kind = "a whole number" if whole else "a number"
    if value is None:
        raise _map_error(path, key, f"missing: give {kind} in {low}..{high}")
    wrong_kind = isinstance(value, bool) or not isinstance(value, int if whole else (int, float))
    if wrong_kind or not low <= value <= high:  # a NaN fails the comparison too
        raise _map_error(path, key, f"{value!r} is not {kind} in {low}..{high}; fix the value")


def _known_keys(path: Path, section: dict, kind: str, prefix: str) -> None:
    if not isinstance(section, dict):
        return
    allowed = MAP_KEYS[kind]
    for key in section:
        if key not in allowed:
            raise _map_error(path, f"{prefix}{key}", f"unknown key; use {', '.join(allowed)}")


def _timestamp(path: Path, line: int, text: str) -> float:
    """ISO 8601 or seconds since 1970, in years FIRST_YEAR..LAST_YEAR."""
    try:
        seconds = datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):  # not ISO 8601, or a date before the epoch's range
        if not NUMBER_CELL.fullmatch(text.strip()):
            raise UserError(f"{path}: line {line}: timestamp {text!r} is neither ISO 8601 nor seconds; "
                            "fix the value") from None
        seconds = float(text)
    if not TIMESTAMP_RANGE[0] <= seconds < TIMESTAMP_RANGE[1]:
        raise UserError(f"{path}: line {line}: timestamp {text!r} is outside the years {FIRST_YEAR}..{LAST_YEAR}; "
                        "fix the value (ISO 8601, or seconds since 1970 rather than milliseconds)")
    return seconds


def _number(path: Path, line: int, column: str, text: str, kind: type = float):
    """A log cell: a number (whole where `kind` is int) within LOG_NUMBERS' bounds, else one line naming it."""
    where, cell = f"{path}: line {line}: {column} {text!r}", text.strip()
    plain = WHOLE_CELL if kind is int else NUMBER_CELL
    if not plain.fullmatch(cell) and not (kind is float and NOT_FINITE_CELL.fullmatch(cell)):
        raise UserError(f"{where} is not a {'whole ' if kind is int else ''}number; "
                        "fix the value (digits 0-9, no separators)")
    value = kind(cell)
    if isinstance(value, float) and not math.isfinite(value):  # inf, nan, or beyond a float's range (1e999)
        raise UserError(f"{where} is not a finite number; fix the value")
    low, high = LOG_NUMBERS[column]
    if not low <= value <= high:
        raise UserError(f"{where} is outside {low:g}..{high:g}; fix the value (check its unit)")
    return value


def import_logs(store: Store, log: Path, map_path: Path, power_log: Path | None = None,
                again: bool = False) -> ImportResult:
    """Read and check everything first, then write one run of imported trials in one transaction (once per log,
    map and power log)."""
    mapping = load_map(map_path)
    rows = _read_csv(log, LOG_COLUMNS, "log")
    power = _power_rows(power_log) if power_log else []
    content = _sha(log, map_path, *([power_log] if power_log else []))  # every file checked readable above
    trials, skipped = _trials(log, map_path, rows, mapping, power)
    host = _host(mapping)
    for trial in trials:  # a configuration is the host's: two hosts with the same run ids never merge
        trial["config_id"] = _digest([host["id"], trial["run_id"], mapping["runs"][trial["run_id"]]])
    model = mapping["model"]
    model_path = f"imported:{model['name']}"
    rows_out = [{**t, "model": model["name"], "model_path": model_path, "quant": model["quant"]} for t in trials]
    with store.transaction():
        earlier = store.run_with_sha(content)
        if earlier is not None and not again:
            raise UserError(f"{log}: already imported as run {earlier} (the same log, map and power log); "
                            "pass --again to import it once more")
        store.upsert_host(host)
        store.upsert_model({"path": model_path, "name": model["name"], "quant": model["quant"],
                            "bits_per_weight": float(model["bits_per_weight"]), "n_params": model["n_params"],
                            "n_layers": model["n_layers"], "arch": model.get("arch"), "sha256": None, "size": None,
                            "derived_from": None, "derivation": None})
        run = store.create_run(str(log.resolve()), content, host["id"], rows_out, status="done")
    return ImportResult(run, host["id"], len(trials), sum(t["energy_j"] is not None for t in trials), skipped)


def _trials(log: Path, map_path: Path, rows: list[tuple[int, dict]], mapping: dict,
            power: list) -> tuple[list[dict], list[str]]:
    """The trials of the rows whose run id the map has; the others are skipped, each with its reason."""
    chars_per_token = float(mapping.get("chars_per_token", 4.0))
    trials, skipped = [], []
    for line, row in rows:
        config = mapping["runs"].get(row["run_id"])
        if config is None:
            skipped.append(f"line {line}: run id {row['run_id']!r} is not in {map_path.name}")
            continue
        _check_backend(log, map_path, line, row, config)
        trials.append(_trial(log, line, row, config, mapping, power, chars_per_token))
    if not trials:
        raise UserError(f"{log}: no row matched a run id of {map_path}; map them under `runs:`")
    return trials, skipped


def _check_backend(log: Path, map_path: Path, line: int, row: dict, config: dict) -> None:
    """A row's backend (when the log gives one) must be its run id's in the map: else one of them is wrong."""
    logged = row["backend"].strip()
    if logged and logged.lower() != config["backend"]:
        raise UserError(f"{log}: line {line}: run id {row['run_id']!r} has backend {logged!r} in the log but "
                        f"{config['backend']!r} in {map_path.name}; fix the log or the map")


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
