"""A background sampler: reads every source on a fixed grid of monotonic deadlines.

Cheap by construction, because it runs beside llama.cpp on small machines:
sources keep their files open and do one read per tick, the loop sleeps to
absolute deadlines (no drift; a late tick skips ahead instead of bursting),
and samples are handed over in batches.

Threads: one main thread polls the fast sources (poll_interval_s at most one
tick) and calls `on_batch`; every slow source (poll_interval_s longer than a
tick, e.g. an external meter command) gets its own thread so it never delays
the others. on_batch is always called from the main sampler thread (a SQLite
connection used there must be made in that thread or with
check_same_thread=False); the last batch is delivered before stop() returns.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .base import Sample, TelemetrySource

DEFAULT_RATE_HZ = 100.0
DEFAULT_FLUSH_INTERVAL_S = 1.0
_SHORT_SLEEP_NS = 50_000_000


@dataclass
class SourceStats:
    name: str
    reads: int = 0
    samples: int = 0
    errors: int = 0
    last_error: str | None = None
    achieved_hz: float = 0.0  # successful reads per second while the sampler ran


class Sampler:
    """Samples `sources` at `rate_hz` until stop(); one start/stop cycle per Sampler.

    With on_batch=None the samples are kept in memory for take_samples().
    """

    def __init__(self, sources: Sequence[TelemetrySource], *, rate_hz: float = DEFAULT_RATE_HZ,
                 on_batch: Callable[[list[Sample]], None] | None = None,
                 flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S):
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.sources = list(sources)
        self.rate_hz = rate_hz
        self.on_batch = on_batch
        self.flush_interval_s = flush_interval_s
        self.missed_ticks = 0  # ticks skipped because a read overran its deadline
        self.batch_errors: list[str] = []  # exceptions raised by on_batch
        self._tick_ns = int(1e9 / rate_hz)
        self._stats = {source.name: SourceStats(source.name) for source in self.sources}
        self._buffer: list[Sample] = []
        self._kept: list[Sample] = []
        self._lock = threading.Lock()
        self._stop_main = threading.Event()
        self._stop_slow = threading.Event()
        self._threads: list[threading.Thread] = []
        self._main_thread: threading.Thread | None = None
        self._started_ns: int | None = None
        self._stopped_ns: int | None = None

    def start(self) -> None:
        if self._started_ns is not None:
            raise RuntimeError("a Sampler runs once; make a new one")
        tick_s = self._tick_ns / 1e9
        fast = [s for s in self.sources if s.poll_interval_s <= tick_s]
        slow = [s for s in self.sources if s.poll_interval_s > tick_s]
        self._started_ns = time.monotonic_ns()
        for source in slow:
            period_ns = int(source.poll_interval_s * 1e9)
            self._threads.append(threading.Thread(
                target=self._loop, args=([source], period_ns, self._stop_slow, False),
                name=f"energytui-sampler-{source.name}", daemon=True))
        main_period_ns = self._tick_ns if fast else int(self.flush_interval_s * 1e9)
        self._main_thread = threading.Thread(
            target=self._loop, args=(fast, main_period_ns, self._stop_main, True),
            name="energytui-sampler", daemon=True)
        for thread in [*self._threads, self._main_thread]:
            thread.start()

    def stop(self) -> None:
        """Stop sampling, deliver the remaining samples, and freeze the achieved rates."""
        if self._main_thread is None or self._stopped_ns is not None:
            return
        self._stop_slow.set()  # slow sources first, so their last samples reach the final flush
        for thread in self._threads:
            thread.join()
        self._stop_main.set()
        self._main_thread.join()
        self._stopped_ns = time.monotonic_ns()

    def __enter__(self) -> "Sampler":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stats(self) -> dict[str, SourceStats]:
        """Per source: reads, samples, errors and the achieved read rate so far."""
        if self._started_ns is not None:
            elapsed_s = ((self._stopped_ns or time.monotonic_ns()) - self._started_ns) / 1e9
            for stats in self._stats.values():
                stats.achieved_hz = stats.reads / elapsed_s if elapsed_s > 0 else 0.0
        return self._stats

    def take_samples(self) -> list[Sample]:
        """The samples kept so far (only when on_batch is None), emptying the store."""
        with self._lock:
            kept, self._kept = self._kept, []
        return kept

    def drain(self) -> list[Sample]:
        """Everything sampled and not yet taken, including the unflushed buffer (on_batch=None)."""
        self._flush()
        return self.take_samples()

    def _loop(self, sources: list[TelemetrySource], period_ns: int, stop: threading.Event, is_main: bool) -> None:
        stats = [self._stats[source.name] for source in sources]
        lock, buffer, clock = self._lock, self._buffer, time.monotonic_ns
        deadline = clock()
        last_flush = deadline
        flush_every_ns = int(self.flush_interval_s * 1e9)
        while not stop.is_set():
            for source, source_stats in zip(sources, stats):
                try:
                    samples = source.read(clock())
                except Exception as error:  # one bad read must not end the measurement
                    source_stats.errors += 1
                    source_stats.last_error = f"{type(error).__name__}: {error}"
                    continue
                source_stats.reads += 1
                source_stats.samples += len(samples)
                with lock:
                    buffer.extend(samples)
            now = clock()
            if is_main and now - last_flush >= flush_every_ns:
                self._flush()
                last_flush = now
            deadline += period_ns
            if deadline <= now:  # overran: skip the missed ticks and stay on the grid
                missed = (now - deadline) // period_ns + 1
                if is_main:
                    self.missed_ticks += missed
                deadline += missed * period_ns
            if period_ns <= _SHORT_SLEEP_NS:
                time.sleep((deadline - now) / 1e9)  # cheaper wake-up than Event.wait; stop is seen next tick
            else:
                stop.wait((deadline - now) / 1e9)  # long periods must still stop promptly
        if is_main:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            if not self._buffer:
                return
            batch = self._buffer[:]
            self._buffer.clear()
            if self.on_batch is None:
                self._kept.extend(batch)
                return
        try:
            self.on_batch(batch)
        except Exception as error:  # the store failing must not stop the sampling
            self.batch_errors.append(f"{type(error).__name__}: {error}")
