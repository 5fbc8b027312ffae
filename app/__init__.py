"""The application layer: what the two faces (the `energytui` CLI and the Textual app) do with the engine.

Both faces call only this package and the advisor's public functions; the engine's internals (the store's
SQL, the queue, the runner, the meter) stay behind it. pyproject.toml's import-linter contracts check that.
Modules are imported per command, because some pull in llama.cpp: `runs` (queue and run manifests),
`queries` (read and edit the database), `machine` (this host, its power sources, models), `views` (the
engine's labels and table cells that both faces show)."""

from energytui.engine.errors import UserError
from energytui.engine.interrupts import Abort, Interrupted
from energytui.engine.interrupts import describe as describe_interruption
from energytui.engine.paths import default_db_path
from energytui.engine.sigbus import guard_terminal, release_terminal

__all__ = ["Abort", "UserError", "default_db_path", "describe_interruption", "describe_signal", "guard_terminal",
           "release_terminal"]


def describe_signal(signum: int) -> str:
    """How a run stopped by this signal ends (its ended_by), in the words `energytui run` writes."""
    return Interrupted(signum).describe()
