"""The trial record: every field a trial has, with its type, its unit and where its value comes from.

One declaration that the rest reads: the store checks every row it writes against it (a misspelt or
undeclared field is refused, not silently added as a column), the export takes its columns and their
order from it, the report its units, the importer its types, and the advisor's features name their
inputs from it. A new metric is declared here and added to the schema by a migration in store.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

# Where a field's value comes from.
QUEUE = "queue"  # the queue's bookkeeping: ids, order, status, times
SETTING = "setting"  # the manifest (engine/manifest.py, TrialSpec.as_row)
MEASURED = "measured"  # timed by the runner on the monotonic clock (engine/runner.py, Measurement.metrics)
ENERGY = "energy"  # attributed by the meter from power samples (engine/metering.py, energy_columns)
IMPORTED = "imported"  # set by the importer on trials read from other tools' logs
JOINED = "joined"  # not stored on the trial: read from its model's or host's row when trials are read


@dataclass(frozen=True)
class TrialField:
    name: str
    kind: type | tuple[type, ...]  # int, float or str as SQLite stores it (flags are ints); a tuple: any of them
    origin: str
    unit: str = ""  # "ms", "tok/s", "J", "W", "J/token", "J·s", "Hz", "ns"; "" for counts, names and flags
    export: str | None = None  # its column in `energytui export` (None: not exported)

    def coerce(self, value):
        """The value as this field stores it (None stays None); raises ValueError for a value of another kind."""
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if isinstance(value, bool) and int in kinds:
            return int(value)
        if value is None or isinstance(value, kinds):
            return value
        if isinstance(value, int) and float in kinds:
            return float(value)
        raise ValueError(f"trial field {self.name}: expected {' or '.join(k.__name__ for k in kinds)}, "
                         f"got {value!r}")


def _fields(origin: str, spec: str, exported: bool = True) -> list[TrialField]:
    """Fields from "name:kind:unit" words (kind i, f or s), all of one origin."""
    kinds = {"i": int, "f": float, "s": str}
    out = []
    for word in spec.split():
        name, kind, unit = (word.split(":") + [""])[:3]
        out.append(TrialField(name, kinds[kind], origin, unit, name if exported else None))
    return out


# In export order; then the fields that are stored but not exported.
TRIAL_FIELDS: tuple[TrialField, ...] = (
    TrialField("id", int, QUEUE, export="trial_id"),
    *_fields(QUEUE, "run_id:s config_id:s status:s"),
    *_fields(SETTING, "model:s quant:s backend:s threads:i gpu_layers:i n_batch:i batch_size:i suite:s prompt_id:s"),
    *_fields(MEASURED, "prompt_tokens:i gen_tokens:i ttft_ms:f:ms prefill_tps:f:tok/s decode_tps:f:tok/s "
                       "decode_tps_per_seq:f:tok/s itl_p50_ms:f:ms itl_p95_ms:f:ms e2e_ms:f:ms"),
    # the longest decode step, and how long decoding stood still (engine/runner.py, stalled_ms)
    *_fields(MEASURED, "itl_max_ms:f:ms stalled_ms:f:ms"),
    *_fields(QUEUE, "retry_of:i"),  # the stalled trial this one runs again (engine/queue.py, retry_stalled)
    *_fields(SETTING, "n_ctx:i max_tokens:i ignore_eos:i temperature:f seed:i repetition:i window:s"),
    *_fields(JOINED, "bits_per_weight:f n_params:i"),
    *_fields(QUEUE, "host_id:s"),
    *_fields(JOINED, "host_name:s"),  # the host's readable name (a fleet worker's), read from its row
    *_fields(JOINED, "build:s"),
    *_fields(SETTING, "model_path:s"),
    *_fields(QUEUE, "started_at:s"),
    *_fields(ENERGY, "energy_j:f:J energy_net_j:f:J energy_cpu_j:f:J energy_gpu_j:f:J prefill_energy_j:f:J "
                     "decode_energy_j:f:J j_per_token:f:J/token avg_power_w:f:W peak_power_w:f:W idle_power_w:f:W "
                     "edp_js:f:J·s energy_source:s energy_tag:s sample_hz:f:Hz energy_notes:s energy_method:s "
                     "window_id:i"),
    # The trial's steady window (engine/telemetry/steady.py): its configuration's figures, not the trial's.
    *_fields(JOINED, "window_j_per_token:f:J/token window_energy_per_request_j:f:J window_busy_power_w:f:W "
                     "window_idle_power_w:f:W window_energy_uncertainty_j:f:J window_net_j_per_token:f:J/token "
                     "window_net_uncertainty_j:f:J window_s:f:s window_requests:i "
                     "window_extra_requests:i window_tag:s"),
    *_fields(IMPORTED, "imported:i caveats:s"),
    *_fields(QUEUE, "error:s"),
    *_fields(MEASURED, "stop_reason:s"),
    *_fields(QUEUE, "run:i seq:i finished_at:s", exported=False),
    *_fields(SETTING, "prompt_text:s prompt_tokens_target:i chat:i", exported=False),
    TrialField("cooldown_s", (float, str), SETTING, "s"),  # seconds, or "auto": until power is back near idle
    *_fields(MEASURED, "t_start_ns:i:ns t_first_ns:i:ns t_end_ns:i:ns load_ms:f:ms output_text:s", exported=False),
    # The model's shape (engine/gguf.py) and the host's facts, joined by Store.trials for the advisor.
    *_fields(JOINED, "n_layers:i model_size:i n_embd:i n_head:i n_head_kv:i head_dim:i n_ctx_train:i n_vocab:i "
                     "decode_bytes:i layer_bytes:i matmul_params:i gpu_build:i host_cores:i host_ram_gb:f "
                     "host_gpu_memory_gb:f",
             exported=False),
)
FIELDS = {field.name: field for field in TRIAL_FIELDS}
STORED = tuple(field.name for field in TRIAL_FIELDS if field.origin != JOINED)
EXPORTED = tuple(field for field in TRIAL_FIELDS if field.export)


def named(origin: str) -> tuple[str, ...]:
    """The names of the fields of one origin, in declaration order."""
    return tuple(field.name for field in TRIAL_FIELDS if field.origin == origin)


def unit(name: str) -> str:
    return FIELDS[name].unit


def stored_row(values: dict, where: str) -> dict:
    """`values` checked against the record before a write: every key a stored field, every value its kind.
    A key that is not declared is a programming error: it would have become a new column unannounced."""
    unknown = sorted(set(values) - set(STORED))
    if unknown:
        raise ValueError(f"{where}: not fields of the trial record (engine/record.py): {', '.join(unknown)}")
    return {name: FIELDS[name].coerce(value) for name, value in values.items()}


def check_names(names: Iterable[str], where: str) -> None:
    """Names a module reads from trials, checked once at import: a renamed field fails loudly there."""
    unknown = sorted(set(names) - set(FIELDS))
    if unknown:
        raise ValueError(f"{where}: reads fields the trial record does not declare: {', '.join(unknown)}")
