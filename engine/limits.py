"""A manifest's trials against the model, the machine and the run's size, before anything is queued.

What cannot work is refused with one line naming the run, the key and the value (a context longer
than the model was trained for, weights plus KV cache beyond the memory this machine has free);
what is wasteful is warned about (more threads than CPUs, generation that n_ctx will cut short); a
run above LARGE_RUN trials needs a yes, with its estimated duration where this host measured the
model before.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .gguf import read_gguf
from .host import available_ram_bytes
from .manifest import Manifest, TrialSpec
from .models import read_derivation

LARGE_RUN = 1000  # trials: above this a run is confirmed before it is queued
COMPUTE_BUFFER_BYTES = 256 * 2**20  # llama.cpp's scratch for a small model's graph, roughly


class LimitExceeded(UserError):
    """A trial that cannot work here; `key` is the manifest key at fault, `problem` what is wrong and what to do."""

    def __init__(self, line: str, key: str, problem: str):
        super().__init__(line)
        self.key, self.problem = key, problem


@dataclass
class Verdict:
    warnings: list[str] = field(default_factory=list)
    needs_confirmation: str | None = None  # the question to ask, for a large run


def check(manifest: Manifest, typical_trial_s: float | None = None, cores: int | None = None,
          free_bytes: int | None = None) -> Verdict:
    """Refuse (UserError) what cannot work; return the warnings and whether to ask before queueing."""
    cores = cores or os.cpu_count() or 1
    free_bytes = available_ram_bytes() if free_bytes is None else free_bytes
    headers = {path: read_gguf(path) for path in {t.model_path for t in manifest.trials}}
    verdict, seen = Verdict(), set()
    for trial in manifest.trials:
        for key, problem, fatal in _problems(trial, headers[trial.model_path], cores, free_bytes):
            if (trial.run_id, key, fatal) in seen:
                continue
            seen.add((trial.run_id, key, fatal))
            line = f"{manifest.path}: run {trial.run_id!r}: {key}: {problem}"
            if fatal:
                raise LimitExceeded(line, key, problem)
            verdict.warnings.append(line)
    verdict.warnings += _damaged_origins(headers)
    if len(manifest.trials) > LARGE_RUN:
        duration = (f"about {_hours(len(manifest.trials) * typical_trial_s)} at this host's pace"
                    if typical_trial_s else "duration unknown (this model was never run on this host)")
        verdict.needs_confirmation = f"{manifest.path}: {len(manifest.trials)} trials, {duration}"
    return verdict


def _damaged_origins(models) -> list[str]:
    """A derived model whose origin record is damaged runs as it is, but its trials would be stored without
    where it came from (`requantized from F16`): say so before they are."""
    found = []
    for path in sorted(models):
        try:
            read_derivation(Path(path))
        except UserError as exc:
            found.append(f"{exc}; until then its trials are recorded without their model's origin")
    return found


def _problems(trial: TrialSpec, info, cores: int, free_bytes: int | None):
    """(key, problem, fatal) for one trial."""
    if info.n_ctx_train and trial.n_ctx > info.n_ctx_train:
        yield ("n_ctx", f"{trial.n_ctx} is beyond {info.path.name}'s trained context of {info.n_ctx_train} "
               f"tokens; use at most {info.n_ctx_train}", True)
    needed = _memory_bytes(trial, info)
    if free_bytes is not None and needed > free_bytes and trial.backend == "cpu":
        yield ("n_ctx", f"{trial.n_ctx} with batch_size {trial.batch_size} needs about {needed / 2**30:.1f} GiB "
               f"(weights {info.size / 2**30:.1f} GiB + KV cache), this machine has {free_bytes / 2**30:.1f} GiB "
               "free; lower n_ctx or batch_size", True)
    if trial.threads > cores:
        yield ("threads", f"{trial.threads} is more than this machine's {cores} CPUs: the extra threads only "
               f"wait for each other (slower, not faster); use at most {cores}", False)
    if trial.ignore_eos and trial.prompt_tokens_target and \
            trial.prompt_tokens_target + trial.max_tokens > trial.n_ctx:
        room = max(trial.n_ctx - trial.prompt_tokens_target, 0)
        yield ("max_tokens", f"{trial.max_tokens} after a {trial.prompt_tokens_target}-token prompt does not fit "
               f"n_ctx {trial.n_ctx}: generation stops after {room} tokens (stored with stop_reason n_ctx)", False)


def _memory_bytes(trial: TrialSpec, info) -> int:
    """Weights + every sequence's full KV cache (n_ctx each) + logits + a compute buffer."""
    kv = info.kv_bytes_per_token * trial.n_ctx * trial.batch_size
    logits = 4 * (info.n_vocab or 0) * max(trial.n_batch, trial.batch_size)
    return info.size + kv + logits + COMPUTE_BUFFER_BYTES


def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
