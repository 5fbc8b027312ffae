"""Steady-state windows: a configuration's energy from a power source slower than its trials. Pure, no I/O.

A wall meter or a laptop battery reports about once a second; a small model's prefill and decode last a
tenth of that, so a trial's own windows cannot be resolved. Instead, a configuration's requests run back to
back (its trials, then untimed extra requests while they end too soon) over a busy window of at least
`min_window_s`, right after an idle window of that length:

    idle [idle_start, idle_end)   busy [first request's start, last request's end]

The steady power of a window is, per device:
  - a slow source (update period above SLOW_UPDATE_PERIOD_S): the mean of its readings wholly inside the
    window: taken at least SETTLE_PERIODS update periods after it opens (a reading may describe the period
    before it, and a meter may show a value a period late) and not after it closes;
  - a fast source (a counter, the 100 Hz estimate): its energy over the window ÷ the window's length.
Its uncertainty (±, about 95 %) adds two standard errors of the readings' mean and what one update period
of the busy-idle step would shift it over a window this long (period ÷ window × |busy − idle|).

Energy per request follows the tokens' clock: steady busy power × the request's own duration (t_start to
its last token); net subtracts the idle power over the same duration. The gaps between requests (writing
a trial, tokenizing the next prompt) are inside the window's power but charged to no request.
The total is the whole-machine device alone where there is one, else the sum of the devices.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .attribution import Series, whole_machine_devices, window_energy
from .base import Sample, is_cumulative, is_slow, weakest_source

# How a trial's energy is measured: over its own windows (trial), over a steady-state window of its
# configuration's back-to-back requests (steady), or as the run's power sources need (auto: steady when a
# source of the machine's total updates less often than SLOW_UPDATE_PERIOD_S).
WINDOW_MODES = ("auto", "trial", "steady")
MIN_PERIODS = 5  # a steady window covers at least this many update periods of the slowest source
SETTLE_PERIODS = 2
MIN_READINGS = 2
MIN_WINDOW_S = 1.0  # the shortest steady window, however fast the sources


def window_length(periods: Iterable[float], min_window_s: float | None = None) -> float:
    """The steady window's length: the user's, else MIN_PERIODS update periods of the slowest source."""
    if min_window_s is not None:
        return min_window_s
    return max(MIN_WINDOW_S, MIN_PERIODS * max(periods, default=0.0))


@dataclass(frozen=True)
class Request:
    """One request inside the busy window, on the tokens' clock; trial_id None for an untimed extra."""

    t_start: int
    t_end: int
    tokens: int
    trial_id: int | None = None

    @property
    def seconds(self) -> float:
        return (self.t_end - self.t_start) / 1e9


@dataclass(frozen=True)
class WindowPower:
    """One device's steady power over one window, or why there is none."""

    power_w: float | None
    uncertainty_w: float | None = None
    readings: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class DeviceSteady:
    device: str
    source: str | None
    update_period_s: float
    busy: WindowPower
    idle: WindowPower


