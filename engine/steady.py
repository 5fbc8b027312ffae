"""A configuration's trials run back to back over one steady-state window (engine/telemetry/steady.py).

The queue hands a group its configuration's consecutive pending trials one at a time: the first one's idle
window is the group's (as long as the window), the others start straight after the one before, with no
idle window or re-warm of their own. When they end before the window is long enough, untimed extra
requests of the same trials follow. Then the window's samples are attributed: the window's figures are
stored with it, and each trial gets its own figures only where it lasts long enough for the sources.
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Callable

from .metering import Meter
from .runner import Measurement, TrialFailed
from .store import RunnerStore
from .telemetry.steady import Request, SteadyEnergy


class SteadyGroup:
    def __init__(self, store: RunnerStore, meter: Meter, run: int, first: dict):
        self.store, self.meter, self.run = store, meter, run
        self.key = (first["run_id"], first["config_id"])
        self.host_id = first.get("host_id")
        self.length_s = meter.steady_window_s
        self.idle_span: tuple[int, int] | None = None
        self.rows: list[dict] = []
        self.requests: list[Request] = []
        self.measurements: dict[int, Measurement] = {}
        self.notes: list[str] = []

    def takes(self, row: dict) -> bool:
        """Whether the next pending trial belongs to this window: same configuration, also measured steady."""
        return (row["run_id"], row["config_id"]) == self.key and \
            self.meter.window_mode(row.get("window")) == "steady"

    @property
    def started(self) -> bool:
        return self.idle_span is not None

    def idle_window(self, abort: threading.Event | None) -> None:
        """The group's idle window, run as its first trial's `before_start` (after loading and warm-up)."""
        start = self.meter.idle_before(abort, self.length_s)
        self.idle_span = (start, self.meter.idle_end or start)

    def add(self, row: dict, measurement: Measurement) -> None:
        self.rows.append(row)
        self.measurements[row["id"]] = measurement
        self.requests.append(_request(measurement, row["id"]))

    def busy_s(self) -> float:
        return (self.requests[-1].t_end - self.requests[0].t_start) / 1e9 if self.requests else 0.0

    def fill(self, run_request: Callable[[dict], Measurement], keep_going: Callable[[], bool]) -> None:
        """Untimed extra requests of the group's trials, in turn, until the busy window is long enough."""
        for row in itertools.cycle(self.rows):
            if self.busy_s() >= self.length_s or not keep_going():
                return
            try:
                self.requests.append(_request(run_request(row), None))
            except TrialFailed as exc:
                self.notes.append(f"extra requests stopped: {exc}")
                return

    def close(self) -> SteadyEnergy | None:
        """Attribute the window's samples and store its figures, and its trials' own where long enough."""
        samples = self.meter.take_after(self.requests[-1].t_end if self.requests else 0)
        if self.idle_span is None:
            return None
        energy = self.meter.steady(samples, self.idle_span, self.requests)
        energy.notes[:0] = self.notes
        if self.requests and self.busy_s() < self.length_s:
            energy.notes.insert(0, f"the busy window lasted {self.busy_s():.3g} s of the {self.length_s:.3g} s asked "
                                   "(the run was stopped)")
        trial_energy = {trial_id: self._trial_columns(samples, measurement, energy)
                        for trial_id, measurement in self.measurements.items()}
        self.store.save_window(self.run, self._window_row(energy), samples, trial_energy)
        return energy

    def _trial_columns(self, samples: list, measurement: Measurement, energy: SteadyEnergy) -> dict:
        """The trial's own energy (None where it is shorter than a source's update period), noting that its
        configuration's figures come from the steady window."""
        assert self.idle_span is not None
        columns = self.meter.trial_energy(samples, measurement, self.idle_span[0], self.idle_span[1],
                                          measurement.t_end_ns)
        note = "energy per request of this configuration: its steady-state window"
        columns["energy_notes"] = "; ".join(filter(None, [columns.get("energy_notes"), note]))
        return columns

    def _window_row(self, energy: SteadyEnergy) -> dict:
        devices = {name: {"source": d.source, "update_period_s": d.update_period_s,
                          "busy_w": d.busy.power_w, "busy_uncertainty_w": d.busy.uncertainty_w,
                          "busy_readings": d.busy.readings, "idle_w": d.idle.power_w,
                          "idle_uncertainty_w": d.idle.uncertainty_w, "idle_readings": d.idle.readings}
                   for name, d in energy.devices.items()}
        return {**energy.columns(), "run_id": self.key[0], "config_id": self.key[1], "host_id": self.host_id,
                "energy_method": self.meter.method, "devices": json.dumps(devices)}


def _request(measurement: Measurement, trial_id: int | None) -> Request:
    return Request(measurement.t_start_ns, measurement.t_end_ns, measurement.gen_tokens, trial_id)
