"""The Advisor tab: a workload and a power budget in, the recommended configuration and its alternatives out."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Select, Static

from energytui.app import UserError

from ..charts import BarChart
from ..pane import Pane


class AdvisorPane(Pane):
    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Input("256", placeholder="tokens", id="adv-tokens")
            yield Input("128", placeholder="prompt tokens", id="adv-prompt")
            yield Input("50W", placeholder="budget (50W)", id="adv-budget")
            yield Input("", placeholder="latency limit (5s)", id="adv-latency")
            yield Select([(o, o) for o in ("energy", "edp", "latency")], value="energy", allow_blank=False,
                         id="adv-objective")
            yield Button("Advise", id="advise", variant="primary")
        with VerticalScroll():
            yield Static("Ask for a recommendation: tokens, prompt, budget, latency limit.", id="advice-text",
                         markup=False)
            yield BarChart("predicted average power (W) against the budget", id="advice-chart")

    @on(Button.Pressed, "#advise")
    def _advise_pressed(self) -> None:
        values = {name: self.query_one(f"#adv-{name}", Input).value.strip()
                  for name in ("tokens", "prompt", "budget", "latency")}
        self.advise(values, str(self.query_one("#adv-objective", Select).value))

    @work(thread=True, exclusive=True, group="advisor")
    def advise(self, values: dict, objective: str) -> None:
        from energytui.advisor.recommend import Request, advise, parse_duration, parse_power, render
        from energytui.advisor.service import current_fit, has_gpu_trials, local_host_id

        text = self.query_one("#advice-text", Static)
        try:
            tokens, prompt = _whole(values["tokens"], "tokens"), _whole(values["prompt"], "prompt tokens")
            budget = parse_power(values["budget"]) if values["budget"] else None
            latency = parse_duration(values["latency"]) if values["latency"] else None
            with self.database() as store:
                host = local_host_id(store)
                fit, _ = current_fit(store, host)
                result = advise(fit, Request(tokens, prompt, budget, latency, objective), has_gpu_trials(store, host))
        except UserError as exc:
            self.tell(str(exc), error=True)
            self.app.call_from_thread(text.update, f"Cannot advise: {exc}")
            return
        shown = [p for p in ([result.recommendation] if result.recommendation else []) + result.alternatives
                 + result.rejected if p.values]
        self.app.call_from_thread(text.update, render(result))
        self.app.call_from_thread(self.query_one(BarChart).show, [str(i + 1) for i in range(len(shown))],
                                  [p.values["avg_power_w"] for p in shown],
                                  "predicted average power (W) per candidate (1 = recommended) against the budget",
                                  budget)


def _whole(text: str, name: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"{name} {text!r}: give a whole number ≥ 1")
    return int(text)
