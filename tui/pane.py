"""What every tab's pane shares: the app's configuration and the database, through the application layer."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.containers import Vertical

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
        self.app.call_from_thread(self.app.notify, text, severity="error" if error else "information",
                                  markup=False, timeout=10 if error else 5)
