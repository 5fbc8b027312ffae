"""What every tab's pane shares: the app's configuration and the database, through the application layer."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from textual.containers import Vertical
from textual.widget import Widget
from textual.worker import get_current_worker

if TYPE_CHECKING:
    from energytui.app.machine import MeterOptions
    from energytui.app.queries import Store


@dataclass
class AppConfig:
    db_path: Path
    manifest: Path | None = None
    meter: MeterOptions | None = None


class Pane(Vertical):
    """A tab's content. Its workers run in threads and reach the widgets through call_from_thread."""

    DEFAULT_CSS = "Pane { height: 1fr; }"

    def __init__(self, config: AppConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def database(self) -> AbstractContextManager[Store]:
        from energytui.app.queries import database

        return database(self.config.db_path)

    def after_open(self) -> None:
        """The pane's first reads, once the app has painted its first screen and opened the database."""

    def tell(self, text: str, error: bool = False) -> None:
        """A notification from a worker thread."""
        self.on_ui(self.app.notify, text, severity="error" if error else "information",
                   markup=False, timeout=10 if error else 5)

    def on_ui(self, callback: Callable[..., object], *args, **kwargs) -> None:
        """Call `callback` on the UI thread from a worker, unless the pane is being taken down by then: a worker
        (the database poll's reload) may finish after the app began closing, when the widgets are gone."""
        def unless_closing() -> None:
            if not taken_down(self):
                callback(*args, **kwargs)

        self.app.call_from_thread(unless_closing)

    def show_latest(self, callback: Callable[..., object], *args) -> None:
        """As on_ui, for a refresh read by an exclusive worker: dropped if a newer read of the same kind has
        started since (it cancelled this one), so an older read never paints over a newer one (the run row read
        `stopped` while its next trial ran after a quick stop and start)."""
        worker = get_current_worker()

        def unless_superseded() -> None:
            if not worker.is_cancelled:
                callback(*args)

        self.on_ui(unless_superseded)


def taken_down(node: Widget) -> bool:
    """Whether the node or its app is closing (Textual's own test for a node that can still be shown)."""
    return not node.is_attached or any(pump._closing or pump._closed for pump in (node, node.app)) or node._pruning
