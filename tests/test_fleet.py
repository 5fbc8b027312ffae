"""The fleet (app/fleet.py): a real Ray cluster on loopback, a head and two workers started by `energytui
worker` as a user starts them, one manifest run on both by `energytui run --cluster`, one worker killed
mid-run. Every node binds 127.0.0.2, so the cluster's traffic never leaves loopback."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import default_signals, reruns, run_cli
from energytui.app import fleet
from energytui.engine.errors import UserError

ENERGYTUI = [sys.executable, "-m", "energytui"]
LOOPBACK = "127.0.0.2"  # loopback, but not the 127.0.0.1 that Ray replaces with the machine's LAN address

TINY = "defaults:\n  model: {model}\nruns:\n  - id: a\n    prompt_tokens: [8]\n    max_tokens: 2\n"

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="Ray runs multi-node clusters on Linux only; 127.0.0.2 is loopback there")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    """`energytui worker ARGS` in its own process group (stopped as a group), with default signal handling."""
    def setup() -> None:
        default_signals()
        os.setsid()

    return subprocess.Popen([*ENERGYTUI, "worker", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            preexec_fn=setup, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the node's group: `ray start --block` stops its node's processes; SIGKILL if it hangs."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head that runs no trials, then workers `alpha` and `beta` (joined one at a time, as two nodes started
    at once on one machine can collide in Ray's startup); yields the head's address."""
    logs = tmp_path_factory.mktemp("fleet-logs")
    address = f"{LOOPBACK}:{_free_port()}"
    nodes = [_start(["--head", "--bind", LOOPBACK, "--port", address.rsplit(":", 1)[1], "--no-trials"],
                    logs / "head.log")]
    try:
        _wait_for_head(address)
        for count, name in enumerate(("alpha", "beta"), start=1):
            time.sleep(3)  # the previous node's startup: two starting at once on one machine can collide
            nodes.append(_start(["--join", address, "--bind", LOOPBACK, "--name", name], logs / f"{name}.log"))
            fleet.wait_for_hosts(address, count, timeout_s=90)
        yield address
    finally:
        for node in reversed(nodes):  # the workers before the head, whose GCS they would wait for
            _stop(node)


def _wait_for_head(address: str, timeout_s: float = 90) -> None:
    """Until the head's GCS answers: `worker --join` refuses an address where no head answers yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fleet.check_head_answers("--join", address)
        except UserError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _worker_pid(name: str) -> int | None:
    """The process of host `name`'s HostWorker actor (Ray titles it ray::HostWorker; its node set the name)."""
    for entry in Path("/proc").iterdir():
        try:
            if b"ray::HostWorker" not in (entry / "cmdline").read_bytes():
                continue
            if f"{fleet.NAME_ENV}={name}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except (OSError, ValueError):
            continue
    return None


