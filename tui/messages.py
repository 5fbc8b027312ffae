"""Typed messages between the panes, the runner thread and the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # the runs module loads llama.cpp, which the app needs only once it runs trials
    from energytui.app.runs import Event


class TrialEvent(Message):
    """Progress from the runner thread: a trial started, produced tokens, cooled down or ended."""

    def __init__(self, event: Event):
        super().__init__()
        self.event = event


class RunEnded(Message):
    """The runner thread finished: how the run ended, and its trials by status."""

    def __init__(self, status: str, error: str | None = None, counts: dict[str, int] | None = None):
        super().__init__()
        self.status, self.error = status, error
        self.counts = counts or {}


class TrialsChanged(Message):
    """Trials were queued, edited or finished: tables that show them reload from the database."""
