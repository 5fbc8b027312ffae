"""This machine as both faces describe it (host facts, llama.cpp's build, the power sources and what they
achieve), and the models it has: fetch the default one, list them, requantize a ladder."""

from __future__ import annotations

from dataclasses import dataclass

from energytui.engine import host, llama_backend, metering, native_loop
from energytui.engine.metering import MeterOptions, ProbeReport, parse_seconds
from energytui.engine.manifest import MAX_THREADS
from energytui.engine.models import default_model_name, fetch, ladder, list_models

__all__ = ["MAX_THREADS", "MachineReport", "MeterOptions", "default_model_name", "describe", "fetch", "ladder",
           "list_models", "parse_seconds"]


@dataclass
class MachineReport:
    host: dict  # engine.host.describe_host's facts
    features: str  # llama.cpp's CPU feature line
    weights: str  # where loaded models keep their weights (engine/llama_backend.weight_buffers)
    power: ProbeReport  # every power source sampled for a second, and those that cannot be read
    decode_loop: str  # which loop takes greedy decode steps (engine/native_loop.py), and why not the C one


def describe(options: MeterOptions) -> MachineReport:
    return MachineReport(host.describe_host(), llama_backend.system_info(), llama_backend.weight_buffers(),
                         metering.probe_sources(options), native_loop.describe())
