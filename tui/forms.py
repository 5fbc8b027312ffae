"""What the app's forms share: a labelled field that shows its own error, and the whole-number check.

A form checks its fields when it is submitted (not while the user types), marks each bad one and says
under it, in the form's words, what is wrong and what to do; editing a field clears its mark."""

from __future__ import annotations

from typing import Iterable

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static

NO_LIVE_CHECK: list = []  # Input(validate_on=...): fields are checked on submit, by check_fields


class Field(Vertical):
    """A label beside its control, and a one-line error under them. The field's id is the control's id
    with `-field` added."""

    DEFAULT_CSS = """
    Field { height: auto; width: 1fr; }
    Field > .field-row { height: auto; }
    Field .field-label { width: auto; padding: 1 1 0 0; }
    Field Input, Field Select { width: 1fr; }
    Field .field-error { display: none; height: auto; color: $text-error; }
    Field.-error .field-error { display: block; }
    Field.-error SelectCurrent { border: tall $error; }
    """

    def __init__(self, label: str, control: Input | Select, label_width: int | None = None):
        super().__init__(id=f"{control.id}-field")
        self.label, self.control, self.label_width = label, control, label_width

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-row"):
            label = Label(self.label, classes="field-label", markup=False)
            yield label
            yield self.control
        error = Static("", classes="field-error", markup=False)
        if self.label_width:  # labels of one width line the inputs up, and the errors under them
            label.styles.width = self.label_width
            error.styles.margin = (0, 0, 0, self.label_width)
        yield error

    @property
    def error(self) -> str:
        """The error shown under the field ("" when none)."""
        return str(self.query_one(".field-error", Static).render()) if self.has_class("-error") else ""

    def show_error(self, message: str) -> None:
        self.query_one(".field-error", Static).update(message)
        self.add_class("-error")
        self.control.add_class("-invalid")
        self._tell_row()

    def clear_error(self) -> None:
        if self.has_class("-error"):
            self.remove_class("-error")
            self.control.remove_class("-invalid")
            self._tell_row()

    def _tell_row(self) -> None:
        for row in self.ancestors_with_self:
            if isinstance(row, FieldRow):
                row.show_errors()

    def check(self) -> bool:
        """Run the control's validators, showing the first failure; True when the value passes."""
        result = self.control.validate(self.control.value) if isinstance(self.control, Input) else None
        if result is not None and not result.is_valid:
            self.show_error(result.failure_descriptions[0])
            return False
        self.clear_error()
        return True

    @on(Input.Changed)
    @on(Select.Changed)
    def _edited(self) -> None:
        self.clear_error()


class FieldRow(Vertical):
    """Fields side by side, their errors on full-width lines under the row: a cell is too narrow to hold
    one on a line."""

    DEFAULT_CSS = """
    FieldRow { height: auto; }
    FieldRow > .row-fields { height: auto; }
    FieldRow Field.-error .field-error { display: none; }
    FieldRow > .row-errors { display: none; height: auto; color: $text-error; }
    FieldRow.-error > .row-errors { display: block; }
    """

    def __init__(self, *cells: Widget, id: str | None = None):
        super().__init__(id=id)
        self.cells = cells

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row-fields"):
            yield from self.cells
        yield Static("", classes="row-errors", markup=False)

    def show_errors(self) -> None:
        errors = [field.error for field in self.query(Field) if field.error]
        self.query_one(".row-errors", Static).update("\n".join(errors))
        self.set_class(bool(errors), "-error")


def check_fields(fields: Iterable[Field]) -> bool:
    """Check every field (so that all the bad ones are marked at once) and focus the first bad one."""
    bad = [field for field in list(fields) if not field.check()]
    if bad:
        bad[0].control.focus()
    return not bad


def ascii_digits(text: str) -> bool:
    """Whether the text is a count written in ASCII digits, as the CLI and the manifest take them: str.isdigit
    alone takes a superscript '²' (which int() refuses) and an Arabic-Indic '٣' (which int() reads as 3)."""
    return text.isascii() and text.isdigit()


class WholeNumbers(Validator):
    """A whole number ≥ 1, or with `many` a comma list of them (a sweep); `example` ends the message."""

    def __init__(self, label: str, example: str, many: bool = False):
        super().__init__()
        self.label, self.example, self.many = label, example, many

    def validate(self, value: str) -> ValidationResult:
        parts = [part.strip() for part in value.split(",")] if self.many else [value.strip()]
        bad = next((part for part in parts if not (ascii_digits(part) and int(part) >= 1)), None)
        if bad is None:
            return self.success()
        what = "missing" if not value.strip() else f"{bad!r} is not a whole number ≥ 1"
        return self.failure(f"{self.label}: {what}; write e.g. {self.example}")
