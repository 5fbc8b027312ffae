"""What machine the trials run on: stored with every trial so data from several hosts never mixes silently."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
from pathlib import Path

from . import llama_backend
from .telemetry.nvml import describe_gpus, gpu_memory_gb


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return 0.0


def available_ram_bytes() -> int | None:
    """Memory the kernel says a new process can use now (MemAvailable), or None where it cannot tell."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


IDENTITY = ("hostname", "cpu", "cores", "ram_gb", "gpu", "llama_cpp", "gpu_offload")  # before builds were recorded


def describe_host(name: str | None = None) -> dict:
    """Host facts; `id` is stable for the same hostname, CPU, RAM, GPUs and llama.cpp build (its version, GPU
    offload and the features it was compiled with: a rebuild with other CPU flags runs at other speeds), and
    `name` (a fleet worker's readable name: two workers on one machine are two hosts). `legacy_id` is the id
    the same facts had before the build's features were part of it (Store.resolve_host)."""
    gpu, driver = describe_gpus()
    facts = {
        "hostname": socket.gethostname(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "ram_gb": _ram_gb(),
        "gpu": gpu,
        "gpu_driver": driver,
        "gpu_memory_gb": gpu_memory_gb(),  # not part of the id: the same GPUs are the same host
        "os": platform.platform(),
        "llama_cpp": llama_backend.version(),
        "gpu_offload": int(llama_backend.supports_gpu_offload()),
        "build": llama_backend.system_info(),
        "python": platform.python_version(),
        "name": name,
    }
    return {"id": _digest(facts, (*IDENTITY, "build")), "legacy_id": _digest(facts, IDENTITY), **facts}


def _digest(facts: dict, keys: tuple[str, ...]) -> str:
    identity = "|".join(str(facts[k]) for k in keys)
    identity += f"|name={facts['name']}" if facts["name"] else ""  # unnamed: the id it always had
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def build_change(recorded: str, installed: str) -> str:
    """How two llama.cpp builds' feature lines (llama_backend.system_info) differ, in words."""
    then, now = _features(recorded), _features(installed)
    return (f"built with {', '.join(sorted(then - now)) or 'nothing more'}, where the installed one has "
            f"{', '.join(sorted(now - then)) or 'nothing more'}")


def _features(line: str) -> set[str]:
    """'CPU : AVX2 = 1 | REPACK = 1 | CUDA : ARCHS = 890 |' -> {'AVX2 = 1', 'REPACK = 1', 'CUDA ARCHS = 890'}"""
    found, backend = set(), "CPU"
    for part in line.split("|"):
        if " : " in part:
            backend, part = (side.strip() for side in part.split(" : ", 1))
        if part.strip():
            found.add(part.strip() if backend == "CPU" else f"{backend} {part.strip()}")
    return found
