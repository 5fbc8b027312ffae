"""The physics of llama.cpp inference, as the work each phase does on each device.

A configuration runs a model's layers on the CPU, the GPU, or split between them
(hybrid: `gpu_layers` of `n_layers` on the GPU). For a request of P prompt tokens,
G generated tokens per sequence and B sequences decoded together:

  prefill       ≈ FLOPs (2 × matrix weights × P × B, plus attention over the context)
                  ÷ effective compute, + one pass over the weights per n_batch chunk,
                  + per-token and fixed overhead
  decode step   ≈ bytes read (the weights once for the whole batch + each sequence's KV
                  cache at the current context) ÷ effective bandwidth, + FLOPs (2 ×
                  matrix weights × B) ÷ effective compute, + per-sequence and per-step
                  overhead
  power         = idle + dynamic (per busy CPU thread, per GPU share)

Each term below is one column; calibration (fit.py) finds one non-negative coefficient
per column (seconds per FLOP, seconds per byte, watts per thread, ...). CPU terms come
in pairs, divided by the thread count and not (Amdahl: the parallel and serial parts),
so the calibration answers for thread counts it did not measure.

The CPU's matrix kernels differ by weight type several-fold. Where this host's kernel
probe (engine/kernels.py) timed the type, the matrix work is one column, `cpu_kernel_s`:
its FLOPs × the probe's seconds per FLOP at the rows multiplied at once and the thread
count, so one calibrated scale answers for every type the probe timed, run here or not.
Otherwise the FLOPs go to per-type columns (fit.py's KERNEL_COLUMNS).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace

from energytui.engine.gguf import kv_bytes_per_token
from energytui.engine.record import check_names
from energytui.engine.report import build_of

# ggml block sizes in bits per weight, for a rung of the quantization ladder not on disk.
QUANT_BITS = {"F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.5625, "Q5_1": 6.0, "Q5_0": 5.5,
              "Q5_K_M": 5.5, "Q4_1": 5.0, "Q4_0": 4.5, "Q4_K_M": 4.5, "Q3_K_M": 3.4375, "Q2_K": 2.625}
# llama.cpp's CPU matrix kernels by weight type (vendor/llama.cpp ggml-cpu: llamafile/sgemm.cpp's tinyBLAS
# handles F32, BF16, F16, Q8_0, Q4_0, Q5_0 and IQ4_NL; repack.cpp tiles Q4_0, Q8_0 and the K-quants). The
# others take the row-by-row dot-product path, several times slower in prefill here (Q4_1: 115 tok/s
# against Q4_0's 470). A quantization never measured borrows the calibration of its own family.
TILED_KERNELS = frozenset({"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_0", "IQ4_NL", "Q2_K", "Q4_K_M", "Q5_K_M",
                           "Q6_K"})
# llama.cpp's KV cache is F16 by default (engine/gguf.py), so attention multiplies F16 matrices: Q·Kᵀ and ·V (with
# flash attention, which llama.cpp's default "auto" turns on for the CPU: its graphs run FLASH_ATTN_EXT nodes).
ATTENTION_KERNEL = "F16"
# Attention runs over the KV cells in use padded to a multiple of 256, at least 256 (llama_kv_cache::get_n_kv),
# and with several sequences in one unified cache every query runs over every sequence's cells (masked).
KV_PAD = 256

COLUMNS = {
    "prefill": ("cpu_kernel_s", "cpu_flops/thread", "cpu_flops", "cpu_attn_flops/thread", "cpu_weight_passes",
                "gpu_flops", "gpu_weight_passes", "weight_uploads", "chunks", "tokens", "logits", "fixed"),
    "decode": ("cpu_kernel_s", "cpu_weight_bytes/thread", "cpu_weight_bytes", "cpu_flops/thread", "cpu_kv_bytes/thread",
               "cpu_kv_bytes", "gpu_weight_bytes", "gpu_kv_bytes", "gpu_flops", "split_steps", "logits", "cpu_step",
               "gpu_step"),
    "power": ("fixed", "cpu_threads", "gpu_share"),
}


@dataclass(frozen=True)
class ModelShape:
    """What the physics needs of a model, from its GGUF header (engine/gguf.py)."""

    name: str
    path: str
    quant: str
    n_params: int
    n_layers: int
    bits_per_weight: float
    decode_bytes: int  # weight bytes read per decode step
    matmul_params: int  # weights multiplied per token
    layer_bytes: int = 0
    n_embd: int = 0
    n_head: int = 0
    n_head_kv: int = 0
    head_dim: int = 0
    n_ctx_train: int = 0
    n_vocab: int = 0
    size: int = 0  # file bytes (weights in memory)

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of one token in every layer (0 when the header did not say: then KV is not modelled)."""
        return kv_bytes_per_token(self.n_layers, self.n_head_kv, self.head_dim)

    @property
    def attn_flops_per_context_token(self) -> int:
        """Q·Kᵀ and attention·V for one new token against one context token, every layer."""
        return 4 * self.n_layers * self.n_head * self.head_dim

    @property
    def weight_bytes(self) -> int:
        return self.size or self.decode_bytes

    def matches(self, ref: str) -> bool:
        """`--model` names this model: its name, its quantization, or the end of its path."""
        return ref in (self.name, self.quant) or self.path.endswith(ref)

    def at_quant(self, quant: str) -> "ModelShape":
        """The same model at another rung of the ladder: matrix bytes rescaled by bits per weight."""
        bits = QUANT_BITS[quant]
        scale = bits / self.bits_per_weight
        return replace(self, quant=quant, name=f"{self.name} as {quant}", path=f"{self.path}#{quant}",
                       bits_per_weight=bits, decode_bytes=round(self.decode_bytes * scale),
                       layer_bytes=round(self.layer_bytes * scale), size=round(self.weight_bytes * scale))

    @classmethod
    def from_row(cls, row: dict) -> "ModelShape":
        """From a trial row joined with its model (store.trials); imported models may lack the header's shape."""
        n_params, bits = int(row["n_params"]), float(row["bits_per_weight"])
        name = row["model"]
        name = name.rsplit("/", 1)[-1].removesuffix(".gguf") if "/" in name else name  # a path: its file's name
        return cls(name=name, path=row["model_path"], quant=row["quant"], n_params=n_params,
                   n_layers=int(row.get("n_layers") or 0), bits_per_weight=bits,
                   decode_bytes=int(row.get("decode_bytes") or n_params * bits / 8),
                   matmul_params=int(row.get("matmul_params") or n_params),
                   layer_bytes=int(row.get("layer_bytes") or 0), n_embd=int(row.get("n_embd") or 0),
                   n_head=int(row.get("n_head") or 0), n_head_kv=int(row.get("n_head_kv") or 0),
                   head_dim=int(row.get("head_dim") or 0), n_ctx_train=int(row.get("n_ctx_train") or 0),
                   n_vocab=int(row.get("n_vocab") or 0), size=int(row.get("model_size") or 0))

    @classmethod
    def from_gguf(cls, info, name: str | None = None) -> "ModelShape":
        """From engine/gguf.py's header reading, whose field names these are."""
        shared = {f.name: getattr(info, f.name) for f in fields(cls) if f.name not in ("name", "path")}
        return cls(name=name or info.path.stem, path=str(info.path), **shared)


