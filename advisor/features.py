"""From trial rows to the advisor's features and targets.

Targets of trials measured here ("phases" mode):
  prefill_ms          time to first token (all sequences' prompts)
  decode_ms_per_step  one decode step for every sequence of the batch
  prefill_power_w     average total power during prefill
  decode_power_w      average total power during decode
Energy and latency per request are derived from these four, so the parts stay consistent.
Imported logs carry only whole requests ("request" mode): latency_ms and power_w.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

TARGETS = ("prefill_ms", "decode_ms_per_step", "prefill_power_w", "decode_power_w")
MODES = {"phases": TARGETS, "request": ("latency_ms", "power_w")}
FEATURES = ("log_prompt", "log_batch", "log_gen", "log_context", "bits_per_weight", "log_params", "log_threads",
            "gpu_fraction")


@dataclass(frozen=True)
class Config:
    """A configuration the advisor can recommend: everything but the workload."""

    model: str
    model_path: str
    quant: str
    bits_per_weight: float
    n_params: int
    n_layers: int
    backend: str
    threads: int
    gpu_layers: int
    batch_size: int

    @property
    def gpu_fraction(self) -> float:
        return self.gpu_layers / self.n_layers if self.n_layers else 0.0

    def label(self) -> str:
        where = {"cpu": "CPU", "gpu": "GPU", "hybrid": f"hybrid ({self.gpu_layers}/{self.n_layers} layers on GPU)"}
        return (f"{where[self.backend]} · {self.model} ({self.quant}, {self.bits_per_weight:.2f} bits/weight) · "
                f"{self.threads} threads · batch {self.batch_size}")

    def as_dict(self) -> dict:
        return asdict(self)


def feature_vector(config: Config, prompt_tokens: int, gen_tokens: int, quants: list[str]) -> list[float]:
    """The numbers every model family sees; `gen_tokens` is per sequence.

    Besides bits per weight, each quantization type seen in the data gets an indicator:
    llama.cpp's CPU kernels differ by type (Q4_0 and Q8_0 have repacked fast paths here),
    so speed is not monotonic in bits per weight.
    """
    return [
        math.log(max(prompt_tokens, 1)),
        math.log(config.batch_size),
        math.log(max(gen_tokens, 1)),
        math.log(prompt_tokens + gen_tokens / 2),  # mean context length while decoding
        config.bits_per_weight,
        math.log(config.n_params),
        math.log(config.threads),
        config.gpu_fraction,
        *(float(config.quant == quant) for quant in quants),
    ]


def config_of(trial: dict) -> Config:
    return Config(
        model=trial["model"], model_path=trial["model_path"], quant=trial["quant"],
        bits_per_weight=float(trial["bits_per_weight"]), n_params=int(trial["n_params"]),
        n_layers=int(trial["n_layers"] or 0), backend=trial["backend"], threads=int(trial["threads"]),
        gpu_layers=int(trial["gpu_layers"]), batch_size=int(trial["batch_size"]),
    )


def usable(trial: dict, mode: str = "phases") -> bool:
    """Done, with the mode's timings and energy, and the model's size and bits per weight known."""
    steps = (trial.get("gen_tokens") or 0) / (trial.get("batch_size") or 1)
    needed = ("ttft_ms", "e2e_ms", "prefill_energy_j", "decode_energy_j") if mode == "phases" else ("e2e_ms", "energy_j")
    return bool(trial["status"] == "done" and steps >= (2 if mode == "phases" else 1) and trial.get("bits_per_weight")
                and trial.get("n_params") and all(trial.get(k) for k in needed))


def targets_of(trial: dict, mode: str = "phases") -> dict[str, float]:
    if mode == "request":
        return {"latency_ms": trial["e2e_ms"], "power_w": trial["energy_j"] / (trial["e2e_ms"] / 1e3)}
    steps = trial["gen_tokens"] / trial["batch_size"]
    decode_ms = trial["e2e_ms"] - trial["ttft_ms"]
    return {
        "prefill_ms": trial["ttft_ms"],
        "decode_ms_per_step": decode_ms / (steps - 1),
        "prefill_power_w": trial["prefill_energy_j"] / (trial["ttft_ms"] / 1e3),
        "decode_power_w": trial["decode_energy_j"] / (decode_ms / 1e3),
    }


def derive(parts: dict[str, float], gen_tokens: int, batch_size: int) -> dict[str, float]:
    """Latency, energy per request, J/token and average power from the four predicted parts.

    A batch serves `batch_size` requests at once: each waits the whole batch's latency and
    is charged its share of the batch's energy.
    """
    if "latency_ms" in parts:  # request mode
        latency_s = parts["latency_ms"] / 1e3
        batch_energy = parts["power_w"] * latency_s
    else:
        prefill_s = parts["prefill_ms"] / 1e3
        decode_s = parts["decode_ms_per_step"] * max(gen_tokens - 1, 0) / 1e3
        batch_energy = parts["prefill_power_w"] * prefill_s + parts["decode_power_w"] * decode_s
        latency_s = prefill_s + decode_s
    energy = batch_energy / batch_size
    return {"latency_s": latency_s, "energy_j": energy, "j_per_token": energy / gen_tokens,
            "avg_power_w": batch_energy / latency_s, "edp_js": energy * latency_s}
