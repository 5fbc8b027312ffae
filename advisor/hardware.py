"""Hardware from a spec table (config/hardware.yaml): a prior for machines never measured here.

A spec prior turns a device's published memory bandwidth, compute throughput, TDP and
idle power into the same coefficients a calibration finds (seconds per byte, per FLOP,
watts), through stated efficiency assumptions. It answers "what would an RTX 3060 do?"
with wide intervals and says that it rests on specs alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from energytui.engine.errors import UserError
from energytui.engine.paths import CONFIG_DIR

# Assumptions that turn specs into effective rates; each is a stated prior, not a measurement.
ASSUMPTIONS = {
    "decode_bandwidth_efficiency": (0.55, "decode reaches about 0.55 of peak memory bandwidth (llmfit's rule of "
                                          "thumb, off by -31 % to +38 % across consumer GPUs)"),
    "prefill_compute_efficiency": (0.35, "prefill reaches about 0.35 of peak dense FP16 throughput (llama.cpp's "
                                         "quantized matrix kernels; assumed)"),
    "step_overhead_s": (0.0003, "0.3 ms per decode step of launch and sampling overhead (assumed)"),
    "decode_load": (0.6, "decode draws idle + 0.6 × (TDP − idle): memory-bound (assumed)"),
    "prefill_load": (0.9, "prefill draws idle + 0.9 × (TDP − idle): compute-bound (assumed)"),
}
# Half-width of a spec-prior interval as a factor: the llmfit anchor's spread, rounded out.
SPEC_PRIOR_FACTOR = 1.5


@dataclass(frozen=True)
class Device:
    name: str
    title: str
    kind: str  # gpu | cpu | soc
    memory_bandwidth_gbs: float
    fp16_tflops: float
    cores: int
    tdp_w: float | None
    idle_w: float
    memory_gb: float | None
    sources: dict

    @property
    def backend(self) -> str:
        return "cpu" if self.kind == "cpu" else "gpu"


@lru_cache(maxsize=1)
def devices() -> dict[str, Device]:
    import yaml

    text = (CONFIG_DIR / "hardware.yaml").read_text()
    table = {}
    for entry in yaml.safe_load(text)["devices"]:
        flops = entry.get("tensor_fp16_tflops") or entry["fp16_tflops"]
        table[entry["name"]] = Device(
            name=entry["name"], title=entry["title"], kind=entry["kind"],
            memory_bandwidth_gbs=float(entry["memory_bandwidth_gbs"]), fp16_tflops=float(flops),
            cores=int(entry.get("cores") or 1), tdp_w=float(entry["tdp_w"]) if entry.get("tdp_w") else None,
            idle_w=float(entry.get("idle_w") or 0),
            memory_gb=float(entry["memory_gb"]) if entry.get("memory_gb") else None, sources=entry.get("sources", {}))
    return table


def device(name: str) -> Device:
    table = devices()
    if name not in table:
        close = [n for n in table if name.lower().replace(" ", "-") in n]
        hint = (f"did you mean {', '.join(close[:4])}?" if close
                else "`energytui advise --hardware list` shows the devices it knows")
        raise UserError(f"--hardware {name!r}: not in config/hardware.yaml; {hint}")
    return table[name]


def table_text() -> str:
    """`advise --hardware list`: the spec table, one device a line."""
    lines = [f"{'name':18s} {'kind':4s} {'GB/s':>6s} {'TFLOPS':>7s} {'TDP W':>6s} {'idle W':>6s} {'GiB':>5s}  title"]
    for dev in devices().values():
        tdp = f"{dev.tdp_w:6.0f}" if dev.tdp_w else f"{'–':>6s}"
        memory = f"{dev.memory_gb:5.0f}" if dev.memory_gb else f"{'–':>5s}"
        lines.append(f"{dev.name:18s} {dev.kind:4s} {dev.memory_bandwidth_gbs:6.0f} {dev.fp16_tflops:7.1f} {tdp} "
                     f"{dev.idle_w:6.0f} {memory}  {dev.title}")
    lines.append("sources of every figure: config/hardware.yaml")
    return "\n".join(lines)


def prior_coefficients(dev: Device, with_power: bool = True) -> dict[str, dict[str, float]]:
    """Coefficients in the calibration's columns, from the spec sheet and ASSUMPTIONS (times only if not
    `with_power`)."""
    a = {k: v[0] for k, v in ASSUMPTIONS.items()}
    seconds_per_byte = 1 / (dev.memory_bandwidth_gbs * 1e9 * a["decode_bandwidth_efficiency"])
    seconds_per_flop = 1 / (dev.fp16_tflops * 1e12 * a["prefill_compute_efficiency"])
    if dev.tdp_w is None and with_power:
        raise UserError(f"--hardware {dev.name}: config/hardware.yaml has no TDP for {dev.title}, so its power "
                        "cannot be predicted; add tdp_w with its source")
    dynamic = max((dev.tdp_w or 0.0) - dev.idle_w, 0.0)
    if dev.kind == "cpu":
        per_core_flop = seconds_per_flop * dev.cores  # the table's figure is the whole chip's
        decode = {"cpu_weight_bytes": seconds_per_byte, "cpu_kv_bytes": seconds_per_byte,
                  "cpu_step": a["step_overhead_s"]}
        prefill = {"cpu_flops/thread": per_core_flop, "cpu_attn_flops/thread": 0.0, "fixed": 0.0}
        power = lambda load: {"fixed": dev.idle_w, "cpu_threads": dynamic * load / dev.cores}  # noqa: E731
    else:
        decode = {"gpu_weight_bytes": seconds_per_byte, "gpu_kv_bytes": seconds_per_byte,
                  "gpu_step": a["step_overhead_s"]}
        prefill = {"gpu_flops": seconds_per_flop, "fixed": 0.0}
        power = lambda load: {"fixed": dev.idle_w, "gpu_share": dynamic * load}  # noqa: E731
    times = {"prefill_s": prefill, "decode_step_s": decode}
    if not with_power:
        return times
    return {**times, "prefill_w": power(a["prefill_load"]), "decode_w": power(a["decode_load"])}


def prior_interval() -> float:
    return math.log(SPEC_PRIOR_FACTOR)