def _rows(db: Path, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def _count(db: Path, sql: str) -> int:
    """While the head is still creating the database, nothing."""
    try:
        return _rows(db, sql)[0][0]
    except sqlite3.OperationalError:
        return 0


@linux_only
def test_a_fleet_runs_on_each_host_and_a_lost_worker_aborts_only_its_trial(cluster, write_manifest, model_path,
                                                                          tmp_path):
    manifest = write_manifest(f"defaults:\n  model: {model_path}\n  threads: 1\n  n_ctx: 128\nruns:\n"
                              "  - id: quick\n    prompt_tokens: [16]\n    max_tokens: 24\n    ignore_eos: true\n"
                              "    repetitions: 8\n")
    db = tmp_path / "fleet.db"
    head = subprocess.Popen([*ENERGYTUI, "run", str(manifest), "--cluster", cluster, "--db", str(db),
                             "--idle-s", "0.1", "--sample-hz", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and head.poll() is None:  # alpha has finished a trial and runs another
        if db.is_file() and _count(db, "SELECT COUNT(*) FROM trials t JOIN hosts h ON h.id = t.host_id "
                                       "WHERE h.name = 'alpha' AND t.status = 'done'") >= 1 and \
                _count(db, "SELECT COUNT(*) FROM trials t JOIN hosts h ON h.id = t.host_id "
                           "WHERE h.name = 'alpha' AND t.status = 'running'") == 1:
            break
        time.sleep(0.05)
    pid = _worker_pid("alpha")
    assert pid is not None and head.poll() is None, "alpha's worker was not found running a trial"
    os.kill(pid, signal.SIGKILL)
    out, err = head.communicate(timeout=300)

    assert head.returncode == 1, err
    assert "host alpha: its worker was lost mid-run" in err and "--resume" in err and "Traceback" not in err
    # the trials asked for: a trial stalled by a loaded machine is queued once more (FleetHead.retry), on its host
    by_host = {name: dict(_rows(db, "SELECT t.status, COUNT(*) FROM trials t JOIN hosts h ON h.id = t.host_id "
                                    "WHERE h.name = ? AND t.retry_of IS NULL GROUP BY t.status", [name]))
               for name in ("alpha", "beta")}
    assert by_host["beta"] == {"done": 8}, by_host
    alpha = by_host["alpha"]
    assert alpha.get("aborted") == 1 and alpha.get("done", 0) >= 1 and sum(alpha.values()) == 8, alpha
    assert "running" not in alpha
    (error,) = _rows(db, "SELECT error FROM trials WHERE status = 'aborted'")[0]
    assert error.startswith("fleet worker alpha lost mid-trial")
    runs = dict(_rows(db, "SELECT h.name, r.status || ': ' || COALESCE(r.ended_by, '') FROM runs r "
                          "JOIN hosts h ON h.id = r.host_id"))
    assert runs["beta"] == "done: " and runs["alpha"].startswith("interrupted: fleet worker alpha lost")
    # each host measured its own trials: samples and token timings stored with every done trial
    assert _rows(db, "SELECT COUNT(*) FROM trials t WHERE status = 'done' AND NOT EXISTS "
                     "(SELECT 1 FROM samples s WHERE s.trial_id = t.id)")[0][0] == 0
    hosts = _rows(db, "SELECT id, name FROM hosts ORDER BY name")
    assert [name for _, name in hosts] == ["alpha", "beta"] and hosts[0][0] != hosts[1][0]
    assert "alpha: [" in err and "beta: [" in err  # progress per host
    assert "host=alpha" in out and "host=beta" in out  # the summary names both

    resumed = subprocess.run([*ENERGYTUI, "run", str(manifest), "--cluster", cluster, "--db", str(db), "--resume",
                              "--idle-s", "0.1", "--sample-hz", "50"], capture_output=True, text=True,
                             timeout=300, preexec_fn=default_signals)
    assert resumed.returncode == 0, resumed.stderr
    assert "host beta: nothing to resume" in resumed.stdout
    assert dict(_rows(db, "SELECT status, COUNT(*) FROM trials GROUP BY status")) == {"done": 16 + len(reruns(db))}
    assert _rows(db, "SELECT COUNT(*) FROM runs")[0][0] == 2  # alpha's run was resumed, not a new one


@linux_only
def test_results_by_host_name(cluster, write_manifest, model_path, tmp_path, capsys):
    """A fleet's hosts are named in report, compare and advise by their readable names."""
    manifest = write_manifest(f"defaults:\n  model: {model_path}\n  threads: 1\n  n_ctx: 128\nruns:\n"
                              "  - id: quick\n    prompt_tokens: [16]\n    max_tokens: 8\n    ignore_eos: true\n"
                              "    repetitions: 2\n")
    db = tmp_path / "fleet.db"
    done = subprocess.run([*ENERGYTUI, "run", str(manifest), "--cluster", cluster, "--db", str(db), "--hosts", "beta",
                           "--idle-s", "0.1"], capture_output=True, text=True, timeout=300, preexec_fn=default_signals)
    assert done.returncode == 0, done.stderr
    assert _rows(db, "SELECT DISTINCT h.name FROM trials t JOIN hosts h ON h.id = t.host_id") == [("beta",)]
    code, out, _ = run_cli(capsys, "report", "--by", "host", "--db", db)
    assert code == 0 and "(beta)" in out
    code, _, err = run_cli(capsys, "compare", "beta", "beta", "--db", db)  # found by name: the one host
    assert code == 2 and "compare: host " in err and "(beta) against itself" in err
    code, out, err = run_cli(capsys, "advise", "--tokens", "8", "--host", "beta", "--db", db)
    assert code == 1 and "needs at least 12 done trials" in err, err  # beta's 2 trials, found by its name

    code, _, err = run_cli(capsys, "run", manifest, "--cluster", cluster, "--db", db, "--hosts", "gamma")
    assert code == 2 and err.strip() == (f"energytui: error: --hosts gamma: not in the fleet at {cluster}; its hosts: "
                                         "alpha, beta")


@pytest.mark.parametrize("args, message", [
    (["worker", "--join", "10.0.0.1:6379", "--bind", "8.8.8.8"], "--bind 8.8.8.8: 8.8.8.8 is not a private or "
                                                                 "loopback address; Ray's ports are unauthenticated"),
    (["worker", "--join", "8.8.4.4:6379", "--bind", "10.0.0.2"], "--join 8.8.4.4:6379: 8.8.4.4 is not a private"),
    (["worker", "--head", "--bind", "0.0.0.0"], "--bind 0.0.0.0: 0.0.0.0 is not a private"),
    (["worker", "--join", "[2001:4860::1]:6379", "--bind", "10.0.0.2"], "--join [2001:4860::1]:6379: 2001:4860::1 is "
                                                                        "not a private"),
    (["worker", "--join", "10.0.0.1:6379", "--bind", "10.0.0.2", "--no-trials"], "--no-trials is for a head"),
    (["worker", "--join", "127.0.0.1:1", "--bind", "127.0.0.1"], "--join 127.0.0.1:1: no Ray head answers there"),
    (["worker", "--head", "--bind", "127.0.0.1", "--port", "-1"], "--port -1: give a port from 1 to 65535"),
    (["worker", "--head", "--bind", "127.0.0.1", "--port", "99999"], "--port 99999: give a port from 1 to 65535"),
    (["worker", "--head", "--bind", "127.0.0.1", "--port", "0"], "--port 0: give a port from 1 to 65535"),
    (["worker", "--head", "--bind", ""], "--bind '': give an address"),
    (["run", "{manifest}", "--cluster", ""], "--cluster '': give an address"),
    (["worker", "--head", "--bind", "127.0.0.1", "--name", "two words"], "--name 'two words': use 1-40 letters"),
    (["worker", "--head", "--bind", "127.0.0.1", "--power-command", "/nonexistent/meter"], "/nonexistent/meter"),
    (["run", "{manifest}", "--cluster", "8.8.4.4:6379"], "--cluster 8.8.4.4:6379: 8.8.4.4 is not a "
                                                             "private"),
    (["run", "{manifest}", "--cluster", "10.0.0.1:6379", "--cpu-tdp", "65"], "--cpu-tdp describes one machine"),
    (["run", "{manifest}", "--hosts", "alpha"], "--hosts chooses among a fleet's hosts; add --cluster ADDRESS"),
])
def test_fleet_bad_input_is_one_line(args, message, write_manifest, model_path, tmp_path, capsys):
    manifest = write_manifest(TINY.format(model=model_path))
    args = [str(manifest) if a == "{manifest}" else a for a in args] + (["--db", tmp_path / "x.db"]
                                                                         if args[0] == "run" else [])
    code, out, err = run_cli(capsys, *args)
    assert code != 0 and message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "x.db").exists()  # refused before any database is created


@pytest.mark.parametrize("answer", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n", None])
def test_a_port_where_something_else_answers_is_refused_at_once(answer, write_manifest, model_path, tmp_path,
                                                                capsys, monkeypatch):
    """A web server, an SSH server, or one that never speaks (None): not a Ray head's gRPC, one line and no wait
    for Ray's own 20 s of warnings."""
    monkeypatch.setattr(fleet, "HEAD_ANSWER_S", 0.5)
    with socket.socket() as server:
        server.bind((LOOPBACK, 0))
        server.listen()
        address = f"{LOOPBACK}:{server.getsockname()[1]}"

        def serve() -> None:
            connection, _ = server.accept()
            with connection:
                if answer is not None:
                    connection.sendall(answer)
                connection.recv(64)

        threading.Thread(target=serve, daemon=True).start()
        manifest = write_manifest(TINY.format(model=model_path))
        code, _, err = run_cli(capsys, "run", manifest, "--cluster", address, "--db", tmp_path / "x.db")
    assert code == 2 and err.count("\n") == 1, err
    assert f"--cluster {address}: something else listens there, not a Ray head" in err
    assert not (tmp_path / "x.db").exists()


def test_without_ray_the_fleet_says_how_to_install_it(monkeypatch, write_manifest, model_path, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where the extra is not installed
    manifest = write_manifest(TINY.format(model=model_path))
    code, _, err = run_cli(capsys, "run", manifest, "--cluster", "127.0.0.2:6379", "--db", tmp_path / "x.db")
    assert code == 2 and "pip install 'energytui[fleet]'" in err and err.count("\n") == 1


def test_the_head_answers_only_the_runner_calls(tmp_path):
    head = fleet.FleetHead(str(tmp_path / "head.db"))
    try:
        assert head.call("trial_count", 1) == 0
        with pytest.raises(UserError, match="'remove_pending'"):
            head.call("remove_pending", 1)
    finally:
        head.close()


def test_a_host_without_the_model_gets_the_heads_copy_verified(model_path, tmp_path, monkeypatch):
    """find_models looks for the head's file by path, then in the host's models folder; a missing one is
    sent in pieces and kept only when its sha256 matches."""
    from energytui.engine.models import sha256_of

    monkeypatch.setenv("ENERGYTUI_HOME", str(tmp_path / "home"))
    worker = fleet.HostWorker.__new__(fleet.HostWorker)  # its files only: no meter or engine for this
    worker.name, worker.paths, worker.receiving = "alpha", {}, {}
    sha = sha256_of(model_path)
    elsewhere = "/nonexistent/head/" + model_path.name
    assert worker.find_models({str(model_path): sha, elsewhere: sha}) == [elsewhere]
    data = model_path.read_bytes()
    half = len(data) // 2
    worker.receive_model(elsewhere, sha, data[:half], False)
    worker.receive_model(elsewhere, sha, data[half:], True)
    kept = Path(worker.paths[elsewhere])
    assert kept.parent == tmp_path / "home" / "models" / "fleet" and sha256_of(kept) == sha
    assert worker.find_models({elsewhere: sha}) == []  # found again next time

    with pytest.raises(UserError, match="does not match its sha256"):
        worker.receive_model("/nonexistent/other.gguf", "0" * 64, b"not a model", True)
    assert not list((tmp_path / "home" / "models" / "fleet").glob("*.part"))


@linux_only
def test_the_app_follows_each_host_and_an_interrupted_head_keeps_every_finished_trial(
        cluster, write_manifest, model_path, tmp_path, quiet_meter):
    """The Live tab of an app on the head's database shows one line per host while a fleet runs; Ctrl-C on the
    head aborts each host's running trial, keeps the finished ones and closes both runs `interrupted`."""
    import asyncio

    from textual.widgets import Static

    from energytui.tui.app import create_app

    manifest = write_manifest(f"defaults:\n  model: {model_path}\n  threads: 1\n  n_ctx: 256\nruns:\n"
                              "  - id: long\n    prompt_tokens: [16]\n    max_tokens: 120\n    ignore_eos: true\n"
                              "    repetitions: 6\n")
    db = tmp_path / "fleet.db"
    app = create_app(db, None, quiet_meter)
    seen: list[str] = []

    async def scenario() -> subprocess.CompletedProcess:
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("2")
            head = subprocess.Popen([*ENERGYTUI, "run", str(manifest), "--cluster", cluster, "--db", str(db),
                                     "--idle-s", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    preexec_fn=default_signals)
            try:
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline and head.poll() is None:
                    seen.append(str(app.query_one("#live-info", Static).render()))
                    both = _count(db, "SELECT COUNT(DISTINCT run) FROM trials WHERE status = 'done'") == 2
                    if both and "alpha: run" in seen[-1] and "beta: run" in seen[-1]:
                        break
                    await pilot.pause(0.2)
                head.send_signal(signal.SIGINT)
                out, err = head.communicate(timeout=120)
            finally:
                if head.poll() is None:
                    head.kill()
            return subprocess.CompletedProcess(head.args, head.returncode, out, err)

    head = asyncio.run(scenario())
    fleet_lines = [text for text in seen if text.startswith("A fleet's run, from the database")]
    assert fleet_lines and "alpha: run" in fleet_lines[-1] and "beta: run" in fleet_lines[-1], seen[-5:]
    assert "running since" in fleet_lines[-1]

    assert head.returncode == 130, head.stderr
    assert "finished trials are kept" in head.stderr and "Traceback" not in head.stderr
    statuses = dict(_rows(db, "SELECT status, COUNT(*) FROM trials GROUP BY status"))
    assert statuses.get("done", 0) >= 2 and statuses.get("aborted") == 2 and "running" not in statuses, statuses
    assert {status for (status,) in _rows(db, "SELECT status FROM runs")} == {"interrupted"}
    reasons = {error for (error,) in _rows(db, "SELECT error FROM trials WHERE status = 'aborted'")}
    assert len(reasons) == 1 and "Ctrl-C" in reasons.pop()


class _RaysErrors:
    """A stand-in for the `ray` module's error types only: `get` raises what it is given, as ray.get raises
    what a remote call raised (wrapped in RayTaskError) or that its actor died (RayActorError)."""

    class exceptions:
        class RayTaskError(Exception):
            def __init__(self, cause):
                super().__init__(f"ray::HostWorker.find_models() (pid=1)\n  Traceback ...\n{cause!r}")
                self.cause = cause

        class RayActorError(Exception):
            pass

    @staticmethod
    def get(ref):
        raise ref


@pytest.mark.parametrize("raised, said", [
    (_RaysErrors.exceptions.RayTaskError(UserError("x.gguf: the copy sent to alpha does not match its sha256")),
     "x.gguf: the copy sent to alpha does not match its sha256"),
    (_RaysErrors.exceptions.RayTaskError(ValueError("bad")), "host alpha's worker failed: ray::HostWorker"),
    (_RaysErrors.exceptions.RayActorError("The actor died unexpectedly before finishing this task."),
     "host alpha's worker was lost: The actor died unexpectedly before finishing this task.; every trial stored is "
     "kept"),
])
def test_errors_from_a_hosts_worker_become_one_line(raised, said):
    cluster = fleet.Fleet(_RaysErrors(), None, [], 0)
    alpha = fleet.Host("alpha", None, {}, "", True, None)
    with pytest.raises(UserError) as caught:
        cluster._ask(raised, alpha)
    assert str(caught.value).startswith(said) and "\n" not in str(caught.value)
