"""The device check's pieces (bench/device_prep.py, bench/dryrun/pynvml.py, bench/device_check.sh), here without a GPU.

The whole flow is `bash bench/device_check.sh --dry-run` (minutes, after bench/device_bundle.sh); these check
its parts in seconds: the source trim, the manifests it writes, the NVML stand-in, the figures it compares and
the summary it returns.
"""

import io
import json
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml
from helpers import load_script

from energytui.engine.store import Store
from energytui.engine.telemetry import Sample

ROOT = Path(__file__).resolve().parent.parent
PREP = ROOT / "bench" / "device_prep.py"
CHECK = ROOT / "bench" / "device_check.sh"
MS = 1_000_000


prep = load_script(PREP, "device_prep")


def _prep(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PREP), *map(str, args)], capture_output=True, text=True)


def test_trim_keeps_the_cuda_and_cpu_build_and_llama_bench_only(tmp_path):
    top = "llama_cpp_python-0.3.36"
    files = ["CMakeLists.txt", "pyproject.toml", "llama_cpp/llama_cpp.py", "docs/index.md", "tests/test_llama.py",
             "vendor/llama.cpp/CMakeLists.txt", "vendor/llama.cpp/src/llama.cpp",
             "vendor/llama.cpp/models/ggml-vocab.gguf",
             "vendor/llama.cpp/ggml/src/ggml.c", "vendor/llama.cpp/ggml/src/CMakeLists.txt",
             "vendor/llama.cpp/ggml/src/ggml-cpu/ggml-cpu.c", "vendor/llama.cpp/ggml/src/ggml-cuda/mmq.cu",
             "vendor/llama.cpp/ggml/src/ggml-cuda/template-instances/mmq-instance-q4_1.cu",
             "vendor/llama.cpp/ggml/src/ggml-cuda/template-instances/fattn-vec-instance-f16-f16.cu",
             "vendor/llama.cpp/ggml/src/ggml-cuda/template-instances/fattn-vec-instance-q4_1-q5_0.cu",
             "vendor/llama.cpp/ggml/src/ggml-vulkan/ggml-vulkan.cpp", "vendor/llama.cpp/ggml/src/ggml-metal/x.m",
             "vendor/llama.cpp/tools/CMakeLists.txt", "vendor/llama.cpp/tools/llama-bench/llama-bench.cpp",
             "vendor/llama.cpp/tools/server/server.cpp", "vendor/llama.cpp/common/common.cpp"]
    sdist = tmp_path / "sdist.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name in files:
            data = f"// {name}\n".encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "trimmed.tar.xz"
    stats = prep.trim_sdist(sdist, out)
    with tarfile.open(out) as tar:
        kept = {m.name.split("/", 1)[1] for m in tar.getmembers()}
        tools = tar.extractfile(f"{top}/vendor/llama.cpp/tools/CMakeLists.txt").read().decode()
    dropped = {"docs/index.md", "tests/test_llama.py", "vendor/llama.cpp/models/ggml-vocab.gguf",
               "vendor/llama.cpp/ggml/src/ggml-vulkan/ggml-vulkan.cpp", "vendor/llama.cpp/ggml/src/ggml-metal/x.m",
               "vendor/llama.cpp/tools/server/server.cpp",
               "vendor/llama.cpp/ggml/src/ggml-cuda/template-instances/fattn-vec-instance-q4_1-q5_0.cu"}
    assert kept == set(files) - dropped
    assert "add_subdirectory(llama-bench)" in tools and "server" not in tools
    assert stats["cu_files"] == 3 and stats["dropped_files"] == len(dropped)


