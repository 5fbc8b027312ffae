"""The Advisor tab: a workload and a power budget in, the recommended configuration and its alternatives out."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Select, Static

from energytui.app import UserError

from ..charts import BarChart
from ..forms import NO_LIVE_CHECK, Field, FieldRow, WholeNumbers, check_fields
from ..pane import Pane


class AdvisorPane(Pane):
    """The form is checked when submitted (Enter in any field, or the button): a bad field is marked with
    what to write under it, and what was typed stays."""

    DEFAULT_CSS = """
    AdvisorPane FieldRow Field { margin-right: 1; }
    AdvisorPane #adv-objective-field { width: 24; }
    AdvisorPane #adv-prompt-field { width: 1.5fr; }  /* its label is long: the inputs get alike widths */
    AdvisorPane #advise { min-width: 10; }
    """
    BINDINGS = [Binding("a", "advise", "Advise", tooltip="Recommend how to run the form's workload within its budget")]

    def compose(self) -> ComposeResult:
        def text(name: str, label: str, value: str, placeholder: str, check: Validator) -> Field:
            return Field(label, Input(value, placeholder=placeholder, id=f"adv-{name}", validators=[check],
                                      validate_on=NO_LIVE_CHECK))

        # Two rows of three, so that at 80 columns every input stays wide enough to read.
        yield FieldRow(text("tokens", "tokens", "256", "e.g. 256", WholeNumbers("tokens", "256")),
                       text("prompt", "prompt tokens", "128", "e.g. 128", WholeNumbers("prompt tokens", "128")),
                       text("budget", "budget", "50W", "none, or 50W", _Power()))
        yield FieldRow(text("latency", "latency limit", "", "none, or 5s", _Duration()),
                       Field("objective", Select([(o, o) for o in ("energy", "edp", "latency")], value="energy",
                                                 allow_blank=False, id="adv-objective")),
                       Button("Advise", id="advise", variant="primary"))
        with VerticalScroll():
            yield Static("Ask for a recommendation: tokens, prompt, budget, latency limit.", id="advice-text",
                         markup=False)
            yield BarChart("predicted average power (W) against the budget", id="advice-chart")

    @on(Input.Submitted)
    @on(Button.Pressed, "#advise")
    def action_advise(self) -> None:
        if not check_fields(self.query(Field)):
            self.query_one("#advice-text", Static).update("Cannot advise: fix the marked field.")
            return
        values = {name: self.query_one(f"#adv-{name}", Input).value.strip()
                  for name in ("tokens", "prompt", "budget", "latency")}
        self.advise(values, str(self.query_one("#adv-objective", Select).value))

    @work(thread=True, exclusive=True, group="advisor")
    def advise(self, values: dict, objective: str) -> None:
        from energytui.advisor.recommend import Request, advise, parse_duration, parse_power, render
        from energytui.advisor.service import current_fit, has_gpu_trials, local_host_id

        text = self.query_one("#advice-text", Static)
        try:
            tokens, prompt = int(values["tokens"]), int(values["prompt"])  # the form checked them
            budget = parse_power(values["budget"]) if values["budget"] else None
            latency = parse_duration(values["latency"]) if values["latency"] else None
            with self.database() as store:
                host = local_host_id(store)
                fit, _ = current_fit(store, host)
                result = advise(fit, Request(tokens, prompt, budget, latency, objective), has_gpu_trials(store, host))
        except UserError as exc:
            self.tell(str(exc), error=True)
            self.on_ui(text.update, f"Cannot advise: {exc}")
            return
        shown = [p for p in ([result.recommendation] if result.recommendation else []) + result.alternatives
                 + result.rejected if p.values]
        self.on_ui(text.update, render(result))
        self.on_ui(lambda: self.query_one(BarChart).show(
            [str(i + 1) for i in range(len(shown))], [p.values["avg_power_w"] for p in shown],
            "predicted average power (W) per candidate (1 = recommended) against the budget", budget))


class _Power(Validator):
    def validate(self, value: str) -> ValidationResult:
        from energytui.advisor.recommend import parse_power

        try:
            if value.strip():
                parse_power(value)
        except UserError:
            return self.failure(f"budget: {value.strip()!r} is not a power; write e.g. 50W or 0.05kW (≤ 100kW), "
                                "or nothing")
        return self.success()


class _Duration(Validator):
    def validate(self, value: str) -> ValidationResult:
        from energytui.advisor.recommend import parse_duration

        try:
            if value.strip():
                parse_duration(value)
        except UserError:
            return self.failure(f"latency limit: {value.strip()!r} is not a duration; write e.g. 5s or 500ms, "
                                "or nothing")
        return self.success()
