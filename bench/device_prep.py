"""Pieces of the device check (bench/device_bundle.sh makes the bundle, bench/device_check.sh runs it).

    python bench/device_prep.py trim-sdist SDIST.tar.gz OUT.tar.xz
    python bench/device_prep.py derive-model SOURCE.gguf OUT.gguf --layers N
    python bench/device_prep.py check-deps [--target DIR]
    python bench/device_prep.py manifest SOURCE.yaml OUT.yaml [--model OLD=NEW] [--cpu-threads 8,16]
    python bench/device_prep.py run-state DB MANIFEST
    python bench/device_prep.py bench-ratio DB LLAMA_BENCH.json --backend gpu
    python bench/device_prep.py held-out DB --backend gpu
    python bench/device_prep.py source-hash REPO
    python bench/device_prep.py cuda-args
    python bench/device_prep.py summary OUT_DIR

trim-sdist   keeps of llama-cpp-python's source distribution what a CUDA (and CPU) build of the Python
             package and of llama-bench needs: the Python package, llama.cpp's library, ggml's core,
             CPU and CUDA backends, common/ and tools/llama-bench. Dropped: docs, tests, examples,
             the vocabulary-only GGUFs under models/, gguf-py, the other backends' sources (Metal,
             Vulkan, SYCL, ...), the other tools, and the FlashAttention vector-kernel instances for
             K/V type pairs that the default build does not compile. tools/CMakeLists.txt is
             rewritten to add llama-bench alone.
derive-model writes a smaller model from a GGUF with llama.cpp's own quantize API: the first N
             layers kept byte for byte (same tensor types, `prune_layers`), the others dropped. The
             device check carries it because the default model (98 MB) does not fit the 64 MiB
             that travels to the device.
check-deps   says whether every distribution that energytui needs (its requirements, recursively) is
             importable from this interpreter's path, and from where (the bundle's target or the
             machine's own packages). Exit 1 when one is missing.
manifest     copies a manifest with its model names replaced (OLD=NEW also renames OLD's ladder rungs,
             OLD-q8_0 → NEW-q8_0) and the thread counts of its cpu runs set for this machine.
run-state    none, done or unfinished: the latest run of a manifest in a database.
bench-ratio  energytui's decode tokens/s (the backend's trials with 128-token prompts in DB) against
             llama-bench's tg at depth 128 (its JSON output): the ratio of the means.
held-out     the advisor's error on each configuration of one backend when it is left out of the
             calibration (fitted on every other trial of this host), as bench/advisor.py judges it.
source-hash  a digest of what energytui's wheel is built from, so the device check can tell a bundle whose
             wheel is older than the working tree that travelled with it.
cuda-args    what CMake needs beyond nvcc's own toolkit folder, for an image whose CUDA libraries come as
             pip wheels (nvidia-cublas: nvidia/cu13/include and lib): prints `cmake: ARGS` and `libdirs: DIRS`.
             cuBLAS from the toolkit, else from a wheel on this interpreter's path; the driver library
             (libcuda) from the usual folders, else GGML_CUDA_NO_VMM=ON (ggml then never links it).
summary      reads OUT_DIR (device-check.db and the steps' logs) and writes OUT_DIR/summary.md: the
             README's validation table filled from what was measured.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sqlite3
import statistics
import sys
import tarfile
from pathlib import Path, PurePosixPath

# --- trim-sdist ----------------------------------------------------------------------------------

# Paths (relative to the sdist's root) kept whole; everything else is dropped.
KEEP = (
    "CMakeLists.txt", "pyproject.toml", "PKG-INFO", "README.md", "LICENSE.md", "llama_cpp/",
    "vendor/llama.cpp/CMakeLists.txt", "vendor/llama.cpp/LICENSE", "vendor/llama.cpp/licenses/",
    "vendor/llama.cpp/cmake/", "vendor/llama.cpp/include/", "vendor/llama.cpp/src/",
    "vendor/llama.cpp/common/", "vendor/llama.cpp/vendor/",
    "vendor/llama.cpp/tools/llama-bench/",
    "vendor/llama.cpp/ggml/CMakeLists.txt", "vendor/llama.cpp/ggml/cmake/", "vendor/llama.cpp/ggml/include/",
    "vendor/llama.cpp/ggml/src/ggml-cpu/", "vendor/llama.cpp/ggml/src/ggml-cuda/",
)
GGML_SRC = "vendor/llama.cpp/ggml/src/"
# ggml's default GGML_CUDA_FA_QUANTS: the only FlashAttention vector instances its CMake compiles.
FA_VEC_KEPT = {"q4_0-q4_0", "q8_0-q8_0", "f16-f16", "bf16-bf16"}
TOOLS_CMAKE = """# Trimmed by energytui's bench/device_prep.py: llama-bench alone (the GPU decode comparison).
find_package(Threads REQUIRED)
llama_add_compile_flags()
add_subdirectory(llama-bench)
"""


def _kept(rel: str) -> bool:
    if rel.startswith(GGML_SRC) and "/" not in rel[len(GGML_SRC):]:
        return True  # ggml's core sources and its CMakeLists.txt (the backends are folders)
    if "/template-instances/fattn-vec-instance-" in rel:
        return rel.rsplit("fattn-vec-instance-", 1)[1].removesuffix(".cu") in FA_VEC_KEPT
    return any(rel == k or (k.endswith("/") and rel.startswith(k)) for k in KEEP)


def trim_sdist(sdist: Path, out: Path) -> dict:
    """Write the trimmed source as OUT (a .tar.xz whose top folder is the sdist's); return counts and sizes."""
    stats = {"kept_files": 0, "dropped_files": 0, "kept_bytes": 0, "dropped_bytes": 0, "cu_files": 0}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    with tarfile.open(sdist) as src, tarfile.open(partial, "w:xz", preset=6) as dst:
        for member in src.getmembers():
            parts = PurePosixPath(member.name).parts
            top, rel = parts[0], "/".join(parts[1:])
            if member.isdir() or not rel:
                continue
            if rel == "vendor/llama.cpp/tools/CMakeLists.txt":
                data = TOOLS_CMAKE.encode()
                info = tarfile.TarInfo(member.name)
                info.size, info.mode, info.mtime = len(data), 0o644, member.mtime
                dst.addfile(info, io.BytesIO(data))
                continue
            if not (member.isfile() and _kept(rel)):
                stats["dropped_files"] += 1
                stats["dropped_bytes"] += member.size
                continue
            dst.addfile(member, src.extractfile(member))
            stats["kept_files"] += 1
            stats["kept_bytes"] += member.size
            if rel.startswith(GGML_SRC + "ggml-cuda/") and rel.endswith(".cu"):
                stats["cu_files"] += 1
        stats["top"] = top
    partial.replace(out)
    stats["archive_bytes"] = out.stat().st_size
    return stats


# --- derive-model --------------------------------------------------------------------------------

def derive_model(source: Path, out: Path, layers: int) -> dict:
    """Keep the first `layers` layers of `source` (byte for byte) with llama.cpp's quantize API."""
    import ctypes

    import llama_cpp as ll

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from energytui.engine.gguf import read_gguf
    from energytui.engine.models import sha256_of

    info = read_gguf(source)
    if not 0 < layers < info.n_layers:
        raise SystemExit(f"--layers must be between 1 and {info.n_layers - 1} for {source.name}")
    pruned = list(range(layers, info.n_layers))
    prune = (ctypes.c_int32 * (len(pruned) + 1))(*pruned, -1)
    params = ll.llama_model_quantize_default_params()
    params.ftype = _ftype_of(info.quant)
    params.allow_requantize = True  # tensors already of the target type are copied, not requantized
    params.prune_layers = ctypes.cast(prune, ctypes.POINTER(ctypes.c_int32))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    code = ll.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
    if code != 0:
        partial.unlink(missing_ok=True)
        raise SystemExit(f"llama_model_quantize failed ({code})")
    partial.replace(out)
    derived = read_gguf(out)
    record = {
        "derived_from": source.name, "source_sha256": sha256_of(source), "source_layers": info.n_layers,
        "layers": derived.n_layers, "quant": derived.quant,
        "method": f"llama_model_quantize with prune_layers {layers}..{info.n_layers - 1} (the first {layers} "
                  f"layers kept, tensors of the same type copied unchanged); NOT the default model",
        "sha256": sha256_of(out), "size": out.stat().st_size,
    }
    out.with_name(out.name + ".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _ftype_of(quant: str) -> int:
    from energytui.engine.models import _LLAMA_FTYPES

    if quant not in _LLAMA_FTYPES:
        raise SystemExit(f"derive-model: no llama ftype for {quant}")
    return _LLAMA_FTYPES[quant]


# --- check-deps ----------------------------------------------------------------------------------

def check_deps(target: Path | None) -> int:
    """Every requirement of energytui, recursively, importable here; print where each comes from."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    missing: list[str] = []
    todo = [Requirement("energytui")]
    while todo:
        req = todo.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            missing.append(str(req))
            seen[name] = "MISSING"
            continue
        where = str(dist.locate_file(""))
        origin = "bundle" if target and Path(where).resolve().is_relative_to(target.resolve()) else "machine"
        ok = not req.specifier or req.specifier.contains(dist.version, prereleases=True)
        seen[name] = f"{dist.version} ({origin}){'' if ok else f' DOES NOT SATISFY {req}'}"
        if not ok:
            missing.append(f"{req} (found {dist.version})")
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
    for name in sorted(seen):
        print(f"  {name:24s} {seen[name]}")
    if missing:
        print("missing or too old: " + ", ".join(missing))
        return 1
    print(f"all {len(seen)} distributions energytui needs are importable")
    return 0


# --- manifest ------------------------------------------------------------------------------------

def rewrite_manifest(source: Path, out: Path, models: dict[str, str], cpu_threads: list[int] | None,
                     repetitions: int | None = None) -> dict:
    """SOURCE with its model names mapped (OLD and OLD-<rung> → NEW and NEW-<rung>), cpu runs' threads set and,
    if given, the repetitions of every run."""
    import yaml

    doc = yaml.safe_load(source.read_text())

    def rename(value):
        if isinstance(value, list):
            return [rename(v) for v in value]
        for old, new in models.items():
            if value == old or (isinstance(value, str) and value.startswith(old + "-")):
                return new + value[len(old):]
        return value

    sections = [doc.get("defaults", {})] + list(doc.get("runs", []))
    for section in sections:
        if "model" in section:
            section["model"] = rename(section["model"])
    if cpu_threads:
        default_backend = doc.get("defaults", {}).get("backend", "cpu")
        for run in doc.get("runs", []):
            if run.get("backend", default_backend) == "cpu" and "threads" in run:
                run["threads"] = list(cpu_threads) if isinstance(run["threads"], list) else cpu_threads[-1]
    if repetitions:
        doc.setdefault("defaults", {})["repetitions"] = repetitions
        for run in doc.get("runs", []):
            run.pop("repetitions", None)
    doc["description"] = f"{doc.get('description', source.stem)} (device check: from {source.name})"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return doc


def run_state(db: Path, manifest: str) -> str:
    """none | done | unfinished: the latest run of MANIFEST (its path) in DB, for device_check.sh --continue."""
    if not db.is_file():
        return "none"
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT id, status FROM runs WHERE manifest = ? ORDER BY id DESC LIMIT 1",
                           [manifest]).fetchone()
    except sqlite3.Error:
        return "none"
    finally:
        conn.close()
    return "none" if row is None else "done" if row[1] == "done" else "unfinished"


# --- bench-ratio ---------------------------------------------------------------------------------

def bench_ratio(db: Path, bench_json: Path, backend: str, prompt_tokens: int = 128) -> int:
    """energytui decode tok/s of `backend` trials with `prompt_tokens`-token prompts against llama-bench's tg."""
    results = json.loads(bench_json.read_text())
    tg = [r for r in results if r.get("n_gen") and not r.get("n_prompt")]
    if not tg:
        print(f"{bench_json}: no tg result")
        return 1
    bench = statistics.fmean(v for r in tg for v in r["samples_ts"])
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT decode_tps FROM trials WHERE status='done' AND backend=? AND batch_size=1 "
                            "AND prompt_tokens_target=? AND decode_tps IS NOT NULL",
                            [backend, prompt_tokens]).fetchall()
    finally:
        conn.close()
    if not rows:
        print(f"no done {backend} trial with a {prompt_tokens}-token prompt in {db}")
        return 1
    ours = statistics.fmean(r[0] for r in rows)
    depth = tg[0].get("n_depth", "?")
    print(f"llama-bench tg{tg[0]['n_gen']} at depth {depth}, ngl {tg[0].get('n_gpu_layers')}: {bench:.1f} tok/s "
          f"({tg[0].get('backends', '?')}, {tg[0].get('gpu_info') or tg[0].get('cpu_info', '')})")
    print(f"energytui {backend}, {len(rows)} trials, {prompt_tokens}-token prompt: decode {ours:.1f} tok/s")
    ratio = ours / bench
    print(f"decode ratio energytui/llama-bench {ratio:.3f} (target ≥ 0.95) {'PASS' if ratio >= 0.95 else 'FAIL'}")
    return 0


# --- held-out ------------------------------------------------------------------------------------

def held_out(db: Path, backend: str) -> int:
    """Leave each `backend` configuration out of the calibration in turn and predict it (bench/advisor.py's errors)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from advisor import errors, host_trials  # bench/advisor.py

    from energytui.advisor.fit import fit, usable_data

    trials, host, kernels = host_trials(db)
    data = usable_data(trials)

    def identity(t: dict) -> tuple:  # the advisor's configuration: not the workload, not the run
        return (t["model_path"], t["backend"], t["gpu_layers"], t["threads"], t["n_batch"], t["batch_size"])

    configs = sorted({identity(t) for t in data if t["backend"] == backend}, key=str)
    if not configs:
        print(f"no usable {backend} trials in {db}")
        return 1
    latency, energy = [], []
    for config in configs:
        test = [t for t in data if identity(t) == config]
        train = [t for t in data if identity(t) != config]
        result = errors(fit(train, host, kernels=kernels), test)
        latency.append(result["latency_s"])
        energy.append(result["energy_j"])
        model, _, layers, threads, _, batch = config
        print(f"  {backend} {Path(model).stem} gpu_layers {layers} threads {threads} batch {batch}: latency error "
              f"{result['latency_s']:.1%}, energy error {result['energy_j']:.1%} ({result['n']} trials, "
              f"{result['configs']} workloads)")
    worst = max(statistics.fmean(latency), statistics.fmean(energy))
    print(f"held-out {backend} configurations ({len(configs)}, each fitted on every other trial of this host): "
          f"latency MAPE {statistics.fmean(latency):.1%}, energy MAPE {statistics.fmean(energy):.1%} "
          f"(target ≤ 10%) {'PASS' if worst <= 0.10 else 'FAIL'}")
    return 0


# --- source-hash ---------------------------------------------------------------------------------

PACKAGE_DIRS = ("cli", "engine", "advisor", "app", "tui", "config", "data")


def source_hash(repo: Path) -> str:
    """sha256 over energytui's packaged files (pyproject.toml's package-dir folders: code, YAML, prompts)."""
    import hashlib

    digest = hashlib.sha256()
    files = [repo / "pyproject.toml"] + sorted(
        f for folder in PACKAGE_DIRS for f in (repo / folder).rglob("*")
        if f.is_file() and f.suffix in (".py", ".yaml", ".jsonl") and "__pycache__" not in f.parts
        and "models" not in f.relative_to(repo).parts[:2])
    for f in files:
        digest.update(f.relative_to(repo).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


# --- cuda-args -----------------------------------------------------------------------------------

DRIVER_DIRS = ("/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64",
               "/usr/lib/wsl/lib")


def cuda_args(nvcc: str | None = None, search: list[str] | None = None,
              driver_dirs: tuple[str, ...] = DRIVER_DIRS) -> tuple[list[str], list[str]]:
    """Extra CMake arguments and library folders for cuBLAS and the driver library, found as described above."""
    import shutil

    nvcc = nvcc or shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    toolkit = Path(nvcc).resolve().parent.parent
    args: list[str] = []
    libdirs: list[str] = []
    if not any((toolkit / d / "cublas_v2.h").is_file() for d in ("include", "targets/x86_64-linux/include")):
        for entry in search if search is not None else sys.path:
            headers = sorted(Path(entry).glob("nvidia/*/include/cublas_v2.h"))
            if not headers:
                continue
            include = headers[-1].parent
            lib = include.parent / "lib"
            libraries = sorted(lib.glob("libcublas.so*"))
            if libraries:
                args += [f"-DCUDA_cublas_LIBRARY={libraries[0]}", f"-DCMAKE_CUDA_FLAGS=-I{include}"]
                libdirs.append(str(lib))
                break
    stubs = [toolkit / "lib64" / "stubs", toolkit / "lib64", toolkit / "targets/x86_64-linux/lib/stubs"]
    if not any((d / "libcuda.so").exists() for d in stubs):
        found = [Path(d) / name for d in driver_dirs for name in ("libcuda.so", "libcuda.so.1")
                 if (Path(d) / name).exists()]
        args.append(f"-DCUDA_cuda_driver_LIBRARY={found[0]}" if found else "-DGGML_CUDA_NO_VMM=ON")
    return args, libdirs


# --- summary -------------------------------------------------------------------------------------

BUDGETS = ("30W", "100W", "150W", "200W", "400W")


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _line(text: str, pattern: str) -> str | None:
    match = re.search(pattern, text, flags=re.M)
    return match.group(0).strip() if match else None


def summary(out_dir: Path, work_dir: Path | None = None) -> str:
    """The validation table from the device check's database and logs; what is missing shows as –."""
    logs = work_dir / "logs" if work_dir else out_dir

    def read(name: str) -> str:
        path = logs / name
        return path.read_text(errors="replace") if path.is_file() else ""

    mode = read("mode.txt").strip()
    lines = [f"# energytui device check: {mode or 'unknown mode'}", ""]
    if "dry-run" in mode:
        lines += ["DRY RUN: the CPU of this machine, its CPU-only llama.cpp and a replayed synthetic NVML trace "
                  "(Stand-in GPU A/B): the figures prove the flow, not any hardware.", ""]
    steps = [row.split("\t") for row in read("steps.tsv").strip().splitlines() if row]
    if steps:
        lines += ["| step | status | seconds |", "|---|---|---|"] + [f"| {' | '.join(r)} |" for r in steps] + [""]
    table = [("GPU, driver, power limit, idle draw (nvidia-smi before any trial)", read("gpu.txt").strip() or "–"),
             ("model", read("model.txt").strip() or "–")]
    compare = _line(read("gpu-compare.log"), r"^mean \|difference\|.*$")
    table.append(("NVML energy counter vs integrated NVML power, same windows (target ≤ 3%)", compare or "–"))
    db_path = out_dir / "device-check.db"
    if db_path.is_file():
        conn = sqlite3.connect(db_path)
        conn.row_factory = sqlite3.Row
        try:
            run = conn.execute("SELECT id FROM runs WHERE manifest LIKE '%gpu-check%' ORDER BY id DESC LIMIT 1"
                               ).fetchone()
            trials = conn.execute("SELECT * FROM trials WHERE run=? AND status='done'", [run["id"]]).fetchall() \
                if run else []
        except sqlite3.Error as error:
            trials = []
            table.append(("database", f"unreadable: {error}"))
        finally:
            conn.close()
        idle = _mean([t["idle_power_w"] for t in trials])
        tags = ", ".join(sorted({t["energy_tag"] or t["energy_source"] or "?" for t in trials})) or "–"
        table.append((f"idle power before a trial, W, all sources summed ({tags})", _fmt(idle)))
        for backend in ("cpu", "hybrid", "gpu"):
            for prompt in sorted({t["prompt_tokens_target"] for t in trials if t["backend"] == backend}):
                group = [t for t in trials if t["backend"] == backend and t["prompt_tokens_target"] == prompt]
                table.append((f"{backend} (gpu_layers {group[0]['gpu_layers']}), {prompt}-token prompt: TTFT ms / "
                              f"decode tok/s / J/token ({len(group)} trials)",
                              f"{_fmt(_mean([t['ttft_ms'] for t in group]))} / "
                              f"{_fmt(_mean([t['decode_tps'] for t in group]))} / "
                              f"{_fmt(_mean([t['j_per_token'] for t in group]), 4)}"))
            if not any(t["backend"] == backend for t in trials):
                table.append((f"{backend}: TTFT ms / decode tok/s / J/token", "– (not run)"))
    table.append(("decode tok/s, energytui / llama-bench, same build (target ≥ 0.95)",
                  _line(read("llama-bench.log"), r"^decode ratio.*$") or "–"))
    table.append(("advisor, each GPU configuration held out of the calibration (target ≤ 10%)",
                  _line(read("held-out.log"), r"^held-out .*$") or "–"))
    for budget in BUDGETS:
        try:
            advice = json.loads(read(f"advise_{budget}.json") or "null")
        except json.JSONDecodeError:
            advice = None
        table.append((f"advisor's pick at {budget} (--tokens 128 --prompt-tokens 128)", _pick(advice)))
    lines += ["| what | measured |", "|---|---|"] + [f"| {what} | {value} |" for what, value in table]
    text = "\n".join(lines) + "\n"
    (out_dir / "summary.md").write_text(text)
    return text