def test_manifest_rewrite_renames_the_model_and_its_rungs_and_sets_cpu_threads(tmp_path):
    out = tmp_path / "calibrate.yaml"
    prep.rewrite_manifest(ROOT / "config" / "manifests" / "gpu-calibrate.yaml", out,
                          {"smollm2-135m-q4_1": "small-10l"}, [8, 16], repetitions=1)
    doc = yaml.safe_load(out.read_text())
    assert doc["defaults"]["model"] == ["small-10l", "small-10l-q8_0"]
    assert doc["defaults"]["repetitions"] == 1
    assert {run["backend"] for run in doc["runs"]} == {"cpu", "gpu"}
    for run in doc["runs"]:
        assert run.get("threads") == ([8, 16] if run["backend"] == "cpu" else None)
    check = tmp_path / "check.yaml"
    prep.rewrite_manifest(ROOT / "config" / "manifests" / "gpu-check.yaml", check, {"smollm2-135m-q4_1": "x"}, None)
    doc = yaml.safe_load(check.read_text())
    assert doc["defaults"]["model"] == "x" and [r["backend"] for r in doc["runs"]] == ["cpu", "hybrid", "gpu"]


def test_the_nvml_stand_in_runs_on_the_clock_counts_on_across_loops_and_refuses_settings():
    shim = load_script(ROOT / "bench" / "dryrun" / "pynvml.py", "dryrun_pynvml")
    shim.nvmlInit()
    handle = shim.nvmlDeviceGetHandleByIndex(0)
    assert shim.nvmlDeviceGetName(handle).startswith("Stand-in")
    replay = shim._replay
    period_s = len(replay.gpus[0]["records"]) * replay.step_ms / 1000
    readings = []
    for shift in (0.0, period_s - 0.06, period_s + 0.01, 2 * period_s + 0.5):
        replay._t0 = time.monotonic() - shift
        readings.append(shim.nvmlDeviceGetTotalEnergyConsumption(handle))
    assert readings == sorted(readings) and len(set(readings)) == 4  # the counter never goes back
    with pytest.raises(RuntimeError, match="stand-in"):
        shim.nvmlDeviceSetPowerManagementLimit(handle, 100_000)


