"""Energy of trials: the telemetry sources and sampler around a run, idle windows, attribution.

The sampler runs for the whole run on the tokens' clock (time.monotonic_ns). Around
each trial the meter holds an idle window (before prefill starts, after the last
token), drains the samples, and attributes energy to idle-before · prefill · decode ·
idle-after. Every figure keeps its source tag: counter, integrated or estimated.
Cumulative sources that are cheap to read (EdgeSource: the CPU estimate) are also read
at every window's edge (mark), from the runner's thread: their windows are exact
differences, and their periodic readings can be slow enough not to slow llama.cpp.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .telemetry import Sampler, TrialEnergy, TrialWindows, attribute, discover, update_periods
from .telemetry.attribution import whole_machine_devices
from .telemetry.base import COUNTER, INTEGRATED, EdgeSource, Sample, StoppingSource, is_slow
from .telemetry.battery import DEFAULT_POWER_SUPPLY_ROOT
from .telemetry.steady import WINDOW_MODES, Request, SteadyEnergy, steady_energy, window_length
from .telemetry.rapl import DEFAULT_POWERCAP_ROOT

if TYPE_CHECKING:  # the runner loads llama.cpp, which meter options and result tables need not
    from .runner import Measurement

AUTO_COOLDOWN_BOUND_S = 30.0
_AUTO_COOLDOWN_WINDOW_NS = 250_000_000


MAX_CPU_TDP_W = 1000.0  # per package: beyond any desktop or server CPU, so a larger figure is a typo
MIN_CPU_TDP_W = 1.0  # below any laptop or single-board computer's CPU: every figure would read as zero


@dataclass
class MeterOptions:
    rate_hz: float = 100.0
    idle_s: float = 0.5  # idle window measured right before each trial's prefill
    idle_after_s: float = 0.25
    cpu_tdp_w: float | None = None
    cpu_static_share: float | None = None  # the CPU estimate's static share of TDP (None: config/cpu_tdp.yaml's)
    power_command: str | None = None
    # $ENERGYTUI_POWERCAP_ROOT: a powercap tree elsewhere (a container's bind mount, or a test's fake tree)
    powercap_root: str = field(default_factory=lambda: os.environ.get("ENERGYTUI_POWERCAP_ROOT", DEFAULT_POWERCAP_ROOT))
    # $ENERGYTUI_POWER_SUPPLY_ROOT: the batteries' power_supply tree elsewhere (a test's fake battery)
    power_supply_root: str = field(
        default_factory=lambda: os.environ.get("ENERGYTUI_POWER_SUPPLY_ROOT", DEFAULT_POWER_SUPPLY_ROOT))
    nvml: Any = None  # a pynvml-like module; tests inject a stand-in
    window: str | None = None  # --window: overrides every trial's manifest `window` (None: as the manifest says)
    min_window_s: float | None = None  # --min-window: a steady window's length (None: 5 update periods)

    def check(self) -> None:
        """Every option within bounds before anything runs; chained comparisons, which NaN never passes."""
        if self.window is not None and self.window not in WINDOW_MODES:
            raise UserError(f"--window {self.window}: choose one of {', '.join(WINDOW_MODES)}")
        if self.min_window_s is not None and not 0.1 <= self.min_window_s <= 3600:
            raise UserError(f"--min-window {self.min_window_s:g}s: give a length between 0.1 s and 1 h, e.g. 5s")
        if not 1 <= self.rate_hz <= 1000:
            raise UserError(f"--sample-hz {self.rate_hz:g}: choose a rate between 1 and 1000 Hz")
        if not 0.05 <= self.idle_s <= 3600:
            raise UserError(f"--idle-s {self.idle_s:g}: give an idle window from 0.05 s to 1 h (3600 s) to measure "
                            "idle power")
        if self.cpu_tdp_w is not None and not MIN_CPU_TDP_W <= self.cpu_tdp_w <= MAX_CPU_TDP_W:
            raise UserError(f"--cpu-tdp {self.cpu_tdp_w:g}: give the CPU's TDP in watts, from {MIN_CPU_TDP_W:g} to "
                            f"{MAX_CPU_TDP_W:g} (per CPU package)")
        if self.cpu_static_share is not None and not 0 <= self.cpu_static_share < 1:
            raise UserError(f"--cpu-static-share {self.cpu_static_share:g}: give the share of TDP the CPU draws "
                            "whatever the load, from 0 to below 1 (e.g. 0.3 or 30%)")
        if self.power_command is not None and not self.power_command.strip():
            raise UserError(f"--power-command {self.power_command!r}: empty; give the command that prints the "
                            "system's watts, or drop --power-command")


class Meter:
    """Owns the sources and the sampler of one run. One runner thread drives it; `samples_since` alone may be
    called from any thread (a live display), so every move of samples into `_pending` holds `_lock`."""

    def __init__(self, sources: list, unavailable: list, options: MeterOptions):
        self.sources, self.unavailable, self.options = sources, unavailable, options
        self.periods = update_periods(sources)
        self.edge_sources = [s for s in sources if isinstance(s, EdgeSource)]
        self.sampler: Sampler | None = None
        self._pending: list[Sample] = []
        self._taken: list[Sample] = []  # the last trial's samples, still shown by a live display
        self._anchors: dict[str, Sample] = {}  # each device's last sample handed over: the next window's left edge
        self._lock = threading.Lock()
        self._last_idle_w: float | None = None
        self._idle_end: int | None = None

    @classmethod
    def open(cls, options: MeterOptions) -> "Meter":
        options.check()
        sources, unavailable = discover(powercap_root=options.powercap_root, nvml=options.nvml,
                                        cpu_tdp_w=options.cpu_tdp_w, cpu_static_share=options.cpu_static_share,
                                        power_command=options.power_command,
                                        power_supply_root=options.power_supply_root)
        named = next((u for u in unavailable if u.name == "external"), None) if options.power_command else None
        if named is not None:  # a meter the user named never falls back silently to an estimate
            raise UserError(f"--power-command {options.power_command!r}: cannot be read ({named.reason}"
                            f"{'; fix: ' + named.remedy if named.remedy else ''}); fix it or drop --power-command")
        if not sources:
            reasons = "; ".join(str(u) for u in unavailable)
            raise UserError(f"no power source can be read here, not even the CPU estimate ({reasons}); "
                            "see `energytui doctor`", exit_code=3)
        return cls(sources, unavailable, options)

    @property
    def method(self) -> str:
        """One line per source: how its numbers are obtained (stored with the run)."""
        return "\n".join(f"{', '.join(s.devices)}: {s.method}" for s in self.sources)  # methods start with their tag

    @property
    def only_estimates(self) -> bool:
        return not any(s.source in (COUNTER, INTEGRATED) for s in self.sources)

    @property
    def slow_devices(self) -> dict[str, float]:
        """The devices of the machine's total whose value changes too seldom to resolve a trial's windows,
        with their update periods: their energy comes from steady-state windows."""
        return {d: self.periods[d] for d in whole_machine_devices(self.periods) if is_slow(self.periods[d])}

    def window_mode(self, asked: str | None) -> str:
        """'trial' or 'steady' for a trial whose manifest asks `asked`; --window overrides the manifest."""
        mode = self.options.window or asked or "auto"
        if mode == "auto":
            return "steady" if self.slow_devices else "trial"
        return mode

    @property
    def steady_window_s(self) -> float:
        total = whole_machine_devices(self.periods)
        return window_length((self.periods[d] for d in total), self.options.min_window_s)

    def start(self) -> None:
        self.sampler = Sampler(self.sources, rate_hz=self.options.rate_hz)
        self.sampler.start()

    @property
    def _running(self) -> Sampler:
        """The sampler that start() started: samples are drained only between start() and close()."""
        if self.sampler is None:
            raise RuntimeError("the meter was not started")
        return self.sampler

    def idle_before(self, abort: threading.Event | None = None, seconds: float | None = None) -> int:
        """Hold still for the idle window (`seconds`, else --idle-s); returns its start. Called just before
        prefill starts (the engine re-warms the CPU between its end and prefill: that work belongs to no
        window). `abort` set ends the window early (the caller then stops the trial)."""
        self._collect()
        self.mark()
        started = time.monotonic_ns()
        _pause(self.options.idle_s if seconds is None else seconds, abort)
        self._idle_end = time.monotonic_ns()
        self.mark()
        return covered_start([*self._anchors.values(), *self._collect()], started)

    def finish(self, t_idle_start: int | None, measurement: Measurement | None) -> tuple[list[Sample], dict]:
        """Idle after the trial, then its samples and energy columns ({} for a trial that did not run)."""
        if measurement is None or t_idle_start is None:
            return self._take(), {}
        time.sleep(self.options.idle_after_s)
        # a source whose period the trial outlasts resolves it only with a reading past its end (a wall meter read
        # once a second: the idle-after window is too short to hold one): wait for it, at most one period
        span_s = (measurement.t_end_ns - measurement.t_start_ns) / 1e9
        resolvable = {device: period for device, period in self.periods.items() if period <= span_s}
        self._await_readings(set(resolvable), measurement.t_end_ns, max(resolvable.values(), default=0) + 0.1)
        t_idle_end = time.monotonic_ns()
        self.mark()
        anchors = list(self._anchors.values())
        samples = self._take()
        return samples, self.trial_energy(samples, measurement, t_idle_start, self._idle_end, t_idle_end, anchors)

    def trial_energy(self, samples: list[Sample], measurement: Measurement, t_idle_start: int,
                     t_idle_before_end: int | None, t_idle_end: int, anchors: Sequence[Sample] = ()) -> dict:
        """A trial's energy columns from the samples around it; `anchors`, each device's reading before them
        (handed to the trial before), cover a window's start that a slow source read before the samples."""
        t_first = measurement.t_first_ns or measurement.t_end_ns
        windows = TrialWindows(t_idle_start, measurement.t_start_ns, t_first, measurement.t_end_ns, t_idle_end,
                               t_idle_before_end=min(t_idle_before_end or measurement.t_start_ns,
                                                     measurement.t_start_ns))
        energy = attribute([*anchors, *samples], windows, measurement.gen_tokens, update_period_s=self.periods,
                           expected_devices=self.periods.keys())
        self._last_idle_w = energy.total.idle_power_w
        return {**energy_columns(energy, samples, self.stop_notes(t_idle_start, t_idle_end)),
                "energy_method": self.method}

    def stop_notes(self, start_ns: int, end_ns: int) -> list[str]:
        """Why a source that stopped for good (a battery put on mains power) gives no samples in this span."""
        return [note for s in self.sources if isinstance(s, StoppingSource) if (note := s.stop_note(start_ns, end_ns))]

    @property
    def idle_end(self) -> int | None:
        """When the last idle window ended."""
        return self._idle_end

    def take_after(self, t_ns: int, timeout_s: float = 0.25) -> list[Sample]:
        """Every sample not yet handed over (a steady window's, at its end), once each fast source has read
        at or after t_ns (a window integrated over a fast source needs one past its end; a slow source's
        window uses only readings inside it)."""
        self.mark()
        self._await_readings({d for d, period in self.periods.items() if not is_slow(period)}, t_ns, timeout_s)
        return self._take()

    def _await_readings(self, devices: set[str], t_ns: int, timeout_s: float) -> None:
        """Wait, at most `timeout_s`, until each of `devices` has read at or after t_ns."""
        deadline = time.monotonic() + timeout_s
        while devices and time.monotonic() < deadline:
            if devices <= {s.device for s in self._collect() if s.t_ns >= t_ns}:
                return
            time.sleep(1 / self.options.rate_hz)

    def steady(self, samples: list[Sample], idle_span: tuple[int, int], requests: list[Request]) -> SteadyEnergy:
        """A steady window's energy. A source that stopped by the window's end (a battery put on mains power)
        gives it nothing: a slow source's mean over part of the window is not the window's power."""
        end = max((r.t_end for r in requests), default=idle_span[1])
        stopped = [s for s in self.sources if isinstance(s, StoppingSource) and s.stop_note(idle_span[0], end)]
        gone = {device for source in stopped for device in source.devices}
        energy = steady_energy([s for s in samples if s.device not in gone], idle_span, requests,
                               update_period_s=self.periods, expected_devices=self.periods.keys())
        energy.notes[:0] = self.stop_notes(idle_span[0], end)
        if energy.idle_power_w is not None:
            self._last_idle_w = energy.idle_power_w
        return energy

    def cooldown(self, seconds: float | str, abort: threading.Event | None = None) -> None:
        """A fixed pause, or 'auto': until total power is back near the last idle power (bounded); either
        ends early when `abort` is set."""
        if seconds != "auto":
            _pause(float(seconds), abort)
            return
        deadline = time.monotonic() + AUTO_COOLDOWN_BOUND_S
        while time.monotonic() < deadline and not (abort is not None and abort.is_set()):
            _pause(0.1, abort)
            self._collect()
            if self._near_idle():
                return

    def _near_idle(self) -> bool:
        if self._last_idle_w is None or not self._pending:
            return True
        recent_from = self._pending[-1].t_ns - _AUTO_COOLDOWN_WINDOW_NS
        total = set(whole_machine_devices(self.periods))  # as the idle power was summed: a wall meter alone
        by_device: dict[str, list[float]] = {}
        for sample in self._pending:
            if sample.device in total and sample.t_ns >= recent_from and sample.power_w is not None:
                by_device.setdefault(sample.device, []).append(sample.power_w)
        recent_w = sum(sum(values) / len(values) for values in by_device.values())
        return recent_w <= self._last_idle_w * 1.1 + 0.5

    def mark(self) -> None:
        """Read every edge source now: a window's edge (the runner's thread; one read of the CPU estimate took
        9 µs here)."""
        t_ns = time.monotonic_ns()
        readings = [sample for source in self.edge_sources for sample in source.read_edge(t_ns)]
        if readings:
            with self._lock:
                self._pending += readings

    def samples_since(self, t_ns: int) -> list[Sample]:
        """The samples taken at or after t_ns and not yet handed to a trial, without taking them; any thread."""
        with self._lock:
            self._pending += self._running.drain()
            return [sample for sample in (*self._taken, *self._pending) if sample.t_ns >= t_ns]

    def _collect(self) -> list[Sample]:
        """Move what the sampler holds into the pending samples (the lock: a display may be reading them)."""
        with self._lock:
            self._pending += self._running.drain()
            return self._pending

    def _take(self) -> list[Sample]:
        with self._lock:
            samples, self._pending = self._pending + self._running.drain(), []
            self._taken = samples
        for sample in samples:  # a device's latest (an edge source's readings are not in time order here)
            known = self._anchors.get(sample.device)
            if known is None or sample.t_ns >= known.t_ns:
                self._anchors[sample.device] = sample
        return samples

    def achieved_hz(self) -> dict[str, float]:
        return {name: stats.achieved_hz for name, stats in self.sampler.stats().items()} if self.sampler else {}

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        for source in self.sources:
            source.close()


