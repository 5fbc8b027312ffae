"""Wall power from an external meter: a user command that prints watts on stdout.

The command is split with shlex (no shell) and run once per read, with a
timeout. Each reading is one power value; energy comes from integrating them
(source tag "integrated", device "wall"). Because a process start costs
milliseconds, the sampler polls it on its own thread every `interval_s`.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import time

from ..errors import UserError
from .base import INTEGRATED, WALL_DEVICE, Sample, Unavailable

DEFAULT_INTERVAL_S = 1.0
DEFAULT_TIMEOUT_S = 5.0
_WATTS = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*[Ww]?\s*$")


class ExternalMeterError(UserError):
    """The meter command failed or printed something that is not a number of watts."""


def parse_watts(command: str, stdout: str) -> float:
    """The watts printed by `command` ("42.5" or "42.5 W"), else ExternalMeterError quoting it."""
    match = _WATTS.match(stdout)
    watts = float(match.group(1)) if match else math.nan
    if not math.isfinite(watts) or watts < 0:
        raise ExternalMeterError(
            f"power meter command `{command}` printed {stdout[:200]!r}; "
            "expected one non-negative number of watts such as '42.5'"
        )
    return watts


def run_meter(command: str, argv: list[str], timeout_s: float) -> float:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except OSError as error:  # not found, not executable
        raise ExternalMeterError(f"power meter command `{command}`: {error.strerror or error}: {argv[0]!r}") from error
    except subprocess.TimeoutExpired as error:
        raise ExternalMeterError(f"power meter command `{command}` did not finish within {timeout_s:g} s") from error
    if done.returncode != 0:
        raise ExternalMeterError(
            f"power meter command `{command}` exited with status {done.returncode}: {done.stderr.strip()[:200]!r}"
        )
    return parse_watts(command, done.stdout)


class ExternalMeterSource:
    """Whole-machine power from a user command (device "wall", source "integrated")."""

    name = "external"
    devices = (WALL_DEVICE,)
    source = INTEGRATED

    def __init__(self, command: str, interval_s: float = DEFAULT_INTERVAL_S, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.command = command
        self._argv = shlex.split(command)
        if not self._argv:
            raise ExternalMeterError("the power meter command is empty")
        self.timeout_s = timeout_s
        self.poll_interval_s = interval_s
        self.update_period_s = interval_s  # one value per poll: nothing shorter can be resolved
        self.method = f"integrated: watts printed by `{command}` every {interval_s:g} s, integrated over time"

    @classmethod
    def probe(cls, command: str, *, interval_s: float = DEFAULT_INTERVAL_S,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> "ExternalMeterSource | Unavailable":
        """Run the command once; its error message becomes the Unavailable reason."""
        try:
            source = cls(command, interval_s, timeout_s)
            source.read(time.monotonic_ns())
        except (ExternalMeterError, ValueError) as error:  # ValueError: shlex on unbalanced quotes
            return Unavailable("external", str(error), "fix the power meter command (it must print watts, e.g. 42.5)")
        return source

    def read(self, t_ns: int) -> list[Sample]:
        watts = run_meter(self.command, self._argv, self.timeout_s)
        # The meter measured somewhere during the run: take the midpoint.
        midpoint_ns = (t_ns + time.monotonic_ns()) // 2
        return [Sample(midpoint_ns, WALL_DEVICE, INTEGRATED, watts, None)]

    def close(self) -> None:
        pass