def _pick(advice) -> str:
    if not isinstance(advice, dict):
        return "–"
    best = advice.get("recommendation")
    if not best:
        return "none fits" + (f": needs {advice['needs']}" if advice.get("needs") else "")
    power = (best.get("values") or {}).get("avg_power_w")
    return f"{best.get('label')}" + (f", {power:.0f} W" if isinstance(power, (int, float)) else "") + \
        f" ({best.get('basis')})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("trim-sdist")
    p.add_argument("sdist", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("derive-model")
    p.add_argument("source", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--layers", type=int, required=True)
    p = sub.add_parser("check-deps")
    p.add_argument("--target", type=Path)
    p = sub.add_parser("manifest")
    p.add_argument("source", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--model", action="append", default=[], help="OLD=NEW")
    p.add_argument("--cpu-threads", help="comma list, e.g. 8,16")
    p.add_argument("--repetitions", type=int)
    p = sub.add_parser("run-state")
    p.add_argument("db", type=Path)
    p.add_argument("manifest")
    p = sub.add_parser("bench-ratio")
    p.add_argument("db", type=Path)
    p.add_argument("bench_json", type=Path)
    p.add_argument("--backend", default="gpu")
    p = sub.add_parser("held-out")
    p.add_argument("db", type=Path)
    p.add_argument("--backend", default="gpu")
    sub.add_parser("cuda-args")
    p = sub.add_parser("source-hash")
    p.add_argument("repo", type=Path)
    p = sub.add_parser("summary")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--work", type=Path, help="the folder whose logs/ the steps wrote")
    args = parser.parse_args(argv)
    if args.cmd == "trim-sdist":
        print(json.dumps(trim_sdist(args.sdist, args.out)))
    elif args.cmd == "derive-model":
        print(json.dumps(derive_model(args.source, args.out, args.layers)))
    elif args.cmd == "check-deps":
        return check_deps(args.target)
    elif args.cmd == "manifest":
        models = dict(pair.split("=", 1) for pair in args.model)
        threads = [int(t) for t in args.cpu_threads.split(",")] if args.cpu_threads else None
        rewrite_manifest(args.source, args.out, models, threads, args.repetitions)
    elif args.cmd == "run-state":
        print(run_state(args.db, args.manifest))
    elif args.cmd == "bench-ratio":
        return bench_ratio(args.db, args.bench_json, args.backend)
    elif args.cmd == "held-out":
        return held_out(args.db, args.backend)
    elif args.cmd == "cuda-args":
        cmake, libdirs = cuda_args()
        print("cmake: " + " ".join(cmake))
        print("libdirs: " + ":".join(libdirs))
    elif args.cmd == "source-hash":
        print(source_hash(args.repo))
    else:
        print(summary(args.out_dir, args.work), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