@dataclass
class SteadyEnergy:
    idle_span: tuple[int, int]
    busy_span: tuple[int, int]
    requests: list[Request]
    devices: dict[str, DeviceSteady]
    total_devices: tuple[str, ...]
    source: str | None  # the weakest tag of the total's devices
    busy_power_w: float | None = None
    idle_power_w: float | None = None
    busy_uncertainty_w: float | None = None
    net_uncertainty_w: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def window_s(self) -> float:
        return (self.busy_span[1] - self.busy_span[0]) / 1e9

    @property
    def busy_s(self) -> float:
        """The requests' own time (tokens' clock), without the gaps between them."""
        return math.fsum(r.seconds for r in self.requests)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.requests)

    @property
    def energy_j(self) -> float | None:
        return None if self.busy_power_w is None else self.busy_power_w * self.busy_s

    @property
    def net_j(self) -> float | None:
        if self.busy_power_w is None or self.idle_power_w is None:
            return None
        return (self.busy_power_w - self.idle_power_w) * self.busy_s

    def request_energy(self, request: Request) -> tuple[float | None, float | None]:
        """(gross, net) joules of one request: its share by the tokens' clock."""
        if self.busy_power_w is None:
            return None, None
        net = None if self.idle_power_w is None else (self.busy_power_w - self.idle_power_w) * request.seconds
        return self.busy_power_w * request.seconds, net

    def columns(self) -> dict:
        """The figures stored for the window (the steady_windows table)."""
        energy, net, tokens, count = self.energy_j, self.net_j, self.tokens, len(self.requests)

        def per(value: float | None, n: int) -> float | None:
            return value / n if value is not None and n else None

        return {
            "t_idle_start_ns": self.idle_span[0], "t_idle_end_ns": self.idle_span[1],
            "t_busy_start_ns": self.busy_span[0], "t_busy_end_ns": self.busy_span[1],
            "requests": count, "extra_requests": sum(r.trial_id is None for r in self.requests),
            "gen_tokens": tokens, "window_s": self.window_s, "busy_s": self.busy_s,
            "busy_power_w": self.busy_power_w, "idle_power_w": self.idle_power_w,
            "busy_uncertainty_w": self.busy_uncertainty_w, "net_uncertainty_w": self.net_uncertainty_w,
            "energy_j": energy, "energy_net_j": net,
            "energy_uncertainty_j": _times(self.busy_uncertainty_w, self.busy_s),
            "net_uncertainty_j": _times(self.net_uncertainty_w, self.busy_s),
            "energy_per_request_j": per(energy, count), "j_per_token": per(energy, tokens),
            "net_j_per_token": per(net, tokens), "energy_tag": self.source if energy is not None else None,
            "energy_notes": "; ".join(self.notes) or None,
        }


def _times(watts: float | None, seconds: float) -> float | None:
    return None if watts is None else watts * seconds


def steady_energy(samples: Iterable[Sample], idle_span: tuple[int, int], requests: list[Request], *,
                  update_period_s: Mapping[str, float] | None = None,
                  expected_devices: Iterable[str] = ()) -> SteadyEnergy:
    """The steady window's power and energy; see the module docstring for the rules. expected_devices: the
    devices of the opened sources, kept without a sample (a battery put on mains power), so that the total
    never becomes the sum of the rest."""
    periods = update_period_s or {}
    by_device: dict[str, list[Sample]] = {device: [] for device in expected_devices}
    for sample in samples:
        by_device.setdefault(sample.device, []).append(sample)
    busy_span = (min(r.t_start for r in requests), max(r.t_end for r in requests)) if requests else idle_span
    devices = {device: _device_steady(device, rows, idle_span, busy_span, periods.get(device, 0.0))
               for device, rows in sorted(by_device.items())}
    total = whole_machine_devices(devices)
    result = SteadyEnergy(idle_span, busy_span, requests, devices, total,
                          weakest_source(source for d in total if (source := devices[d].source)))
    if not requests:
        result.notes.append("no request finished in the window")
        return result
    _total(result, [devices[d] for d in total])
    return result


def _total(result: SteadyEnergy, parts: list[DeviceSteady]) -> None:
    for part in parts:
        for name, window in (("busy", part.busy), ("idle", part.idle)):
            if window.power_w is None:
                result.notes.append(f"{part.device} {name} window: {window.reason}")
    if not parts or any(p.busy.power_w is None for p in parts):
        return
    result.busy_power_w = math.fsum(p.busy.power_w for p in parts)  # type: ignore[misc]
    result.busy_uncertainty_w = _quadrature(p.busy.uncertainty_w for p in parts)
    if all(p.idle.power_w is not None for p in parts):
        result.idle_power_w = math.fsum(p.idle.power_w for p in parts)  # type: ignore[misc]
        result.net_uncertainty_w = _quadrature([p.busy.uncertainty_w for p in parts]
                                               + [p.idle.uncertainty_w for p in parts])
    gaps = result.window_s - result.busy_s
    if result.window_s > 0 and gaps / result.window_s > 0.05:
        result.notes.append(f"{gaps / result.window_s:.0%} of the busy window was spent between requests")


