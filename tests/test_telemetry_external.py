"""The external meter source with tiny python -c commands standing in for a meter."""

import shlex
import sys
import time

import pytest

from energytui.engine.telemetry import INTEGRATED, ExternalMeterError, ExternalMeterSource, Unavailable
from energytui.engine.telemetry.external import parse_watts

PYTHON = shlex.quote(sys.executable)


def test_a_command_printing_watts_is_a_wall_power_source():
    command = f"{PYTHON} -c 'print(42.5)'"
    source = ExternalMeterSource.probe(command, interval_s=0.5)
    assert not isinstance(source, Unavailable), source
    before = time.monotonic_ns()
    (sample,) = source.read(before)
    assert (sample.device, sample.source, sample.power_w, sample.energy_j) == ("wall", INTEGRATED, 42.5, None)
    assert before <= sample.t_ns <= time.monotonic_ns()
    assert source.poll_interval_s == 0.5 and source.update_period_s == 0.5


def test_garbage_output_names_the_command_and_what_it_printed():
    command = f"{PYTHON} -c 'print(\"hello watts\")'"
    result = ExternalMeterSource.probe(command)
    assert isinstance(result, Unavailable)
    assert command in result.reason and "'hello watts\\n'" in result.reason
    with pytest.raises(ExternalMeterError, match="printed 'hello watts"):
        ExternalMeterSource(command).read(time.monotonic_ns())


def test_failing_missing_and_slow_commands_are_clear_errors():
    failing = ExternalMeterSource.probe(f"{PYTHON} -c 'import sys; sys.exit(3)'")
    assert "exited with status 3" in failing.reason
    missing = ExternalMeterSource.probe("/nonexistent/power-meter --watts")
    assert "/nonexistent/power-meter" in missing.reason
    slow = ExternalMeterSource.probe(f"{PYTHON} -c 'import time; time.sleep(5)'", timeout_s=0.3)
    assert "did not finish within 0.3 s" in slow.reason
    unbalanced = ExternalMeterSource.probe("meter 'unclosed")
    assert isinstance(unbalanced, Unavailable)


@pytest.mark.parametrize("printed, watts", [("42.5\n", 42.5), (" 7 W\n", 7.0), ("1e2", 100.0), ("0", 0.0)])
def test_numbers_are_accepted(printed, watts):
    assert parse_watts("meter", printed) == watts


@pytest.mark.parametrize("printed", ["", "nan", "-3", "inf", "1 2", "42.5 kW"])
def test_non_watts_are_rejected(printed):
    with pytest.raises(ExternalMeterError, match="meter"):
        parse_watts("meter", printed)
