"""A yes/no question in a small modal, answered by y or n (Esc is no): e.g. before removing a queued trial."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True for yes, False for no."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    #confirm-box { width: 70; max-width: 95%; height: auto; border: round $warning; background: $surface;
                   padding: 0 1; }
    #confirm-box Horizontal { height: auto; }
    #confirm-box Button { margin-right: 1; }
    """
    BINDINGS = [Binding("y", "dismiss(True)", "Yes"), Binding("n,escape", "dismiss(False)", "No")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question", markup=False)
            with Horizontal():
                yield Button("Yes (y)", id="confirm-yes", variant="error")
                yield Button("No (n)", id="confirm-no")

    @on(Button.Pressed, "#confirm-yes, #confirm-no")
    def _answered(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")
