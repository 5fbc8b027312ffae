"""Signals during a run: held while llama.cpp is in a native call that calls back into Python."""

import os
import signal
import time

import pytest

from energytui.engine import interrupts
from helpers import default_signals


@pytest.fixture
def handlers():
    """The handlers a run installs, over default handling whatever the caller inherited (under `nohup` SIGHUP
    arrives ignored, and an ignored signal stays ignored: the test would wait for it forever)."""
    inherited = default_signals()
    previous = interrupts.install()
    yield
    interrupts.restore(previous)
    for signum, handler in inherited.items():
        signal.signal(signum, handler)


def test_a_signal_during_a_held_native_call_is_raised_once_it_returns(handlers):
    reached_the_end = False
    with pytest.raises(interrupts.Interrupted) as caught:
        with interrupts.held():
            os.kill(os.getpid(), signal.SIGTERM)
            reached_the_end = True  # the signal waited: the "native call" finished
    assert reached_the_end
    assert caught.value.exit_code == 143 and caught.value.describe() == "stopped by SIGTERM"


def test_outside_a_held_call_a_signal_stops_at_once(handlers):
    with pytest.raises(interrupts.Interrupted) as caught:
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(5)  # the handler raises at the next Python step; a signal that went astray fails, not hangs
    assert caught.value.exit_code == 129


def test_a_signal_the_caller_ignores_stays_ignored():
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        previous = interrupts.install()
        assert signal.SIGHUP not in previous and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        interrupts.restore(previous)
    finally:
        signal.signal(signal.SIGHUP, before)