def parse_seconds(flag: str, text: str) -> float:
    """'5s', '500ms', '5', '1min' → seconds; a UserError naming the flag otherwise."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|min)?\s*", text, re.IGNORECASE)
    if not match:
        raise UserError(f"{flag} {text!r}: give a duration like 5s, 500ms or 5")
    return float(match.group(1)) * {"ms": 1e-3, "s": 1.0, "min": 60.0}[(match.group(2) or "s").lower()]


def _pause(seconds: float, abort: threading.Event | None) -> None:
    """Sleep, or wait on `abort` so that setting it ends the pause at once."""
    if abort is None:
        time.sleep(seconds)
    else:
        abort.wait(seconds)


def covered_start(samples: list[Sample], started: int) -> int:
    """The idle window's start, moved to where every device has a sample at or before it.

    On a loaded machine the sampler thread can miss the moment the window opens; without a
    sample before the start the window could not be measured at all. Starting it at the first
    sample that does exist keeps the idle measurement, a few milliseconds shorter.
    """
    for device in {s.device for s in samples}:
        times = [s.t_ns for s in samples if s.device == device]
        if min(times) > started:
            started = min(times)
    return started


def _sum_of(energy: TrialEnergy, prefix: tuple[str, ...]) -> float | None:
    parts = [d.gross_j for name, d in energy.devices.items() if name.startswith(prefix)]
    known = [part for part in parts if part is not None]
    return sum(known) if known and len(known) == len(parts) else None


def energy_columns(energy: TrialEnergy, samples: list[Sample], source_notes: list[str] | None = None) -> dict:
    """The energy figures stored on a trial row, with their source tags and flags. The tags name only the devices
    whose samples made a stored figure: a trial without energy claims no source. source_notes come first."""
    total = energy.total
    notes = list(source_notes or [])
    notes += [f"{device} {name}: {window.reason}" for device, dev in energy.devices.items()
             for name, window in dev.windows.items()
             if window.energy_j is None and name in ("prefill", "decode", "trial")]
    notes += [f"{device}: {note}" for device, dev in energy.devices.items() for note in dev.notes]
    span_s = (energy.windows.t_idle_end - energy.windows.t_idle_start) / 1e9
    counts: dict[str, int] = {}
    for sample in samples:
        if energy.windows.t_idle_start <= sample.t_ns <= energy.windows.t_idle_end:
            counts[sample.device] = counts.get(sample.device, 0) + 1
    columns = {
        "energy_j": total.gross_j,
        "energy_net_j": total.net_j,
        "energy_cpu_j": _sum_of(energy, ("cpu",)),
        "energy_gpu_j": _sum_of(energy, ("gpu",)),
        "prefill_energy_j": total.prefill_j,
        "decode_energy_j": total.decode_j,
        "j_per_token": total.j_per_token,
        "avg_power_w": total.avg_power_w,
        "peak_power_w": total.peak_power_w,
        "idle_power_w": total.idle_power_w,
        "edp_js": total.edp_js,
        "energy_source": ";".join(f"{device}:{dev.source}" for device, dev in energy.devices.items()),
        "energy_tag": energy.source,
        "sample_hz": min(counts.values()) / span_s if counts and span_s > 0 else None,
        "energy_notes": "; ".join(notes) or None,
    }
    return {**columns, **_claimed_sources(energy, columns)}


# Which devices each stored figure comes from: the whole-trial figures from the total's devices, the per-part sums
# from the devices they add up.
_TOTAL_COLUMNS = ("energy_j", "energy_net_j", "prefill_energy_j", "decode_energy_j", "j_per_token", "avg_power_w",
                  "peak_power_w", "idle_power_w", "edp_js")
_PART_COLUMNS = {"energy_cpu_j": "cpu", "energy_gpu_j": "gpu"}


def _claimed_sources(energy: TrialEnergy, columns: dict) -> dict:
    """energy_source and energy_tag naming only the devices that produced a stored figure: a trial without
    energy claims no source (its notes say why). The tag is the whole-trial figures' (the total's)."""
    has_total = any(columns[name] is not None for name in _TOTAL_COLUMNS)
    producers = set(energy.total_devices) if has_total else set()
    for name, prefix in _PART_COLUMNS.items():
        if columns[name] is not None:
            producers.update(device for device in energy.devices if device.startswith(prefix))
    return {"energy_source": ";".join(f"{device}:{dev.source}" for device, dev in energy.devices.items()
                                      if device in producers) or None,
            "energy_tag": energy.source if has_total else None}


@dataclass
class ProbeReport:
    sources: list[dict]
    unavailable: list
    real: bool  # at least one source measures (counter or integrated) rather than estimates


def probe_sources(options: MeterOptions, seconds: float = 1.0) -> ProbeReport:
    """Open every source, sample them briefly, and say what each achieved (for `energytui doctor`)."""
    options.check()
    sources, unavailable = discover(powercap_root=options.powercap_root, nvml=options.nvml,
                                    cpu_tdp_w=options.cpu_tdp_w, cpu_static_share=options.cpu_static_share,
                                    power_command=options.power_command, power_supply_root=options.power_supply_root)
    try:
        sampler = Sampler(sources, rate_hz=options.rate_hz)
        with sampler:
            time.sleep(seconds)
        stats = sampler.stats()
        rows = [{"name": s.name, "devices": s.devices, "tag": s.source, "method": s.method,
                 "assumption": getattr(s, "assumption", None), "update_period_ms": s.update_period_s * 1e3,
                 "slow": is_slow(s.update_period_s), "state": getattr(s, "state", None),
                 "achieved_hz": stats[s.name].achieved_hz, "errors": stats[s.name].errors} for s in sources]
    finally:
        for source in sources:
            source.close()
    return ProbeReport(rows, unavailable, any(s.source in (COUNTER, INTEGRATED) for s in sources))