def _quadrature(values: Iterable[float | None]) -> float:
    return math.sqrt(math.fsum((v or 0.0) ** 2 for v in values))


def _device_steady(device: str, samples: list[Sample], idle_span: tuple[int, int], busy_span: tuple[int, int],
                   period_s: float) -> DeviceSteady:
    source = weakest_source({s.source for s in samples})
    cumulative = is_cumulative(samples)
    busy = _window_power(samples, busy_span, period_s, cumulative)
    idle = _window_power(samples, idle_span, period_s, cumulative)
    if busy.power_w is not None and idle.power_w is not None:  # the busy-idle step, one period misplaced
        step = abs(busy.power_w - idle.power_w)
        busy = _widen(busy, period_s / ((busy_span[1] - busy_span[0]) / 1e9) * step)
        idle = _widen(idle, period_s / ((idle_span[1] - idle_span[0]) / 1e9) * step)
    return DeviceSteady(device, source, period_s, busy, idle)


def _widen(window: WindowPower, systematic_w: float) -> WindowPower:
    combined = math.hypot(window.uncertainty_w or 0.0, systematic_w)
    return WindowPower(window.power_w, combined, window.readings, window.reason)


def _window_power(samples: list[Sample], span: tuple[int, int], period_s: float, is_counter: bool) -> WindowPower:
    start, end = span
    length_s = (end - start) / 1e9
    if length_s <= 0:
        return WindowPower(None, reason="empty window")
    if not is_slow(period_s):
        return _integrated_power(samples, span, period_s, is_counter)
    settled = start + int(SETTLE_PERIODS * period_s * 1e9)
    inside = sorted((s for s in samples if settled <= s.t_ns <= end), key=lambda s: s.t_ns)
    if is_counter:
        readings = [(s.t_ns, s.energy_j) for s in inside if s.energy_j is not None]
        if len(readings) < MIN_READINGS or readings[-1][0] == readings[0][0]:
            return _too_few(len(readings), length_s, period_s)
        (t0, e0), (t1, e1) = readings[0], readings[-1]
        return WindowPower((e1 - e0) / ((t1 - t0) / 1e9), 0.0, len(readings))
    values = [s.power_w for s in inside if s.power_w is not None]
    if len(values) < MIN_READINGS:
        return _too_few(len(values), length_s, period_s)
    return WindowPower(statistics.fmean(values), 2 * statistics.stdev(values) / math.sqrt(len(values)), len(values))


def _too_few(readings: int, length_s: float, period_s: float) -> WindowPower:
    return WindowPower(None, readings=readings, reason=(
        f"{readings} reading(s) settled inside a {length_s:.3g} s window of a source updating every "
        f"{period_s:.3g} s; it needs {MIN_READINGS} (a window of at least {MIN_PERIODS} periods)"))


def _integrated_power(samples: list[Sample], span: tuple[int, int], period_s: float, is_counter: bool) -> WindowPower:
    """A fast source: its energy over the window ÷ its length; the spread of its power readings gives the
    uncertainty."""
    points = [(s.t_ns, s.energy_j if is_counter else s.power_w) for s in samples]
    series = Series([(t, v) for t, v in points if v is not None])
    window = window_energy(series, span[0], span[1], is_counter, period_s)
    if window.avg_power_w is None:
        return WindowPower(None, reason=window.reason)
    values = [s.power_w for s in samples if span[0] <= s.t_ns <= span[1] and s.power_w is not None]
    spread = 2 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return WindowPower(window.avg_power_w, spread, max(window.samples_inside, len(values)))
