"""The Live tab: the running trial, its power trace, and the trials finished in this session."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from energytui.app.views import TAG_LABELS, config_label

from ..charts import PowerChart
from ..pane import Pane


class LivePane(Pane):
    def compose(self) -> ComposeResult:
        yield Static("No trial running.", id="live-info", markup=False)
        yield PowerChart(id="power-chart")
        yield DataTable(id="recent-table")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("trial", "prompt", "tok/s", "TTFT ms", "J/token")

    def show(self, event) -> None:
        """A runner event (energytui.app.runs.Event)."""
        trial = event.trial
        info = self.query_one("#live-info", Static)
        if event.kind in ("trial_start", "cooldown"):
            what = "cooling down before" if event.kind == "cooldown" else "running"
            info.update(f"{what} trial {event.index}/{event.total}: "
                        f"{config_label(trial)} · prompt {trial['prompt_id']}")
        elif event.kind == "tokens":
            rate = f"{event.tokens_per_s:.1f} tok/s" if event.tokens_per_s else "…"
            info.update(f"trial {event.index}/{event.total}: {config_label(trial)} · prompt {trial['prompt_id']} · "
                        f"{event.tokens} tokens · {rate}")
            if event.samples:
                tags = sorted({s.source for s in event.samples})
                self.query_one(PowerChart).show([(s.t_ns, s.device, s.power_w) for s in event.samples],
                                                {"decode": event.t_first_ns}, "/".join(tags))
        elif event.kind == "trial_end":
            self._trial_ended(trial)

    def _trial_ended(self, trial: dict) -> None:
        self.query_one(DataTable).add_row(
            trial["id"], trial["prompt_id"], f"{trial['decode_tps'] or 0:.1f}", f"{trial['ttft_ms'] or 0:.0f}",
            f"{trial['j_per_token']:.4f} {TAG_LABELS.get(trial['energy_tag'], '')}"
            if trial.get("j_per_token") is not None else trial["status"])
        rate = f" · sampled at {trial['sample_hz']:.0f} Hz" if trial.get("sample_hz") else ""
        self.query_one("#live-info", Static).update(
            f"trial {trial['id']} {trial['status']}{rate} · energy source {trial.get('energy_source') or '–'}")
