"""Runs one trial on llama.cpp and times every decode step on the monotonic clock.

Models stay loaded across trials with the same load configuration (path,
gpu_layers); contexts are reused across trials with the same n_ctx, n_batch and
batch_size, with the KV cache cleared before every trial. Load and warm-up time
are recorded but never counted in a trial.
"""

from __future__ import annotations

import statistics
import time
from collections import OrderedDict
from dataclasses import dataclass

from . import native_loop
from .errors import UserError
from .llama_backend import Context, LoadedModel, TokenSampler
from .manifest import TrialSpec
from .prompts import synthetic_tokens

MAX_LOADED_MODELS = 4
_WARMUP_PROMPT = "Warm-up: say hello."
# The busy spell between the idle window and prefill (Engine._rewarm), and how long. After the 0.5 s idle window,
# prefill against straight after another trial on this project's VM (bench/prefill_pause.py, 2026-11-28, llama-bench
# pp128 at 270-290 tokens/s), two runs of 40 and 50 cycles: no spell 0.939, 0.1 s 0.964 and 0.979 (95 % intervals up
# to 0.994), 0.3 s 0.992 twice, 0.5-0.6 s 0.997-0.998 (0.990-1.000 in 50 cycles), 1 s 1.010. The CPU takes longer
# than 0.1 s to come back from idle; half a second brings it back within the noise.
REWARM_S, REWARM_TOKENS = 0.5, 32


class TrialFailed(Exception):
    """The trial cannot run as specified (e.g. its prompt does not fit n_ctx); the run goes on."""


@dataclass
class Measurement:
    prompt_tokens: int
    gen_tokens: int
    t_start_ns: int
    t_first_ns: int | None
    t_end_ns: int
    steps: list[tuple[int, int]]  # (t_ns, tokens produced at that step)
    output_text: str
    stop_reason: str
    batch_size: int
    load_ms: float | None = None

    def metrics(self) -> dict:
        """The per-trial numbers stored in the trials table."""
        prefill_s = (self.t_first_ns - self.t_start_ns) / 1e9 if self.t_first_ns else None
        decode_tokens = self.gen_tokens - (self.steps[0][1] if self.steps else 0)
        decode_s = (self.steps[-1][0] - self.steps[0][0]) / 1e9 if len(self.steps) > 1 else None
        gaps_ms = [(b[0] - a[0]) / 1e6 for a, b in zip(self.steps, self.steps[1:])]
        decode_tps = decode_tokens / decode_s if decode_s else None
        return {
            "prompt_tokens": self.prompt_tokens,
            "gen_tokens": self.gen_tokens,
            "ttft_ms": prefill_s * 1e3 if prefill_s is not None else None,
            "prefill_tps": self.prompt_tokens * self.batch_size / prefill_s if prefill_s else None,
            "decode_tps": decode_tps,
            "decode_tps_per_seq": decode_tps / self.batch_size if decode_tps else None,
            "itl_p50_ms": percentile(gaps_ms, 50),
            "itl_p95_ms": percentile(gaps_ms, 95),
            "itl_max_ms": max(gaps_ms, default=None),
            "stalled_ms": stalled_ms(gaps_ms),
            "e2e_ms": (self.t_end_ns - self.t_start_ns) / 1e6,
            "t_start_ns": self.t_start_ns,
            "t_first_ns": self.t_first_ns,
            "t_end_ns": self.t_end_ns,
            "load_ms": self.load_ms,
            "output_text": self.output_text,
            "stop_reason": self.stop_reason,
        }


STALL_MIN_MS = 500.0  # a decode step this long, and
STALL_FACTOR = 20  # this many times the trial's median step, is a stall: the process was paused or starved


def stalled_ms(gaps_ms: list[float]) -> float | None:
    """How long decoding stood still: the time beyond the median step of every step that took at least
    STALL_FACTOR times the median and STALL_MIN_MS (a SIGSTOP, a suspended laptop, a starved VM). 0 when none,
    None without steps to tell. Such a trial measured the stall, not the configuration."""
    median = percentile(gaps_ms, 50)
    if not median:
        return None
    limit = max(STALL_MIN_MS, STALL_FACTOR * median)
    return sum(gap - median for gap in gaps_ms if gap >= limit)


def percentile(values: list[float], pct: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1] if pct < 100 else max(values)


