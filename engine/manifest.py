"""YAML manifests: validation (all of it before anything runs) and expansion into trials.

A manifest has `defaults:` and `runs:` (each with an `id`). Any key given a list
expands into the cartesian product, like llama-bench's comma lists.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import math
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from .errors import UserError
from .gguf import GGUFInfo, read_gguf
from .models import ladder_variant, load_registry, resolve_model, verify
from .paths import expand_home, read_file
from .prompts import Prompt, load_prompt_file, load_suite, suite_names
from .telemetry.steady import WINDOW_MODES

BACKENDS = ("cpu", "gpu", "hybrid")
MAX_SEQUENCES = 256  # llama.cpp's LLAMA_MAX_SEQ
TOP_LEVEL_KEYS = {"description", "defaults", "runs", "shuffle", "shuffle_seed"}
# Keys that describe one run; `repetitions` and `cooldown_s` are per run and never expand.
RUN_DEFAULTS = {
    "model": None, "backend": "cpu", "threads": None, "gpu_layers": None, "n_batch": 512,
    "batch_size": 1, "n_ctx": 2048, "suite": None, "prompt_file": None, "prompt_tokens": None,
    "prompt_limit": None, "chat": True, "max_tokens": 128, "ignore_eos": False, "temperature": 0.0,
    "seed": 42, "repetitions": 1, "cooldown_s": 0.0, "window": "auto",
}
NOT_EXPANDABLE = {"repetitions", "cooldown_s", "window"}
WHOLE_NUMBER_KEYS = ("threads", "n_batch", "batch_size", "n_ctx", "max_tokens", "repetitions", "prompt_tokens",
                     "prompt_limit")
MAX_WHOLE = 2**31 - 1  # llama.cpp takes these as int32 (n_ctx, n_batch: uint32); beyond it ctypes overflows
MAX_THREADS = 512  # ggml's GGML_MAX_N_THREADS
MAX_SEED = 2**32 - 2  # llama_sampler_init_dist takes a uint32, and 2**32 - 1 (LLAMA_DEFAULT_SEED) means random
MAX_WAIT_S = 3600.0  # cooldown_s: an hour at most, like `run --min-window`
MAX_TRIALS = 1_000_000  # a manifest's trials (weeks of running); expanding more takes minutes and gigabytes


@dataclass(frozen=True)
class TrialSpec:
    """One trial: a configuration, one prompt, one repetition."""

    run_id: str
    config_id: str
    model: str  # as written in the manifest
    model_path: str
    quant: str
    backend: str
    threads: int
    gpu_layers: int
    n_batch: int
    batch_size: int
    n_ctx: int
    suite: str | None
    prompt_id: str
    prompt_text: str | None  # None for synthetic prompts (made from the tokenizer)
    prompt_tokens_target: int | None
    chat: bool
    max_tokens: int
    ignore_eos: bool
    temperature: float
    seed: int
    repetition: int
    cooldown_s: float | str  # seconds, or "auto": until power is back near idle (bounded)
    window: str = "auto"  # one of WINDOW_MODES

    def load_key(self) -> tuple:
        return (self.model_path, self.gpu_layers)

    def as_row(self) -> dict:
        return asdict(self)


@dataclass
class Manifest:
    path: Path
    sha256: str
    trials: list[TrialSpec]
    skipped_runs: list[str]


class _DuplicateKey(yaml.constructor.ConstructorError):
    fix = "keep one of them"


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last silently) and reads 1e12 as a number
    (YAML 1.1, PyYAML's, wants 1.0e+12; YAML 1.2 and people write 1e12)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep)


_ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    first_line: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden on purpose
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            line = first_line.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:  # an unhashable key: SafeLoader's own error names it
            continue
        if line != key_node.start_mark.line + 1:
            raise _DuplicateKey(None, None, f"duplicate key {key!r} (first on line {line})", key_node.start_mark)


class Problem:
    """Builds the one-line message: file, run id, key, what is wrong, what to do."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, run_id: str | None, key: str | None, problem: str, fix: str | None = None) -> UserError:
        where = [str(self.path)]
        if run_id is not None:
            where.append(f"run {run_id!r}")
        if key is not None:
            where.append(f"key {key!r}")
        return UserError(f"{': '.join(where)}: {problem}" + (f"; {fix}" if fix else ""))