def test_the_check_only_reads_gpu_state():
    text = CHECK.read_text() + PREP.read_text()
    assert not re.search(r"nvidia-smi\s+.*(-pl\b|-lgc|-lmc|-ac\b|--power-limit|--lock|-pm\b|-rgc|-r\b)", text)
    assert "nvidia-smi --query-gpu" in text
    assert not re.search(r"nvml\w*Set", text)
    syntax = subprocess.run(["bash", "-n", str(CHECK)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    usage = subprocess.run(["bash", str(CHECK), "--bogus"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr


def _db_with_trials(path: Path) -> Path:
    store = Store(path)
    manifest = [{"run_id": b, "config_id": b, "backend": b, "gpu_layers": layers, "prompt_tokens_target": 128,
                 "batch_size": 1} for b, layers in (("cpu", 0), ("gpu", 10))]
    run = store.create_run("/x/run/gpu-check.yaml", "sha", None, manifest)
    for backend, tps in (("cpu", 100.0), ("gpu", 400.0)):
        trial = store.next_pending(run)["id"]
        samples = [Sample(t * 10 * MS, "gpu0", "counter", 80.0, 0.8 * t) for t in range(0, 101)]
        store.finish_trial(trial, {"t_start_ns": 100 * MS, "t_end_ns": 900 * MS, "ttft_ms": 20.0, "decode_tps": tps,
                                   "j_per_token": 0.5, "idle_power_w": 70.0, "energy_tag": "counter"}, [], samples)
    store.finish_run(run, "done")
    store.close()
    return path


def test_bench_ratio_compares_decode_with_llama_bench_tg(tmp_path):
    db = _db_with_trials(tmp_path / "d.db")
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([{"n_prompt": 0, "n_gen": 128, "n_depth": 128, "n_gpu_layers": 99,
                                  "samples_ts": [410.0, 420.0, 430.0], "backends": "CUDA", "gpu_info": "H100"}]))
    result = _prep("bench-ratio", db, bench, "--backend", "gpu")
    assert result.returncode == 0, result.stderr
    assert "decode ratio energytui/llama-bench 0.952" in result.stdout and "PASS" in result.stdout
    assert prep.run_state(db, "/x/run/gpu-check.yaml") == "done"
    assert prep.run_state(db, "/x/run/other.yaml") == "none"


def test_summary_fills_the_validation_table_from_the_database_and_logs(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    (work / "logs").mkdir(parents=True)
    out.mkdir()
    _db_with_trials(out / "device-check.db")
    logs = work / "logs"
    (logs / "gpu.txt").write_text("NVIDIA H100 80GB HBM3, 580.159.04, 700.00 W, 70.12 W, 81559 MiB\n")
    (logs / "steps.tsv").write_text("build\tok\t250\ncalibrate\tSTOPPED at its 90 s limit\t90\n")
    (logs / "gpu-compare.log").write_text("mean |difference| 0.80% over 18 trial windows (target ≤ 3%) PASS\n")
    (logs / "llama-bench.log").write_text("decode ratio energytui/llama-bench 0.970 (target ≥ 0.95) PASS\n")
    (logs / "advise_400W.json").write_text(json.dumps({"recommendation": {
        "label": "GPU · all layers", "basis": "calibrated here", "values": {"avg_power_w": 180.0}}}))
    (logs / "advise_30W.json").write_text(json.dumps({"recommendation": None, "needs": "a budget of at least 90 W"}))
    text = prep.summary(out, work)
    assert (out / "summary.md").read_text() == text
    assert "| calibrate | STOPPED at its 90 s limit | 90 |" in text
    assert "NVIDIA H100 80GB HBM3, 580.159.04" in text
    assert "0.80% over 18 trial windows" in text and "0.970" in text
    assert re.search(r"\| gpu \(gpu_layers 10\), 128-token prompt: .* \| 20\.0 / 400\.0 / 0\.5000 \|", text)
    assert "| hybrid: TTFT ms / decode tok/s / J/token | – (not run) |" in text
    assert "GPU · all layers, 180 W (calibrated here)" in text
    assert "none fits: needs a budget of at least 90 W" in text


def test_source_hash_follows_the_packaged_files(tmp_path):
    repo = tmp_path / "repo"
    (repo / "engine").mkdir(parents=True)
    (repo / "data" / "models").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\n")
    (repo / "engine" / "a.py").write_text("x = 1\n")
    before = prep.source_hash(repo)
    (repo / "data" / "models" / "m.yaml").write_text("ignored: true\n")  # downloaded models are not packaged
    (repo / "README.md").write_text("# not in the wheel's code\n")
    assert prep.source_hash(repo) == before
    (repo / "engine" / "a.py").write_text("x = 2\n")
    assert prep.source_hash(repo) != before


def test_every_requirement_of_energytui_is_importable_here():
    result = _prep("check-deps")
    assert result.returncode == 0, result.stdout
    assert "llama-cpp-python" in result.stdout and "textual" in result.stdout


def test_cuda_args_find_cublas_in_a_pip_wheel_when_the_toolkit_lacks_it(tmp_path):
    toolkit, site, driver = tmp_path / "cuda", tmp_path / "site", tmp_path / "driver"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "include").mkdir()
    (toolkit / "bin" / "nvcc").write_text("")
    (site / "nvidia" / "cu13" / "include").mkdir(parents=True)
    (site / "nvidia" / "cu13" / "lib").mkdir()
    (site / "nvidia" / "cu13" / "include" / "cublas_v2.h").write_text("")
    (site / "nvidia" / "cu13" / "lib" / "libcublas.so.13").write_text("")
    args, libdirs = prep.cuda_args(str(toolkit / "bin" / "nvcc"), [str(site)], (str(driver),))
    lib = site / "nvidia" / "cu13" / "lib"
    assert args == [f"-DCUDA_cublas_LIBRARY={lib / 'libcublas.so.13'}",
                    f"-DCMAKE_CUDA_FLAGS=-I{site / 'nvidia' / 'cu13' / 'include'}", "-DGGML_CUDA_NO_VMM=ON"]
    assert libdirs == [str(lib)]
    driver.mkdir()
    (driver / "libcuda.so.1").write_text("")
    (toolkit / "include" / "cublas_v2.h").write_text("")
    args, libdirs = prep.cuda_args(str(toolkit / "bin" / "nvcc"), [str(site)], (str(driver),))
    assert args == [f"-DCUDA_cuda_driver_LIBRARY={driver / 'libcuda.so.1'}"] and libdirs == []
