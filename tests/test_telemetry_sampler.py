"""The background sampler: achieved rate, batching, error isolation, slow sources on their own thread."""

import threading
import time

import pytest

from energytui.engine.telemetry import INTEGRATED, CpuEstimateSource, Sample, Sampler, Unavailable


class CountingSource:
    """A fake fast source: one constant-power sample per read, optionally failing every Nth read."""

    source = INTEGRATED
    update_period_s = 0.001

    def __init__(self, name, fail_every=0, poll_interval_s=0.0, read_cost_s=0.0):
        self.name = name
        self.devices = (name,)
        self.method = "fake"
        self.poll_interval_s = poll_interval_s
        self.fail_every = fail_every
        self.read_cost_s = read_cost_s
        self.calls = 0
        self.threads = set()

    def read(self, t_ns):
        self.calls += 1
        self.threads.add(threading.get_ident())
        if self.read_cost_s:
            time.sleep(self.read_cost_s)
        if self.fail_every and self.calls % self.fail_every == 0:
            raise OSError("device went away for a moment")
        return [Sample(t_ns, self.name, self.source, 10.0, None)]

    def close(self):
        pass


def test_real_sources_at_100_hz_reach_at_least_90_hz_and_every_sample_is_delivered():
    estimate = CpuEstimateSource.probe(poll_interval_s=0.0)  # every tick, as a measured source is read
    assert not isinstance(estimate, Unavailable), estimate
    fake = CountingSource("fake0")
    batches, batch_threads = [], set()

    def on_batch(batch):
        batches.append(batch)
        batch_threads.add(threading.get_ident())

    sampler = Sampler([estimate, fake], rate_hz=100, on_batch=on_batch, flush_interval_s=0.25)
    sampler.start()
    time.sleep(1.0)
    sampler.stop()
    estimate.close()
    stats = sampler.stats()
    assert stats["fake0"].achieved_hz >= 90, stats
    assert stats["cpu-estimate"].reads >= 90 and stats["cpu-estimate"].errors == 0
    delivered = [sample for batch in batches for sample in batch]
    assert len(delivered) == stats["fake0"].samples + stats["cpu-estimate"].samples
    assert len(batches) >= 3  # flushed in batches while running, not only at stop
    assert batch_threads and threading.get_ident() not in batch_threads
    fake_times = [s.t_ns for s in delivered if s.device == "fake0"]
    assert fake_times == sorted(fake_times)
    gaps_ms = [(b - a) / 1e6 for a, b in zip(fake_times, fake_times[1:])]
    assert sorted(gaps_ms)[len(gaps_ms) // 2] == pytest.approx(10.0, abs=1.0)  # median on the grid


def test_a_failing_source_is_counted_and_does_not_stop_the_others():
    flaky, steady = CountingSource("flaky", fail_every=3), CountingSource("steady")
    with Sampler([flaky, steady], rate_hz=200) as sampler:
        time.sleep(0.3)
    stats = sampler.stats()
    assert stats["flaky"].errors >= 10 and "device went away" in stats["flaky"].last_error
    assert stats["steady"].errors == 0 and stats["steady"].reads >= 40
    kept = sampler.take_samples()
    assert len(kept) == stats["flaky"].samples + stats["steady"].samples
    assert sampler.take_samples() == []


def test_a_slow_source_gets_its_own_thread_and_does_not_slow_the_fast_ones():
    slow = CountingSource("meter", poll_interval_s=0.2, read_cost_s=0.05)
    fast = CountingSource("fast")
    with Sampler([slow, fast], rate_hz=100) as sampler:
        time.sleep(0.6)
    stats = sampler.stats()
    assert stats["fast"].achieved_hz >= 80
    assert 2 <= stats["meter"].reads <= 5
    assert slow.threads.isdisjoint(fast.threads)
    devices = {s.device for s in sampler.take_samples()}
    assert devices == {"meter", "fast"}
