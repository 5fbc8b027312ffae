"""How a run stops on a signal: Ctrl-C (SIGINT), SIGTERM (`timeout`, a service manager) and SIGHUP (a
closed terminal) all become one exception, `Interrupted`, raised between Python steps and never inside
llama.cpp's own callbacks (a signal that arrives while llama.cpp is loading a model or creating a
context is held until that call returns). The app stops a run from its UI thread instead, through an
`Abort` (a threading.Event that says why), checked at each decode step, idle window and cooldown."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_state: dict = {"depth": 0, "pending": None}

STOPPED_BY_USER = "stopped by the user"


class Abort(threading.Event):
    """run_queue's `abort` (engine/queue.py) that says why it was set: the aborted trial's error and the
    run's ended_by. A plain threading.Event works too (the reason is then STOPPED_BY_USER)."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = STOPPED_BY_USER

    def set(self, reason: str = STOPPED_BY_USER) -> None:
        self.reason = reason
        super().set()


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; `exit_code` is the shell's 128 + signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum

    def describe(self) -> str:
        messages: dict[int, str] = {signal.SIGINT: "interrupted by the user (Ctrl-C)",
                                    signal.SIGHUP: "stopped by SIGHUP (the terminal was closed)"}
        return messages.get(self.signum, f"stopped by {signal.Signals(self.signum).name}")


def describe(exc: BaseException) -> str:
    return exc.describe() if isinstance(exc, Interrupted) else "interrupted by the user (Ctrl-C)"


def _handler(signum, _frame) -> None:
    if _state["depth"]:
        _state["pending"] = _state["pending"] or signum
        return
    raise Interrupted(signum)


def install() -> dict:
    """Route the handled signals to `Interrupted` (a signal the caller's shell ignores stays ignored);
    returns the previous handlers for `restore`."""
    previous = {}
    for signum in HANDLED:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue
        previous[signum] = current
        signal.signal(signum, _handler)
    return previous


def restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def pending() -> bool:
    """Whether a signal came in while held (a native loop's call-back asks, to stop early)."""
    return bool(_state["pending"])


@contextmanager
def held():
    """Hold signals during a native call that calls back into Python; raise them once it returned."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"] and _state["pending"]:
            signum, _state["pending"] = _state["pending"], None
            raise Interrupted(signum)
