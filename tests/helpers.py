"""Small helpers shared by the CLI-level tests."""

import fcntl
import importlib.util
import os
import pty
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from contextlib import closing
from pathlib import Path

from energytui.engine import interrupts
from energytui.main import main


def load_script(path: Path, name: str):
    """A script that is not part of the package (bench/), imported as module `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(capsys, *args):
    """Run `energytui ARGS` in-process; (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def start_run(manifest, db, *options) -> subprocess.Popen:
    """The real `energytui run MANIFEST --db DB OPTIONS` in a child with default signal handling, its output
    piped as text."""
    return subprocess.Popen([sys.executable, "-m", "energytui", "run", str(manifest), "--db", str(db),
                             *map(str, options)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)


def run_sweep(folder, manifest_text: str):
    """Run a sweep manifest through `energytui run` (short idle windows) into a new database in `folder`."""
    manifest, db = folder / "sweep.yaml", folder / "sweep.db"
    manifest.write_text(manifest_text)
    assert main(["run", str(manifest), "--db", str(db), "--idle-s", "0.2"]) == 0
    return db


def first_tries(db) -> list[str]:
    """The statuses of the trials the manifest asked for, in run order ([] before the database has them): not the
    re-runs that a decode step stalled by a loaded machine adds at a run's end (engine/queue.py, retry_stalled)."""
    try:
        with closing(sqlite3.connect(db)) as conn:
            return [s for (s,) in conn.execute("SELECT status FROM trials WHERE retry_of IS NULL ORDER BY seq")]
    except sqlite3.Error:  # the runner has not created its tables yet
        return []


def reruns(db) -> list[int]:
    """The ids of the trials that stalled and were queued once more, in the order of their re-runs: what a run's
    counts of trials add to the manifest's."""
    with closing(sqlite3.connect(db)) as conn:
        return [i for (i,) in conn.execute("SELECT retry_of FROM trials WHERE retry_of IS NOT NULL ORDER BY seq")]


def default_signals() -> dict:
    """Default handling of the signals a test sends, whatever the caller's shell ignores (a non-interactive
    shell starts background jobs with SIGINT ignored, nohup SIGHUP): a child's preexec_fn, or a test in
    process, which gets the handlers it replaced back to restore them."""
    return {signum: signal.signal(signum, signal.SIG_DFL) for signum in interrupts.HANDLED}


def unstolen_clock() -> float:
    """time.monotonic() less the wall time the hypervisor gave this virtual machine's CPUs to others (steal in
    /proc/stat, averaged over the CPUs; none where the kernel counts none): a latency a test bounds is the
    program's, not the host's."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        fields = []
    steal_ticks = int(fields[8]) if len(fields) > 8 else 0
    return time.monotonic() - steal_ticks / os.sysconf("SC_CLK_TCK") / (os.cpu_count() or 1)


def read_terminal(fd: int, seconds: float) -> tuple[bytes, bool]:
    """What a pseudo-terminal's process writes to it within `seconds`, and whether it closed the terminal."""
    output, deadline = b"", time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the process closed the terminal
            return output, True
        if not chunk:
            return output, True
        output += chunk
    return output, False


def on_a_terminal(args: list, react=None, timeout: float = 240) -> tuple[int, str]:
    """`energytui ARGS` with stdin, stdout and stderr on an 80×24 pseudo-terminal and default signal handling:
    (exit code, all it wrote). `react(pid, fd, output)` runs between reads: to answer a prompt or send a signal."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on a terminal of 80 columns
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        default_signals()
        os.execv(sys.executable, [sys.executable, "-m", "energytui", *map(str, args)])
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if react is not None:
            react(pid, fd, output)
        chunk, closed = read_terminal(fd, 0.1)
        output += chunk
        if closed:
            break
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


async def until(pilot, predicate, timeout: float = 180.0) -> None:
    """Wait in the app until `predicate()` holds, failing with the app's notifications after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        notes = [str(n.message) for n in pilot.app._notifications]
        assert time.monotonic() < deadline, f"timed out waiting for the app; notifications: {notes}"
        await pilot.pause(0.1)
