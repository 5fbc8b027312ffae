"""Energy of a trial's windows from raw samples: pure functions, no I/O.

Windows (all time.monotonic_ns()):

    idle_before [t_idle_start, t_start)   idle power reference (or up to t_idle_before_end)
    prefill     [t_start, t_first_token)
    decode      [t_first_token, t_last_token]
    idle_after  (t_last_token, t_idle_end]
    trial       [t_start, t_last_token]   = prefill + decode, the "gross" energy

Energy of a window, per device:
  - cumulative sources (every sample carries energy_j: a counter, or the CPU estimate's, each interval
    between readings at its ticks' power): energy_j interpolated linearly at both edges, differenced;
    the meter reads the estimate at the edges themselves, so nothing is interpolated across a change of
    load;
  - power-only sources: trapezoidal integral of power_w, with power interpolated linearly at the edges.
A window needs a sample at or before its start and one at or after its end, and
must last at least the device's update period; otherwise its energy is None with
`short_window=True` and a reason (never 0 J).

Decisions:
  - net = gross - idle_power x trial duration is NOT clamped: near-idle loads
    give small negative values from noise, and clamping would bias averages over
    repetitions upwards. A negative net sets `net_below_zero` and a note.
  - j_per_token = gross / generated tokens (the whole request per token);
    decode_j_per_token = decode energy / (tokens - 1), since the first token ends prefill.
  - edp_js = gross energy x end-to-end seconds (t_last_token - t_start).
  - peak power is the highest power sample (for RAPL: a per-read interval average)
    within the trial, including the interpolated values at its edges; None where the
    trial window is unresolved (shorter than the update period, or not covered by
    samples): a slow source's reading is no peak of the trial.
  - total: a whole-machine device alone if one is present (the "wall" meter, else the
    "battery"; each already includes every component), else the sum of all devices. A
    total window is None if any part is. Its source tag is the weakest of the devices in
    it (estimated < integrated < counter). Devices a source declares but that gave no
    sample (a battery put on mains power) stay in: their windows are None with a reason,
    so the total never silently becomes the sum of the remaining parts.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .base import WHOLE_MACHINE_DEVICES, Sample, is_cumulative, weakest_source

WINDOW_NAMES = ("idle_before", "prefill", "decode", "idle_after", "trial")


@dataclass(frozen=True)
class TrialWindows:
    t_idle_start: int
    t_start: int
    t_first_token: int
    t_last_token: int
    t_idle_end: int
    # where the idle window before ends, when work that belongs to no window (re-warming the CPU after the
    # idle window) separates it from prefill; None: at t_start
    t_idle_before_end: int | None = None

    def __post_init__(self) -> None:
        edges = [self.t_idle_start, self.idle_before_end, self.t_start, self.t_first_token, self.t_last_token,
                 self.t_idle_end]
        if edges != sorted(edges):
            raise ValueError(f"window edges must not decrease: {edges}")

    @property
    def idle_before_end(self) -> int:
        return self.t_start if self.t_idle_before_end is None else self.t_idle_before_end

    def spans(self) -> dict[str, tuple[int, int]]:
        return {
            "idle_before": (self.t_idle_start, self.idle_before_end),
            "prefill": (self.t_start, self.t_first_token),
            "decode": (self.t_first_token, self.t_last_token),
            "idle_after": (self.t_last_token, self.t_idle_end),
            "trial": (self.t_start, self.t_last_token),
        }


@dataclass
class WindowEnergy:
    start_ns: int
    end_ns: int
    energy_j: float | None
    avg_power_w: float | None
    short_window: bool = False
    reason: str | None = None
    samples_inside: int = 0  # samples strictly inside; 0 means both edges were interpolated from outside

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass
class DeviceEnergy:
    device: str  # "cpu-pkg0", "gpu0", ... or "total"
    source: str | None  # the (weakest) source tag of this device's samples
    windows: dict[str, WindowEnergy]
    idle_power_w: float | None = None
    idle_power_origin: str | None = None  # "measured" (idle_before) or "supplied"
    gross_j: float | None = None
    net_j: float | None = None
    net_below_zero: bool = False
    prefill_j: float | None = None
    decode_j: float | None = None
    j_per_token: float | None = None
    net_j_per_token: float | None = None
    decode_j_per_token: float | None = None
    avg_power_w: float | None = None
    peak_power_w: float | None = None
    edp_js: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class TrialEnergy:
    windows: TrialWindows
    gen_tokens: int
    e2e_s: float
    devices: dict[str, DeviceEnergy]
    total: DeviceEnergy
    total_devices: tuple[str, ...]  # which devices make up the total
    source: str | None  # weakest tag among total_devices

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class Series:
    """Sorted (time, value) pairs of one device with linear interpolation."""

    def __init__(self, points: list[tuple[int, float]]):
        points.sort(key=lambda point: point[0])
        self.times = [t for t, _ in points]
        self.values = [v for _, v in points]

    def missing_cover(self, start_ns: int, end_ns: int) -> str | None:
        if not self.times or self.times[0] > start_ns:
            return "no sample at or before the window start"
        if self.times[-1] < end_ns:
            return "no sample at or after the window end"
        return None

    def at(self, t_ns: int) -> float:
        """Linear interpolation; the caller ensures the series straddles t_ns."""
        right = bisect.bisect_left(self.times, t_ns)
        if self.times[right] == t_ns:
            return self.values[right]
        t0, t1 = self.times[right - 1], self.times[right]
        v0, v1 = self.values[right - 1], self.values[right]
        return v0 + (v1 - v0) * (t_ns - t0) / (t1 - t0)

    def inside(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """Index range of the points strictly inside (start_ns, end_ns)."""
        return bisect.bisect_right(self.times, start_ns), bisect.bisect_left(self.times, end_ns)

    def integral(self, start_ns: int, end_ns: int) -> float:
        """Trapezoidal integral in value x seconds."""
        first, last = self.inside(start_ns, end_ns)
        times = [start_ns, *self.times[first:last], end_ns]
        values = [self.at(start_ns), *self.values[first:last], self.at(end_ns)]
        return sum((times[i + 1] - times[i]) * (values[i] + values[i + 1]) for i in range(len(times) - 1)) / 2e9

    def decreases_within(self, start_ns: int, end_ns: int) -> bool:
        first = max(bisect.bisect_right(self.times, start_ns) - 1, 0)
        last = bisect.bisect_left(self.times, end_ns) + 1
        window = self.values[first:last]
        return any(b < a for a, b in zip(window, window[1:]))


def window_energy(series: Series, start_ns: int, end_ns: int, is_counter: bool,
                  update_period_s: float = 0.0) -> WindowEnergy:
    """Energy of one device over [start_ns, end_ns]; None with a reason when unresolvable."""
    duration_s = (end_ns - start_ns) / 1e9
    if duration_s <= 0 or duration_s < update_period_s:
        reason = (f"window lasts {duration_s * 1e3:.3g} ms, shorter than the update period "
                  f"{update_period_s * 1e3:.3g} ms") if duration_s > 0 else "empty window"
        return WindowEnergy(start_ns, end_ns, None, None, True, reason)
    missing = series.missing_cover(start_ns, end_ns)
    if missing:
        return WindowEnergy(start_ns, end_ns, None, None, True, missing)
    first, last = series.inside(start_ns, end_ns)
    if is_counter:
        if series.decreases_within(start_ns, end_ns):
            return WindowEnergy(start_ns, end_ns, None, None, False,
                                "energy counter went backwards (source reopened?)", last - first)
        energy_j = series.at(end_ns) - series.at(start_ns)
    else:
        energy_j = series.integral(start_ns, end_ns)
    return WindowEnergy(start_ns, end_ns, energy_j, energy_j / duration_s, samples_inside=last - first)


def update_periods(sources: Iterable) -> dict[str, float]:
    """device -> update period in seconds, from opened sources (pass to attribute())."""
    return {device: source.update_period_s for source in sources for device in source.devices}


def attribute(samples: Iterable[Sample], windows: TrialWindows, gen_tokens: int, *,
              update_period_s: Mapping[str, float] | None = None,
              idle_power_w: Mapping[str, float] | None = None,
              expected_devices: Iterable[str] = ()) -> TrialEnergy:
    """Per-device and total energy of one trial; see the module docstring for the rules.

    update_period_s: device -> seconds (see update_periods()); missing devices use 0.
    idle_power_w: device -> watts, overriding the idle_before measurement.
    expected_devices: the devices of the opened sources, attributed even without a sample.
    """
    update_period_s = update_period_s or {}
    idle_power_w = idle_power_w or {}
    by_device: dict[str, list[Sample]] = {device: [] for device in expected_devices}
    for sample in samples:
        by_device.setdefault(sample.device, []).append(sample)
    e2e_s = (windows.t_last_token - windows.t_start) / 1e9
    devices = {
        device: _device_energy(device, device_samples, windows, gen_tokens, e2e_s,
                               update_period_s.get(device, 0.0), idle_power_w.get(device))
        for device, device_samples in sorted(by_device.items())
    }
    total_devices = whole_machine_devices(devices)
    power_series = {d: Series([(s.t_ns, s.power_w) for s in by_device[d] if s.power_w is not None])
                    for d in total_devices}
    total = _total_energy([devices[d] for d in total_devices], power_series, windows, gen_tokens, e2e_s)
    return TrialEnergy(windows, gen_tokens, e2e_s, devices, total, total_devices, total.source)


def whole_machine_devices(devices: Iterable[str]) -> tuple[str, ...]:
    """The devices whose sum is the machine's power: a whole-machine device alone where there is one (the wall
    meter, else the battery: each already includes every component), else all of them."""
    devices = tuple(devices)
    whole_machine = [device for device in WHOLE_MACHINE_DEVICES if device in devices]
    return tuple(whole_machine[:1]) or devices


def _device_energy(device: str, samples: list[Sample], windows: TrialWindows, gen_tokens: int, e2e_s: float,
                   update_period_s: float, supplied_idle_w: float | None) -> DeviceEnergy:
    source = weakest_source({s.source for s in samples})
    cumulative = is_cumulative(samples)
    if cumulative:
        series = Series([(s.t_ns, s.energy_j) for s in samples if s.energy_j is not None])
    else:
        series = Series([(s.t_ns, s.power_w) for s in samples if s.power_w is not None])
    spans = windows.spans()
    result = DeviceEnergy(device, source, {
        name: window_energy(series, start, end, cumulative, update_period_s) for name, (start, end) in spans.items()
    })
    if len({s.source for s in samples}) > 1:
        result.notes.append("samples carry several source tags; the weakest is reported")
    power = series if not cumulative else Series([(s.t_ns, s.power_w) for s in samples if s.power_w is not None])
    if not result.windows["trial"].short_window:
        result.peak_power_w = _peak(power, *spans["trial"])
    _derive(result, supplied_idle_w, gen_tokens, e2e_s)
    return result


def _derive(result: DeviceEnergy, supplied_idle_w: float | None, gen_tokens: int, e2e_s: float) -> None:
    """Fill idle, gross, net, per-token and EDP figures from the window energies."""
    windows = result.windows
    if supplied_idle_w is not None:
        result.idle_power_w, result.idle_power_origin = supplied_idle_w, "supplied"
    elif windows["idle_before"].avg_power_w is not None:
        result.idle_power_w, result.idle_power_origin = windows["idle_before"].avg_power_w, "measured"
    else:
        result.notes.append(f"no idle power: idle_before {windows['idle_before'].reason}")
    result.gross_j = windows["trial"].energy_j
    result.prefill_j = windows["prefill"].energy_j
    result.decode_j = windows["decode"].energy_j
    result.avg_power_w = windows["trial"].avg_power_w
    if result.gross_j is None:
        return
    if result.idle_power_w is not None:
        result.net_j = result.gross_j - result.idle_power_w * e2e_s
        if result.net_j < 0:
            result.net_below_zero = True
            result.notes.append("net energy below zero: the trial is within noise of idle power")
    result.edp_js = result.gross_j * e2e_s
    if gen_tokens > 0:
        result.j_per_token = result.gross_j / gen_tokens
        if result.net_j is not None:
            result.net_j_per_token = result.net_j / gen_tokens
    if gen_tokens > 1 and result.decode_j is not None:
        result.decode_j_per_token = result.decode_j / (gen_tokens - 1)


def _peak(power: Series, start_ns: int, end_ns: int) -> float | None:
    first, last = power.inside(start_ns, end_ns)
    candidates = power.values[first:last]
    if power.missing_cover(start_ns, end_ns) is None:
        candidates += [power.at(start_ns), power.at(end_ns)]
    return max(candidates) if candidates else None


def _total_energy(parts: list[DeviceEnergy], power_series: dict[str, Series], windows: TrialWindows,
                  gen_tokens: int, e2e_s: float) -> DeviceEnergy:
    total = DeviceEnergy("total", weakest_source(p.source for p in parts if p.source), {})
    for name, (start, end) in windows.spans().items():
        pieces = [p.windows[name] for p in parts]
        missing = [f"{p.device}: {w.reason}" for p, w in zip(parts, pieces) if w.energy_j is None]
        measured = [w.energy_j for w in pieces if w.energy_j is not None]
        if missing or not pieces:
            total.windows[name] = WindowEnergy(start, end, None, None, any(w.short_window for w in pieces),
                                               "; ".join(missing) or "no samples")
        else:
            energy = sum(measured)
            total.windows[name] = WindowEnergy(start, end, energy, energy / ((end - start) / 1e9))
    idle_parts = [p.idle_power_w for p in parts if p.idle_power_w is not None]
    supplied_idle = sum(idle_parts) if parts and len(idle_parts) == len(parts) else None
    _derive(total, supplied_idle, gen_tokens, e2e_s)
    if supplied_idle is not None:
        total.idle_power_origin = "sum of devices"
    if not total.windows["trial"].short_window:
        total.peak_power_w = _summed_peak(list(power_series.values()), *windows.spans()["trial"])
    return total


def _summed_peak(series: list[Series], start_ns: int, end_ns: int) -> float | None:
    """Peak of the summed power, evaluated at every device's sample times (interpolating the others)."""
    if not series or any(s.missing_cover(start_ns, end_ns) for s in series):
        return None
    times = {start_ns, end_ns}
    for s in series:
        first, last = s.inside(start_ns, end_ns)
        times.update(s.times[first:last])
    return max(sum(s.at(t) for s in series) for t in times)