@dataclass(frozen=True)
class Config:
    """Everything that identifies how a request runs, but the request itself.

    `build` is how llama.cpp was built on the host ("cpu" or "gpu": with GPU offload),
    because a GPU build uses the GPU for large prompt batches even at 0 GPU layers.
    `threads` and `n_batch` stay None where a log did not record them.
    """

    host_id: str
    build: str
    backend: str
    threads: int | None
    gpu_layers: int
    n_batch: int | None
    batch_size: int
    model: ModelShape
    device: str = ""  # a spec-table device for what-if answers ("" = the host itself)

    @property
    def gpu_share(self) -> float:
        if self.backend == "gpu":
            return 1.0
        return min(self.gpu_layers / self.model.n_layers, 1.0) if self.model.n_layers else 0.0

    def key(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    def label(self) -> str:
        m = self.model
        where = {"cpu": "CPU", "gpu": "GPU",
                 "hybrid": f"hybrid ({self.gpu_layers}/{m.n_layers} layers on GPU)"}[self.backend]
        if self.device:
            where += f" [{self.device}]"
        threads = "threads unknown" if self.threads is None else f"{self.threads} thread{'s' * (self.threads != 1)}"
        n_batch = f" · n_batch {self.n_batch}" if self.n_batch not in (None, 512) else ""
        build = " · GPU build" if self.build == "gpu" and self.backend == "cpu" else ""
        return (f"{where} · {m.name} ({m.quant}, {m.bits_per_weight:.2f} bits/weight) · {threads}{n_batch}{build} · "
                f"batch {self.batch_size}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        return cls(**{**data, "model": ModelShape(**data["model"])})


def config_of(row: dict) -> Config:
    threads = row.get("threads")
    return Config(host_id=row.get("host_id") or "", build=build_of(row) or "unknown", backend=row["backend"],
                  threads=int(threads) if threads else None, gpu_layers=int(row.get("gpu_layers") or 0),
                  n_batch=int(row["n_batch"]) if row.get("n_batch") else None,
                  batch_size=int(row.get("batch_size") or 1), model=ModelShape.from_row(row))


# What config_of reads from a trial row and its joined model and host (Store.trials).
check_names(("host_id", "backend", "threads", "gpu_layers", "n_batch", "batch_size", "model", "model_path", "quant",
             "n_params", "bits_per_weight", "n_layers", "decode_bytes", "matmul_params", "layer_bytes", "n_embd",
             "n_head", "n_head_kv", "head_dim", "n_ctx_train", "n_vocab", "model_size", "gpu_build"),
            "advisor/features.py")


@dataclass(frozen=True)
class Workload:
    prompt_tokens: int
    gen_tokens: int  # per sequence


def _cpu_threads(config: Config) -> float:
    """The thread count CPU work divides by; NaN when unknown and the CPU has work (never a made-up default)."""
    if config.gpu_share >= 1.0:
        return 1.0  # no CPU layers: the per-thread columns are zero anyway
    return float(config.threads) if config.threads else math.nan


def _amdahl(points: dict[str, float], threads: float) -> float:
    """Seconds per FLOP at `threads` from the probed counts: serial + parallel ÷ threads, least squares."""
    pairs = [(1.0 / int(t), v) for t, v in points.items()]
    if len(pairs) == 1:  # one count probed: assume the kernel is all parallel
        (inverse, value), = pairs
        return value / (inverse * threads)
    mean_x = sum(x for x, _ in pairs) / len(pairs)
    mean_y = sum(y for _, y in pairs) / len(pairs)
    slope = (sum((x - mean_x) * (y - mean_y) for x, y in pairs) / sum((x - mean_x) ** 2 for x, _ in pairs))
    slope = max(slope, 0.0)  # more threads never slow a kernel down in this model
    return max(mean_y - slope * mean_x, 0.0) + slope / threads


def kernel_seconds_per_flop(kernels: dict | None, quant: str, rows: int, threads: float) -> float | None:
    """The probe's seconds per FLOP for a weight type multiplied by `rows` activation rows at once (log-linear
    between probed row counts, flat beyond them), or None when the type was not probed."""
    table = (kernels or {}).get(quant)
    if not table or not threads or math.isnan(threads):
        return None
    probed = sorted(int(r) for r in table)
    rows = min(max(rows, probed[0]), probed[-1])
    upper = next(r for r in probed if r >= rows)
    lower = max(r for r in probed if r <= rows)
    low, high = _amdahl(table[str(lower)], threads), _amdahl(table[str(upper)], threads)
    if upper == lower or low <= 0 or high <= 0:
        return high or low
    share = math.log(rows / lower) / math.log(upper / lower)
    return math.exp(math.log(low) + share * (math.log(high) - math.log(low)))


def attended_cells(used: float) -> int:
    return max(KV_PAD, math.ceil(used / KV_PAD) * KV_PAD)


def mean_attended_cells(first: int, step: int, count: int) -> float:
    """The mean of attended_cells(first + i × step) for i < count, summed block by block (fast for long runs)."""
    last = first + (count - 1) * step
    total, below = 0, 0
    for block in range(max(1, math.ceil(first / KV_PAD)), attended_cells(last) // KV_PAD + 1):
        upto = min(count, max(0, (block * KV_PAD - first) // step + 1))  # terms with cells ≤ block × 256
        total += block * KV_PAD * (upto - below)
        below = upto
    return total / count


def prefill_attention_cells(tokens: int, n_batch: int) -> float:
    """Σ over prompt chunks of the chunk's tokens × the cells they attend to (all sequences' prompts so far)."""
    done, total = 0, 0.0
    while done < tokens:
        size = min(n_batch, tokens - done)
        done += size
        total += size * attended_cells(done)
    return total


def prefill_work(config: Config, w: Workload, kernels: dict | None = None) -> dict[str, float]:
    m, b, p = config.model, config.batch_size, w.prompt_tokens
    gpu = config.gpu_share
    cpu, threads = 1.0 - gpu, _cpu_threads(config)
    tokens = p * b
    chunks = math.ceil(tokens / (config.n_batch or 512))
    matmul = 2.0 * m.matmul_params * tokens
    attention = m.attn_flops_per_context_token * prefill_attention_cells(tokens, config.n_batch or 512)
    # A GPU build multiplies large CPU-resident batches on the GPU, uploading those weights each chunk.
    uploads = chunks * m.decode_bytes * cpu if config.build == "gpu" and (config.n_batch or 512) >= 32 else 0.0
    rows = min(tokens, config.n_batch or 512)
    per_flop = _probed(config, kernels, m.quant, rows, threads)
    attn_per_flop = _probed(config, kernels, ATTENTION_KERNEL, rows, threads)
    return {
        "cpu_kernel_s": cpu * (matmul * (per_flop or 0.0) + attention * (attn_per_flop or 0.0)),
        "cpu_flops/thread": 0.0 if per_flop else cpu * (matmul + attention) / threads,
        "cpu_flops": 0.0 if per_flop else cpu * matmul,
        "cpu_attn_flops/thread": 0.0 if attn_per_flop else cpu * attention / threads,
        "cpu_weight_passes": cpu * chunks * m.decode_bytes,
        "gpu_flops": gpu * (matmul + attention), "gpu_weight_passes": gpu * chunks * m.decode_bytes,
        "weight_uploads": uploads, "chunks": chunks, "tokens": tokens,
        "logits": float(m.n_vocab * b),  # each sequence's first token is sampled over the whole vocabulary
        "fixed": 1.0,
    }


def _probed(config: Config, kernels: dict | None, quant: str, rows: int, threads: float) -> float | None:
    """The host's probed seconds per FLOP for weights of `quant` (None on spec hardware or GPU-only)."""
    if config.device or config.gpu_share >= 1.0:
        return None
    return kernel_seconds_per_flop(kernels, quant, rows, threads)


def decode_work(config: Config, w: Workload, kernels: dict | None = None) -> dict[str, float]:
    """One decode step, averaged over the generation: the cache grows by B cells a step from B × (P + 1)."""
    m, b = config.model, config.batch_size
    gpu = config.gpu_share
    cpu, threads = 1.0 - gpu, _cpu_threads(config)
    cells = mean_attended_cells(b * (w.prompt_tokens + 1), b, max(w.gen_tokens - 1, 1))
    kv = m.kv_bytes_per_token * cells  # every attended cell's K and V, read once for the batch
    attention = m.attn_flops_per_context_token * cells * b  # each sequence's query against every cell
    matmul = 2.0 * m.matmul_params * b
    per_flop = _probed(config, kernels, m.quant, b, threads)
    attn_per_flop = _probed(config, kernels, ATTENTION_KERNEL, b, threads) if per_flop else None
    return {
        "cpu_kernel_s": cpu * (matmul * (per_flop or 0.0) + attention * (attn_per_flop or 0.0)),
        "cpu_weight_bytes/thread": cpu * m.decode_bytes / threads, "cpu_weight_bytes": cpu * m.decode_bytes,
        "cpu_flops/thread": 0.0 if per_flop else cpu * matmul / threads,
        "cpu_kv_bytes/thread": cpu * kv / threads, "cpu_kv_bytes": cpu * kv,
        "cpu_attn_flops/thread": cpu * attention / threads,
        "gpu_weight_bytes": gpu * m.decode_bytes, "gpu_kv_bytes": gpu * kv,
        "gpu_flops": gpu * matmul + gpu * attention,
        "split_steps": 1.0 if 0.0 < gpu < 1.0 else 0.0, "logits": float(m.n_vocab * b),
        "cpu_step": cpu, "gpu_step": gpu,  # per-layer launch and sync overhead, per device
    }


def power_load(config: Config) -> dict[str, float]:
    """Busy CPU threads (the share of layers on the CPU) and the GPU's share of layers."""
    gpu = config.gpu_share
    threads = config.threads if config.threads else (0.0 if gpu >= 1.0 else math.nan)
    return {"fixed": 1.0, "cpu_threads": (1.0 - gpu) * threads, "gpu_share": gpu}


def vector(work: dict[str, float], columns: tuple[str, ...]) -> list[float]:
    return [work[c] for c in columns]


@dataclass
class Parts:
    """Predicted phases of one batch: seconds and average watts."""

    prefill_s: float
    decode_step_s: float
    prefill_w: float
    decode_w: float


def derive(parts: Parts, gen_tokens: int, batch_size: int) -> dict[str, float]:
    """Latency, energy per request, J/token and average power from the predicted parts.

    A batch serves `batch_size` requests at once: each waits the whole batch's latency and
    is charged its share of the batch's energy.
    """
    decode_s = parts.decode_step_s * max(gen_tokens - 1, 0)
    latency_s = parts.prefill_s + decode_s
    batch_energy = parts.prefill_w * parts.prefill_s + parts.decode_w * decode_s
    energy = batch_energy / batch_size
    return {"latency_s": latency_s, "energy_j": energy, "j_per_token": energy / max(gen_tokens, 1),
            "avg_power_w": batch_energy / latency_s, "edp_js": energy * latency_s}
