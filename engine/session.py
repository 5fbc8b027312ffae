"""What running a queue needs, opened in order and closed in reverse, for both faces (CLI and app):
the power meter (first, so that a meter that cannot be read stops everything before the database is
touched), the engine, and the database with the runner's lock held and trials a stopped process left
`running` marked aborted."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .metering import Meter, MeterOptions
from .runner import Engine
from .store import Store


@dataclass
class RunResources:
    store: Store
    engine: Engine
    meter: Meter
    stale_aborted: int  # trials found `running` from a process that stopped, now aborted


@contextmanager
def running(db_path: Path, options: MeterOptions) -> Iterator[RunResources]:
    meter = Meter.open(options)
    engine, store = Engine(), None
    try:
        store = Store(db_path)
        store.acquire_runner_lock()
        stale = store.abort_stale_running()
        meter.start()
        yield RunResources(store, engine, meter, stale)
    finally:
        meter.close()
        engine.close()
        if store is not None:
            store.close()