def load_manifest(path: str | Path, gpu_offload: bool | None = None, skip_gpu: bool = False) -> Manifest:
    """Parse, validate and expand; raises UserError (exit 2) on the first problem found. `gpu_offload`:
    whether llama.cpp here can offload to a GPU (None: ask the installed llama.cpp)."""
    path = Path(path)
    problem = Problem(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a manifest; give the path of a .yaml file")
    raw_bytes = read_file(path, "manifest")
    doc = parse_yaml(raw_bytes, problem, "manifest")
    return parse_manifest(doc, path, hashlib.sha256(raw_bytes).hexdigest(), gpu_offload, skip_gpu)


def parse_yaml(raw_bytes: bytes, problem: Problem, what: str):
    """YAML as people write it (1e12 a number, a repeated key refused); a UserError naming the line and column."""
    try:
        return yaml.load(raw_bytes.decode("utf-8"), Loader=_ManifestLoader)  # a SafeLoader
    except UnicodeDecodeError:
        raise problem(None, None, "not UTF-8 text", f"save the {what} as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or "malformed YAML"
        raise problem(None, None, f"{where}{reason}", getattr(exc, "fix", "fix the YAML syntax")) from None


def parse_manifest(doc, path: Path, sha256: str, gpu_offload: bool | None = None,
                   skip_gpu: bool = False) -> Manifest:
    """Validate and expand an already-parsed manifest; `path` names it in errors and anchors relative files."""
    if gpu_offload is None:
        from . import llama_backend

        gpu_offload = llama_backend.supports_gpu_offload()
    problem = Problem(path)
    if not isinstance(doc, dict):
        raise problem(None, None, "the manifest must be a mapping with 'runs:'", "see config/manifests/quickstart.yaml")
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            raise problem(None, key, "unknown top-level key", f"use one of {', '.join(sorted(TOP_LEVEL_KEYS))}")
    defaults = doc.get("defaults") or {}
    runs = doc.get("runs")
    if not isinstance(defaults, dict):
        raise problem(None, "defaults", "must be a mapping of keys to values",
                      "write `defaults:` then indented `key: value` lines")
    if not isinstance(runs, list) or not runs:
        raise problem(None, "runs", "missing or empty", "add a list of runs, each with an `id`")
    _check_keys(problem, None, defaults)
    _check_shuffle(problem, doc)

    checker = ValueChecker(path, problem, gpu_offload)
    trials, skipped, seen_ids = [], [], set()
    for index, run in enumerate(runs):
        run_id = _run_id(problem, index, run)
        if run_id in seen_ids:
            raise problem(run_id, "id", "duplicate run id", "give every run a unique id")
        seen_ids.add(run_id)
        merged = {**RUN_DEFAULTS, **defaults, **{k: v for k, v in run.items() if k != "id"}}
        _check_keys(problem, run_id, run, allow_id=True)
        configs = checker.expand(run_id, merged)
        if skip_gpu and any(c["backend"] != "cpu" for c in configs):
            skipped.append(run_id)
            configs = [c for c in configs if c["backend"] == "cpu"]
        for config in checker.check_all(run_id, configs):
            trials += checker.trials(run_id, config)
    if doc.get("shuffle"):
        random.Random(doc.get("shuffle_seed", 0)).shuffle(trials)
    return Manifest(path, sha256, trials, skipped)


def _run_id(problem: Problem, index: int, run) -> str:
    """The run's id as text. YAML reads some bare ids as dates, booleans or numbers, whose str() is not as written."""
    where = f"#{index + 1}"
    if not isinstance(run, dict) or run.get("id") is None:
        raise problem(where, "id", "every run needs an `id`", "add `- id: some-name` to the run")
    value = run["id"]
    if isinstance(value, (list, dict)):
        raise problem(where, "id", f"must be text, got {value!r}", "write a name, e.g. `- id: cpu-t8`")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise problem(where, "id", f"must be text, and YAML reads {value} as a {yaml_kind(value)}",
                      "put the id in quotes, as you wrote it")
    if not str(value).strip():
        raise problem(where, "id", "is empty", "give the run a name, e.g. `- id: cpu-t8`")
    return str(value)


def yaml_kind(value) -> str:
    """What YAML made of a bare word, for a message asking to quote it (yes → a boolean, 2018-01-01 → a date)."""
    kinds = {bool: "boolean", float: "number", datetime.date: "date", datetime.datetime: "timestamp"}
    return kinds.get(type(value), type(value).__name__)


def _check_shuffle(problem: Problem, doc: dict) -> None:
    if not isinstance(doc.get("shuffle", False), bool):
        raise problem(None, "shuffle", f"expected true or false, got {doc['shuffle']!r}", "write true or false")
    seed = doc.get("shuffle_seed", 0)
    if not _is_whole(seed):
        raise problem(None, "shuffle_seed", f"expected a whole number, got {seed!r}", "write e.g. shuffle_seed: 7")


def _check_keys(problem: Problem, run_id, mapping: dict, allow_id: bool = False) -> None:
    for key in mapping:
        if key == "id" and allow_id:
            continue
        if key not in RUN_DEFAULTS:
            raise problem(run_id, key, "unknown key", f"use one of {', '.join(RUN_DEFAULTS)}")


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value) -> bool:
    """An int or float (never a bool) that is neither NaN nor ±inf nor an int too large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


class ValueChecker:
    def __init__(self, path: Path, problem: Problem, gpu_offload: bool):
        self.path, self.problem, self.gpu_offload = path, problem, gpu_offload
        self._models: dict[str, tuple[str, GGUFInfo]] = {}
        self._prompts: dict[tuple, list[Prompt] | list[int]] = {}  # synthetic prompts are token counts
        self._trial_count = 0

    def expand(self, run_id: str, merged: dict) -> list[dict]:
        for key in NOT_EXPANDABLE:
            if isinstance(merged[key], list):
                raise self.problem(run_id, key, "cannot be a list", "give a single value")
        for key, value in merged.items():
            self.check_single_values(run_id, key, value)
        if math.prod(len(_as_list(value)) for value in merged.values()) > MAX_TRIALS:
            raise self.problem(run_id, None, f"its lists expand into more than {MAX_TRIALS} configurations",
                               "use shorter lists, or split the run")
        keys = list(merged)
        combos = itertools.product(*(_as_list(merged[k]) for k in keys))
        return [dict(zip(keys, combo)) for combo in combos]

    def check_single_values(self, run_id: str, key: str, value) -> None:
        """A value, or a list of values, each a scalar: an empty list would expand into no trials at all,
        and a list inside a list or a mapping is no value any key takes."""
        if value == []:
            raise self.problem(run_id, key, "is an empty list", "give a value, or a list of at least one")
        seen = set()
        for item in _as_list(value):
            if isinstance(item, (list, dict)):
                raise self.problem(run_id, key, f"expected a single value or a list of values, got {value!r}",
                                   f"write e.g. {key}: [a, b], one level of brackets")
            if (isinstance(item, bool), item) in seen:  # a repeat would queue the same configuration twice
                raise self.problem(run_id, key, f"lists {item!r} twice",
                                   "list each value once; `repetitions:` runs a configuration more than once")
            seen.add((isinstance(item, bool), item))

    def check_all(self, run_id: str, configs: list[dict]) -> list[dict]:
        """Each configuration checked and resolved; two that resolve to the same one (gpu_layers half and 15 on a
        30-layer model, a registry name and its file's path) are refused, as a value listed twice is."""
        checked: dict[tuple, tuple[dict, dict]] = {}  # resolved values: (as written, as resolved)
        for raw in configs:
            config = self.check(run_id, dict(raw))
            same = tuple(sorted((k, repr(v)) for k, v in config.items() if k != "model"))  # model_path says it
            if same in checked:
                first = checked[same][0]
                key = next(k for k in raw if raw[k] != first[k])
                resolved = config["model_path"] if key == "model" else config[key]
                raise self.problem(run_id, key, f"{first[key]!r} and {raw[key]!r} are the same here ({resolved})",
                                   "list it once; `repetitions:` runs a configuration more than once")
            checked[same] = (raw, config)
        return [config for _, config in checked.values()]

    def check(self, run_id: str, c: dict) -> dict:
        p = self.problem
        if c["model"] is None:
            raise p(run_id, "model", "missing", "name a registry model (see `energytui models list`) or a .gguf path")
        self.check_whole_numbers(run_id, c)
        self.check_floats(run_id, c)
        if c["window"] not in WINDOW_MODES:
            raise p(run_id, "window", f"unknown value {c['window']!r}", f"use one of {', '.join(WINDOW_MODES)}")
        for key in ("ignore_eos", "chat"):
            if not isinstance(c[key], bool):
                raise p(run_id, key, f"expected true or false, got {c[key]!r}", "write true or false")
        for key in ("suite", "prompt_file"):
            if c[key] is not None and not isinstance(c[key], str):
                raise p(run_id, key, f"expected a name or a path, got {c[key]!r}", "write it as text")
            if c[key] is not None and not c[key].strip():  # "" would be the manifest's own folder
                raise p(run_id, key, "is empty", "give a suite name or a file path, or leave the key out")
        c["model_path"], info = self.model(run_id, c["model"])
        c["quant"] = info.quant
        self.check_backend(run_id, c, info.n_layers)
        c["threads"] = c["threads"] or _default_threads()
        return c

    def check_whole_numbers(self, run_id: str, c: dict) -> None:
        p = self.problem
        for key in WHOLE_NUMBER_KEYS:
            most = MAX_THREADS if key == "threads" else MAX_WHOLE
            if c[key] is not None and (not _is_whole(c[key]) or c[key] < 1):
                raise p(run_id, key, f"expected a whole number ≥ 1, got {c[key]!r}", "fix the value")
            if c[key] is not None and c[key] > most:
                raise p(run_id, key, f"{c[key]} is too large", f"use at most {most}")
        if not _is_whole(c["seed"]) or not 0 <= c["seed"] <= MAX_SEED:
            raise p(run_id, "seed", f"expected a whole number from 0 to {MAX_SEED}, got {c['seed']!r}",
                    f"use a seed in range (llama.cpp's seeds are 32-bit; {MAX_SEED + 1} means random)")
        if c["batch_size"] > MAX_SEQUENCES:
            raise p(run_id, "batch_size", f"{c['batch_size']} is more than llama.cpp's {MAX_SEQUENCES} sequences",
                    "use a smaller batch_size")
        if c["n_ctx"] < 16:
            raise p(run_id, "n_ctx", f"{c['n_ctx']} is too small", "use at least 16 (2048 is typical)")
        # llama.cpp caps a batch at n_ctx × batch_size tokens: more only inflates the memory estimates
        most = max(c["n_ctx"] * c["batch_size"], RUN_DEFAULTS["n_batch"])
        if c["n_batch"] > most:
            raise p(run_id, "n_batch", f"{c['n_batch']} is more than llama.cpp uses with n_ctx {c['n_ctx']} "
                    f"× batch_size {c['batch_size']}", f"use at most {most}"
                    + (" (the default)" if most == RUN_DEFAULTS["n_batch"] else ""))

    def check_floats(self, run_id: str, c: dict) -> None:
        p = self.problem
        if not _is_finite(c["temperature"]) or c["temperature"] < 0:
            raise p(run_id, "temperature", f"expected a finite number ≥ 0, got {c['temperature']!r}",
                    "use 0 for greedy, or e.g. 0.8")
        wait = c["cooldown_s"]
        if wait != "auto" and not (_is_finite(wait) and 0 <= wait <= MAX_WAIT_S):
            raise p(run_id, "cooldown_s", f"expected seconds from 0 to {MAX_WAIT_S:g} (1 h) or auto, got {wait!r}",
                    "fix the value")

    def check_backend(self, run_id: str, c: dict, n_layers: int) -> None:
        p, backend, layers = self.problem, c["backend"], c["gpu_layers"]
        if backend not in BACKENDS:
            raise p(run_id, "backend", f"unknown backend {backend!r}", "use cpu, gpu or hybrid")
        if backend != "cpu" and not self.gpu_offload:
            raise p(run_id, "backend", f"{backend} needs GPU offload, and the installed llama.cpp has none "
                    "(it would silently run on the CPU)",
                    "install llama-cpp-python built with CUDA (see README), or run with --skip-gpu")
        resolved = {"all": n_layers, "half": n_layers // 2,
                    None: {"cpu": 0, "gpu": n_layers, "hybrid": n_layers // 2}[backend]}
        if isinstance(layers, str) or layers is None:
            if layers not in resolved:
                raise p(run_id, "gpu_layers", f"unknown value {layers!r}", "use a number, half or all")
            layers = resolved[layers]
        if not isinstance(layers, int) or isinstance(layers, bool) or not 0 <= layers <= n_layers:
            raise p(run_id, "gpu_layers", f"{layers!r} is outside 0..{n_layers} for this model",
                    "use a number in range, half or all")
        if backend == "cpu" and layers:
            raise p(run_id, "gpu_layers", f"backend cpu runs no layers on a GPU, got {layers}",
                    "set backend: hybrid or gpu, or gpu_layers: 0")
        if backend == "hybrid" and not 0 < layers < n_layers:
            raise p(run_id, "gpu_layers", f"hybrid needs some but not all of {n_layers} layers, got {layers}",
                    "use a number in between, or half")
        if backend == "gpu" and layers != n_layers:
            raise p(run_id, "gpu_layers", f"backend gpu offloads all {n_layers} layers, got {layers}",
                    "use backend: hybrid for a partial offload")
        c["gpu_layers"] = layers

    def model(self, run_id: str, ref) -> tuple[str, GGUFInfo]:
        ref = str(ref)
        if ref not in self._models:
            _, entries = load_registry()
            path = resolve_model(ref)
            if ref in entries and not path.is_file():
                raise self.problem(run_id, "model", f"{ref} is not downloaded yet",
                                   f"run `energytui models fetch {ref}`")
            if ref not in entries and not path.is_absolute():
                candidate = (self.path.parent / path)
                path = candidate if candidate.is_file() or not path.is_file() else path
            if not path.is_file():
                path = ladder_variant(ref) or path
            if not path.is_file():
                raise self.problem(run_id, "model", f"{ref} is neither a registry name nor an existing file",
                                   "see `energytui models list`, or give the path of a .gguf file")
            try:
                if ref in entries:
                    verify(entries[ref], path)
                info = read_gguf(path)
            except UserError as exc:
                raise self.problem(run_id, "model", str(exc)) from None
            self._models[ref] = (str(path.resolve()), info)
        return self._models[ref]

    def prompts(self, run_id: str, c: dict) -> list[Prompt] | list[int]:
        sources = [k for k in ("suite", "prompt_file", "prompt_tokens") if c[k] is not None]
        if len(sources) != 1:
            raise self.problem(
                run_id, "suite",
                f"{'no prompt source' if not sources else 'several prompt sources: ' + ', '.join(sources)}",
                "give exactly one of suite, prompt_file or prompt_tokens")
        key = (c["suite"], c["prompt_file"], c["prompt_tokens"])
        if key not in self._prompts:
            self._prompts[key] = self._load_prompts(run_id, c)
        chosen = self._prompts[key]
        return chosen[: c["prompt_limit"]] if c["prompt_limit"] else chosen

    def _load_prompts(self, run_id: str, c: dict) -> list[Prompt] | list[int]:
        try:
            if c["prompt_tokens"] is not None:
                return [c["prompt_tokens"]]
            if c["suite"] is not None:
                if c["suite"] not in suite_names():
                    raise self.problem(run_id, "suite", f"unknown suite {c['suite']!r}",
                                       f"use one of {', '.join(suite_names())}")
                return load_suite(c["suite"])
            file = expand_home(c["prompt_file"], "prompt_file")
            return load_prompt_file(file if file.is_absolute() else self.path.parent / file)
        except UserError as exc:
            if str(exc).startswith(str(self.path)):
                raise
            raise self.problem(run_id, "prompt_file" if c["prompt_file"] is not None else "suite", str(exc)) from None

    def trials(self, run_id: str, c: dict) -> list[TrialSpec]:
        prompts = self.prompts(run_id, c)
        self._trial_count += c["repetitions"] * len(prompts)
        if self._trial_count > MAX_TRIALS:
            raise self.problem(run_id, "repetitions", f"the manifest comes to more than {MAX_TRIALS} trials",
                               "use fewer repetitions, prompts or configurations")
        config_id = _config_id(c)
        specs = []
        for repetition in range(c["repetitions"]):
            for prompt in prompts:
                if isinstance(prompt, int):  # synthetic: this many tokens, made from the tokenizer
                    suite, prompt_id, text, tokens_target = None, f"synthetic-{prompt}", None, prompt
                else:
                    suite, prompt_id, text, tokens_target = prompt.suite, prompt.id, prompt.text, None
                specs.append(TrialSpec(
                    run_id=run_id, config_id=config_id, model=str(c["model"]), model_path=c["model_path"],
                    quant=c["quant"], backend=c["backend"], threads=c["threads"], gpu_layers=c["gpu_layers"],
                    n_batch=c["n_batch"], batch_size=c["batch_size"], n_ctx=c["n_ctx"],
                    suite=suite, prompt_id=prompt_id, prompt_text=text, prompt_tokens_target=tokens_target,
                    chat=c["chat"] and tokens_target is None, max_tokens=c["max_tokens"], ignore_eos=c["ignore_eos"],
                    temperature=float(c["temperature"]), seed=c["seed"], repetition=repetition,
                    cooldown_s=c["cooldown_s"] if c["cooldown_s"] == "auto" else float(c["cooldown_s"]),
                    window=c["window"],
                ))
        return specs


CONFIG_KEYS = ("model_path", "backend", "threads", "gpu_layers", "n_batch", "batch_size", "n_ctx", "suite",
               "prompt_file", "prompt_tokens", "chat", "max_tokens", "ignore_eos", "temperature", "seed")


def _config_id(c: dict) -> str:
    """Stable id of everything but the prompt and the repetition: trials of one config are comparable."""
    canonical = json.dumps({k: c[k] for k in CONFIG_KEYS}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _default_threads() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