class Engine:
    """Keeps models and contexts loaded between trials; not thread-safe (one runner per Engine)."""

    def __init__(self):
        self._models: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._contexts: dict[tuple, Context] = {}
        self._warm: set[tuple] = set()

    def model(self, spec: TrialSpec) -> tuple[LoadedModel, float | None]:
        """The loaded model for this spec, and its load time in ms if it was loaded just now."""
        key = spec.load_key()
        if key in self._models:
            self._models.move_to_end(key)
            if why := self._models[key].changed():
                raise UserError(f"{spec.model_path}: the model file changed while this run had it loaded ({why}); "
                                "restore it and run the manifest again (this model's trials fail until then)")
            return self._models[key], None
        while len(self._models) >= MAX_LOADED_MODELS:
            self._unload(next(iter(self._models)))
        loaded = LoadedModel(spec.model_path, spec.gpu_layers)
        self._models[key] = loaded
        return loaded, loaded.load_s * 1e3

    def _unload(self, key: tuple) -> None:
        for ctx_key in [k for k in self._contexts if k[0] == key]:
            self._contexts.pop(ctx_key).close()
        self._warm = {w for w in self._warm if w[0] != key}
        self._models.pop(key).close()

    def context(self, spec: TrialSpec, model: LoadedModel) -> Context:
        key = (spec.load_key(), spec.n_ctx, spec.n_batch, spec.batch_size)
        if key not in self._contexts:
            self._contexts[key] = Context(model, spec.n_ctx, spec.n_batch, spec.batch_size, spec.threads)
        ctx = self._contexts[key]
        ctx.set_threads(spec.threads)
        if (key, spec.threads) not in self._warm:  # first compute graph and thread pool, never in a trial
            self._generate(ctx, model.tokenize(_WARMUP_PROMPT), 4, TokenSampler(0, 0), True, None)
            self._warm.add((key, spec.threads))
        return ctx

    def prompt_tokens(self, spec: TrialSpec, model: LoadedModel) -> tuple[list[int], str]:
        if spec.prompt_tokens_target is not None:
            tokens = synthetic_tokens(model.tokenize, spec.prompt_tokens_target)
            return tokens, model.detokenize(tokens)
        if spec.prompt_text is None:  # the manifest gives every trial either a text or a token target
            raise ValueError(f"trial {spec.prompt_id}: neither prompt text nor prompt_tokens_target")
        text = (spec.chat and model.chat_prompt(spec.prompt_text)) or spec.prompt_text
        return model.tokenize(text), text

    def run(self, spec: TrialSpec, on_token=None, before_start=None, checkpoint=None,
            rewarm: bool = True, on_edge=None) -> Measurement:
        """Run one trial; `on_token(generated_so_far, t_ns)` is called after each decode step.

        `before_start()` runs once everything is loaded, warm and tokenized, just before
        the clock starts: the meter's idle window goes there, clear of load work; a busy spell
        re-warms the CPU after it unless `rewarm` is False (a request straight after another).
        `checkpoint()` runs between the busy spell's decodes and just before prefill; like on_token it may
        raise to stop the trial (a stop then waits for one llama.cpp call at most, never the whole spell).
        `on_edge()` runs at the timed windows' edges: just before the clock starts, at the first token and
        after the last (the meter reads its cumulative sources there).
        """
        model, load_ms = self.model(spec)
        ctx = self.context(spec, model)
        tokens, _text = self.prompt_tokens(spec, model)
        if len(tokens) >= spec.n_ctx:
            raise TrialFailed(f"prompt of {len(tokens)} tokens does not fit n_ctx={spec.n_ctx}; "
                              "raise n_ctx or use a shorter prompt")
        max_tokens = min(spec.max_tokens, spec.n_ctx - len(tokens))
        sampler = TokenSampler(spec.temperature, spec.seed)
        try:
            if before_start:
                before_start()
                if rewarm:
                    self._rewarm(ctx, tokens, checkpoint)
            if checkpoint:
                checkpoint()
            measurement = self._generate(ctx, tokens, max_tokens, sampler, spec.ignore_eos, on_token, on_edge)
        finally:
            sampler.close()
        measurement.load_ms = load_ms
        if max_tokens < spec.max_tokens and measurement.stop_reason == "length":
            measurement.stop_reason = "n_ctx"
        return measurement

    @staticmethod
    def _rewarm(ctx: Context, prompt: list[int], checkpoint=None) -> None:
        """Busy llama.cpp's threads for REWARM_S after a pause (the idle window) before the clock starts.

        After half a second idle, this VM's prefill ran 3-8 % slower than straight after other work, and a
        busy spell before it brought it back, as llama-bench's back-to-back runs have (REWARM_S: how long); the
        spell belongs to no window (the meter's idle window ends before it)."""
        chunk = [(tok, pos, 0, False) for pos, tok in enumerate(prompt[:min(REWARM_TOKENS, ctx.n_batch)])]
        until = time.monotonic() + REWARM_S
        while chunk and time.monotonic() < until:
            ctx.clear_memory()
            ctx.decode(chunk)
            if checkpoint:
                checkpoint()
        ctx.clear_memory()

    def _generate(self, ctx: Context, prompt: list[int], max_tokens: int, sampler: TokenSampler,
                  ignore_eos: bool, on_token, on_edge=None) -> Measurement:
        """Prefill every sequence with `prompt`, then decode all live sequences one step at a time."""
        model, n_seq = ctx.model, ctx.n_seq
        ctx.clear_memory()
        entries = [(tok, pos, seq, pos == len(prompt) - 1) for seq in range(n_seq) for pos, tok in enumerate(prompt)]
        last = [0] * n_seq
        if on_edge:
            on_edge()
        t_start = time.monotonic_ns()
        for start in range(0, len(entries), ctx.n_batch):
            chunk = entries[start:start + ctx.n_batch]
            ctx.decode(chunk)
            for index, (_tok, _pos, seq, wants_logits) in enumerate(chunk):
                if wants_logits:  # this sequence's last prompt token: sample its first token now
                    last[seq] = sampler.sample(ctx, index)
        t_first = time.monotonic_ns()
        if on_edge:
            on_edge()
        outputs: list[list[int]] = [[] for _ in range(n_seq)]
        live = [seq for seq in range(n_seq) if self._accept(model, outputs, seq, last[seq], ignore_eos)]
        gen_tokens = len(live)
        steps = [(t_first, gen_tokens)]
        if on_token:
            on_token(gen_tokens, t_first)
        pos, generated = len(prompt), 1
        loop = native_loop.greedy_loop() if sampler.greedy else None
        if loop is not None and live and generated < max_tokens:  # the same steps in C (engine/native_loop.py)
            done = loop.run(ctx, last, live, pos, max_tokens - generated, ignore_eos, gen_tokens, on_token)
            for now, tokens in zip(done.times_ns, done.tokens):
                for seq, token in tokens.items():
                    outputs[seq].append(token)
                if tokens:
                    steps.append((now, len(tokens)))
                    gen_tokens += len(tokens)
            live, last = done.live, done.last
            pos, generated = pos + len(done.times_ns), generated + len(done.times_ns)
            if on_token and done.times_ns:  # the loop reports every PROGRESS_EVERY_NS: the final count too
                on_token(gen_tokens, done.times_ns[-1])
        while live and generated < max_tokens:
            ctx.decode([(last[seq], pos, seq, True) for seq in live])
            for index, seq in enumerate(live):
                last[seq] = sampler.sample(ctx, index)
            now = time.monotonic_ns()
            produced = [seq for seq in live if self._accept(model, outputs, seq, last[seq], ignore_eos)]
            if produced:
                steps.append((now, len(produced)))
                gen_tokens += len(produced)
            live, pos, generated = produced, pos + 1, generated + 1
            if on_token:
                on_token(gen_tokens, now)
        if on_edge:
            on_edge()
        t_end = steps[-1][0] if gen_tokens else t_first
        return Measurement(
            prompt_tokens=len(prompt), gen_tokens=gen_tokens, t_start_ns=t_start,
            t_first_ns=t_first if gen_tokens else None, t_end_ns=t_end, steps=steps if gen_tokens else [],
            output_text=model.detokenize(outputs[0]), stop_reason="length" if live else "eos", batch_size=n_seq,
        )

    @staticmethod
    def _accept(model: LoadedModel, outputs: list[list[int]], seq: int, token: int, ignore_eos: bool) -> bool:
        """Record a sampled token; False when the sequence ended (end-of-generation token)."""
        if not ignore_eos and model.is_eog(token):
            return False
        outputs[seq].append(token)
        return True

    def close(self) -> None:
        for key in list(self._models):
            self._unload(key)

