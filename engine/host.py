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


def describe_host(name: str | None = None) -> dict:
    """Host facts; `id` is stable for the same hostname, CPU, RAM, GPUs and llama.cpp build, and `name` (a
    fleet worker's readable name: two workers on one machine are two hosts)."""
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
        "python": platform.python_version(),
        "name": name,
    }
    identity = "|".join(str(facts[k])
                        for k in ("hostname", "cpu", "cores", "ram_gb", "gpu", "llama_cpp", "gpu_offload"))
    identity += f"|name={name}" if name else ""  # unnamed: the id it always had
    return {"id": hashlib.sha256(identity.encode()).hexdigest()[:12], **facts}
