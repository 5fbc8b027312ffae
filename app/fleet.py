"""A fleet: one manifest over many hosts on a Ray cluster, one database.

Energy is measured where the work runs, so the unit of distribution is the host. Each energytui worker is a
Ray node started by `energytui worker`, which gives it one unit of a resource named after the host
(RESOURCE_PREFIX + name) and no CPUs for anything else, so Ray places nothing but energytui there. The head
(`energytui run --cluster`) starts one HostWorker actor per selected host, holding that resource: a host never
runs two trials at once. Each worker runs its host's queue with its own meter (RAPL, NVML or the estimate),
idle windows and steady windows, exactly as `energytui run` does (engine.queue.run_queue), but its database is
a HeadStore stand-in: every read and write goes to the FleetHead actor on the head's machine, the only writer
of the SQLite file, as do the progress events that the head shows per host.

Ray is the optional extra `energytui[fleet]`; nothing here imports it until a fleet command runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from energytui.engine.errors import UserError
from energytui.engine.store import RUNNER_CALLS

RESOURCE_PREFIX = "energytui-host-"
NAME_ENV = "ENERGYTUI_FLEET_NAME"  # set by `energytui worker` for its node's processes: the host's name
METER_ENV = "ENERGYTUI_FLEET_METER"  # the worker's own meter options (its CPU's TDP, its wall meter), as JSON
MACHINE_OPTIONS = ("cpu_tdp_w", "cpu_static_share", "power_command")  # options that describe one machine
NAMESPACE = "energytui"
CHUNK = 32 * 1024 * 1024  # a model sent to a worker that lacks it goes in pieces of this size
READY_TIMEOUT_S = 120.0  # a worker's model load-free start: Ray places the actor, it opens its meter
BUSY_WAIT_S = 15.0  # a host still held by another run: how long to wait before saying so
POLL_S = 0.1  # how often the head collects progress events and finished hosts
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


def ray_module():
    try:
        import ray
    except ImportError:
        raise UserError("a fleet needs Ray, which energytui installs only on request: "
                        "pip install 'energytui[fleet]'") from None
    return ray


# --- starting a node: `energytui worker` ------------------------------------------------------------------

def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(f"--name {name!r}: use 1-40 letters, digits, '.', '_' or '-', starting with a letter or "
                        "digit")
    return name


def default_name() -> str:
    """The hostname, as a valid host name (its first label, other characters replaced)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0])[:40].strip("-.") or "host"
    return name if _NAME.match(name) else "host-" + name


def check_private(flag: str, address: str) -> str:
    """An address Ray may listen on or join: loopback or private (LAN), never public; Ray's ports and its
    dashboard have no authentication."""
    if not address.strip():
        raise UserError(f"{flag} '': give an address (the machine's LAN IP, e.g. 192.168.1.20)")
    if address.startswith("["):  # [IPv6]:port
        host = address[1:address.find("]")]
    else:
        host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            ip = ipaddress.ip_address(socket.gethostbyname(host))
        except OSError:
            raise UserError(f"{flag} {address}: cannot resolve {host!r}; give the machine's LAN IP address") from None
    if not (ip.is_loopback or ip.is_private) or ip.is_unspecified:
        raise UserError(f"{flag} {address}: {ip} is not a private or loopback address; Ray's ports are "
                        "unauthenticated, so a fleet runs only on a private network (e.g. 192.168.x.x, 10.x.x.x)")
    return address


HEAD_ANSWER_S = 3.0  # a head on the LAN answers in milliseconds; Ray's own wait for a missing one is minutes
# A Ray head's port is its GCS, a gRPC server: HTTP/2 in the clear unless RAY_USE_TLS is set. It answers HTTP/2's
# client preface (and an empty SETTINGS frame) with a SETTINGS frame of its own (RFC 9113, 3.4).
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
SETTINGS_FRAME = 4


def check_head_answers(flag: str, address: str) -> None:
    """`address` is host:PORT and a Ray head answers there, before Ray is asked to join it (Ray itself waits
    about 20 s, with warnings, on a port where some other service answers)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserError(f"{flag} {address}: give the head's address as IP:PORT (its port is 6379 unless "
                        "`energytui worker --head --port` chose another)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=HEAD_ANSWER_S) as connection:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "false", ""):
                speaks_grpc = _answers_http2(connection)
            else:
                speaks_grpc = True  # a TLS head wants a handshake first: Ray's own connection tells
    except OSError as exc:
        why = exc.strerror or f"no answer in {HEAD_ANSWER_S:g} s"
        raise UserError(f"{flag} {address}: no Ray head answers there ({why}); start it with "
                        "`energytui worker --head --bind IP`") from None
    if not speaks_grpc:
        raise UserError(f"{flag} {address}: something else listens there, not a Ray head (it does not speak "
                        "gRPC); check the port that `energytui worker --head` printed (6379 unless --port)")


def _answers_http2(connection: socket.socket) -> bool:
    """Whether the peer answers HTTP/2's preface with a SETTINGS frame (its first 9 bytes: a frame header)."""
    header = b""
    try:
        connection.sendall(HTTP2_PREFACE)
        while len(header) < 9:
            chunk = connection.recv(9 - len(header))
            if not chunk:
                break
            header += chunk
    except OSError:  # silent (a gRPC server answers at once) or hung up on the preface
        return False
    return len(header) == 9 and header[3] == SETTINGS_FRAME


def node_command(bind: str, head_port: int | None, join: str | None, name: str | None) -> list[str]:
    """The `ray start` command line of a fleet node: a head (head_port) or a node joining `join`; with a name,
    it runs energytui trials (its host resource) and nothing else (no CPUs or GPUs for other Ray work)."""
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_cli is None:
        ray_module()  # says how to install it
        raise UserError("the `ray` command is missing beside this Python; reinstall: pip install 'energytui[fleet]'")
    command = [ray_cli, "start", "--block", "--node-ip-address", bind, "--disable-usage-stats",
               "--num-cpus", "0", "--num-gpus", "0"]
    if head_port is not None:
        command += ["--head", "--port", str(head_port), "--include-dashboard", "false"]
    else:
        command += ["--address", str(join)]
    if name is not None:
        command += ["--resources", json.dumps({RESOURCE_PREFIX + name: 1})]
    return command


def start_node(bind: str, head_port: int | None, join: str | None, name: str | None, machine_options: dict) -> int:
    """Run a fleet node in the foreground until Ctrl-C; returns `ray start`'s exit code."""
    check_private("--bind", bind)
    if head_port is not None and not 1 <= head_port <= 65535:
        raise UserError(f"--port {head_port}: give a port from 1 to 65535 (Ray's own is 6379)")
    if join is not None:
        check_private("--join", join)
    if name is not None:
        check_name(name)
        _check_meter(machine_options)
    if join is not None:
        check_head_answers("--join", join)  # a mistyped address: one line now, not Ray's minutes of retries
    command = node_command(bind, head_port, join, name)
    print(_intro(bind, head_port, join, name), flush=True)
    # Ray drains a stopping node for 30 s by default; a trial cut off there is aborted anyway, so stop sooner
    env = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "5", **os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           METER_ENV: json.dumps(machine_options)}
    if name is not None:
        env[NAME_ENV] = name
    return _run_until_stopped(command, env)


def _intro(bind: str, head_port: int | None, join: str | None, name: str | None) -> str:
    """What this node is and what to do next, before Ray's own start-up log."""
    role = f"host {name!r}, runs trials" if name else "runs no trials"
    if head_port is None:
        return f"energytui fleet: joining {join} as {role}, on {bind}; Ctrl-C stops this node"
    address = f"{bind}:{head_port}"
    return (f"energytui fleet: head on {address} ({role}); add a host with `energytui worker --join {address} "
            f"--bind ITS_IP --name NAME`, run with `energytui run MANIFEST --cluster {address}`; Ctrl-C stops "
            "this node")


def _run_until_stopped(command: list[str], env: dict) -> int:
    """`ray start --block` until it ends, or until Ctrl-C, SIGTERM or SIGHUP, which it is asked to end with
    SIGTERM: it then stops its node's processes itself (a SIGKILL would leave them running)."""
    from energytui.engine import interrupts

    previous = interrupts.install()
    try:
        process = subprocess.Popen(command, env=env)
        try:
            return process.wait()
        except KeyboardInterrupt as exc:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
            return getattr(exc, "exit_code", 130)
    finally:
        interrupts.restore(previous)


def _check_meter(machine_options: dict) -> None:
    """The host's own meter options, opened once here: a named meter that cannot be read stops the worker
    before it joins, never a silent fallback in the middle of a fleet's run."""
    from energytui.engine.metering import Meter, MeterOptions

    Meter.open(MeterOptions(**machine_options)).close()


# --- the head: FleetHead, the only writer ---------------------------------------------------------------

class FleetHead:
    """The actor on the head's machine that owns the database: it queues each host's run, answers the workers'
    store calls (RUNNER_CALLS only) and keeps their progress events until the head's command collects them."""

    def __init__(self, db_path: str):
        from energytui.engine.store import Store

        self.store = Store(db_path)
        self.store.acquire_runner_lock()
        self.stale_aborted = self.store.abort_stale_running()
        self.events: list[tuple[str, Any, str | None]] = []

    def ready(self) -> int:
        return self.stale_aborted

    def call(self, method: str, *args):
        if method not in RUNNER_CALLS:
            raise UserError(f"a fleet worker asked the head for {method!r}, which it does not do")
        return getattr(self.store, method)(*args)

    def event(self, host: str, event, phase: str | None) -> None:
        self.events.append((host, event, phase))

    def drain(self) -> list:
        events, self.events = self.events, []
        return events

    def unfinished(self, manifest_sha: str, host: dict) -> dict | None:
        return self.store.unfinished_run(manifest_sha, self.store.resolve_host(host)["id"])

    def queue(self, manifest, resume: bool, host: dict) -> int:
        from energytui.engine.queue import queue_manifest

        return queue_manifest(self.store, manifest, resume, host)

    def worker_lost(self, run: int, host: str, why: str) -> int:
        """A worker that died mid-run: its running trial is aborted (resumable) and its run closed saying so."""
        running = [t for t in self.store.trials(run=run) if t["status"] == "running"]
        for trial in running:
            self.store.fail_trial(trial["id"], "aborted", f"fleet worker {host} lost mid-trial: {why}")
        self.store.finish_run(run, "interrupted", f"fleet worker {host} lost: {why}")
        return len(running)

    def close_run(self, run: int, status: str, ended_by: str | None) -> None:
        self.store.finish_run(run, status, ended_by)

    def trials(self, runs: list[int]) -> list[dict]:
        return [t for run in runs for t in self.store.trials(run=run)]

    def hosts(self) -> list[dict]:
        return self.store.hosts()

    def close(self) -> None:
        self.store.close()


# --- a worker: HostWorker runs its host's queue ------------------------------------------------------------

class HeadStore:
    """engine.store.RunnerStore for a worker: each call is answered by the head (FleetHead). Trial rows carry
    the head's model paths; the worker reads its own copy of each model (`paths`)."""

    def __init__(self, head, ray, paths: dict[str, str]):
        self.head, self.ray, self.paths = head, ray, paths

    def _ask(self, method: str, *args):
        return self.ray.get(self.head.call.remote(method, *args))

    def _local(self, row: dict | None) -> dict | None:
        if row is not None and row.get("model_path") in self.paths:
            row = {**row, "model_path": self.paths[row["model_path"]]}
        return row

    def trial_count(self, run):
        return self._ask("trial_count", run)

    def next_pending(self, run):
        return self._local(self._ask("next_pending", run))

    def mark_running(self, trial_id):
        self._ask("mark_running", trial_id)

    def trial(self, trial_id):
        return self._local(self._ask("trial", trial_id))

    def finish_trial(self, trial_id, measured, token_steps, samples=()):
        self._ask("finish_trial", trial_id, measured, token_steps, list(samples))

    def fail_trial(self, trial_id, status, error, samples=()):
        self._ask("fail_trial", trial_id, status, error, list(samples))

    def save_window(self, run, window, samples, trial_energy):
        return self._ask("save_window", run, window, list(samples), trial_energy)

    def finish_run(self, run, status, ended_by=None):
        self._ask("finish_run", run, status, ended_by)

    def retry(self, trial_id):
        self._ask("retry", trial_id)


class HostWorker:
    """The actor on one host: its meter and engine for the run's life, its trials one at a time."""

    def __init__(self, run_options: dict):
        from energytui.engine.host import describe_host
        from energytui.engine.interrupts import Abort
        from energytui.engine.metering import Meter, MeterOptions
        from energytui.engine.runner import Engine

        self.name = os.environ.get(NAME_ENV) or socket.gethostname()
        machine = json.loads(os.environ.get(METER_ENV) or "{}")
        options = MeterOptions(**{**run_options, **{k: v for k, v in machine.items() if k in MACHINE_OPTIONS}})
        self.meter = Meter.open(options)
        self.meter.start()
        self.engine = Engine()
        self.facts = describe_host(self.name)
        self.abort_event = Abort()
        self.paths: dict[str, str] = {}
        self.receiving: dict[str, Any] = {}

    def describe(self) -> dict:
        from energytui import __version__

        from energytui.engine.host import available_ram_bytes

        return {"name": self.name, "facts": self.facts, "version": __version__,
                "method": self.meter.method, "only_estimates": self.meter.only_estimates,
                "free_bytes": available_ram_bytes()}

    def find_models(self, wanted: dict[str, str]) -> list[str]:
        """Which of the head's models (head path -> sha256) this host lacks: it looks at the same path, then
        in its models folder; a file counts only with the same sha256."""
        from energytui.engine.models import sha256_of
        from energytui.engine.paths import models_dir

        missing = []
        for head_path, sha in wanted.items():
            candidates = [Path(head_path), models_dir() / Path(head_path).name, _received_path(head_path, sha)]
            found = next((p for p in candidates if p.is_file() and sha256_of(p) == sha), None)
            if found is None:
                missing.append(head_path)
            else:
                self.paths[head_path] = str(found)
        return missing

    def receive_model(self, head_path: str, sha: str, piece: bytes, last: bool) -> None:
        """A piece of a model this host lacked, kept in its models folder once whole and verified."""
        target = _received_path(head_path, sha)
        partial = target.with_name(target.name + ".part")
        if head_path not in self.receiving:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.receiving[head_path] = (partial.open("wb"), hashlib.sha256())
        handle, digest = self.receiving[head_path]
        handle.write(piece)
        digest.update(piece)
        if last:
            handle.close()
            del self.receiving[head_path]
            if digest.hexdigest() != sha:
                partial.unlink(missing_ok=True)
                raise UserError(f"{head_path}: the copy sent to {self.name} does not match its sha256")
            partial.replace(target)
            self.paths[head_path] = str(target)

    def run(self, run: int, head) -> str:
        """The host's queue, as `energytui run` runs it; returns the run's final status."""
        import ray

        from energytui.engine.queue import run_queue

        store = HeadStore(head, ray, self.paths)

        def relay(event) -> None:  # fire and forget: the head's actor keeps each caller's order
            phase = event.live.phase if event.live is not None else None
            head.event.remote(self.name, dataclasses.replace(event, live=None), phase)

        self.abort_event.clear()
        return run_queue(store, run, self.engine, relay, meter=self.meter, abort=self.abort_event)

    def abort(self, reason: str) -> None:
        self.abort_event.set(reason)

    def close(self) -> None:
        for resource in (self.engine, self.meter):
            resource.close()


def _received_path(head_path: str, sha: str) -> Path:
    from energytui.engine.paths import models_dir

    return models_dir() / "fleet" / f"{sha[:12]}-{Path(head_path).name}"


# --- the head's command: `energytui run MANIFEST --cluster ADDRESS` -----------------------------------------

@dataclass
class Host:
    """A selected host: its worker actor, its facts and, once queued, its run."""

    name: str
    actor: Any
    facts: dict
    method: str
    only_estimates: bool
    free_bytes: int | None
    run: int | None = None
    status: str | None = None


@dataclass
class Fleet:
    """A connected fleet for one manifest: the head's actor and the selected hosts' workers."""

    ray: Any
    head: Any
    hosts: list[Host]
    stale_aborted: int

    def _ask(self, ref, host: Host | None = None):
        """A call to the head's actor (or a host's worker, before its run): a UserError raised there as ours;
        the actor lost as one line (what the head wrote before is in the database)."""
        whose = f"host {host.name}'s worker" if host else "the fleet's head (the database's writer)"
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            raise UserError(str(cause)) if isinstance(cause, UserError) else UserError(
                f"{whose} failed: {_first_line(exc)}") from None
        except self.ray.exceptions.RayActorError as exc:
            raise UserError(f"{whose} was lost: {_first_line(exc)}; every trial stored is kept, start it again "
                            "(or leave the host out with --hosts) and `--resume` finishes the rest") from None

    def check(self, manifest):
        """The manifest against each host (its CPUs, its free memory for weights and KV cache) and its size:
        refuses what cannot work on a host (UserError naming it); returns an engine.limits.Verdict with every
        host's warnings, and the question to ask before a large run."""
        from energytui.engine import limits

        verdict = limits.Verdict()
        for host in self.hosts:
            try:
                found = limits.check(manifest, None, host.facts["cores"], host.free_bytes)
            except UserError as exc:
                raise UserError(f"host {host.name}: {exc}") from None
            verdict.warnings += [f"host {host.name}: {line}" for line in found.warnings]
            verdict.needs_confirmation = found.needs_confirmation and \
                f"{found.needs_confirmation.split(',')[0]} on each of {len(self.hosts)} hosts"
        return verdict

    def unfinished(self, manifest) -> dict[str, dict]:
        """Each host's unfinished earlier run of this manifest (host name -> run summary)."""
        found = {host.name: self._ask(self.head.unfinished.remote(manifest.sha256, host.facts))
                 for host in self.hosts}
        return {name: previous for name, previous in found.items() if previous}

    def queue(self, manifest, resumed: dict[str, dict] | None) -> list[Host]:
        """A new run on every host (resumed=None), or each host's unfinished run in `resumed` (from
        `unfinished`); returns the hosts with trials to run."""
        queued = []
        for host in self.hosts:
            if resumed is not None and host.name not in resumed:
                continue
            host.run = self._ask(self.head.queue.remote(manifest, resumed is not None, host.facts))
            queued.append(host)
        return queued

    def send_models(self, manifest, log: Callable[[str], object]) -> None:
        """Every host gets the manifest's models: its own copy when it has the same file, else the head's."""
        from energytui.engine.models import sha256_of

        wanted = {path: sha256_of(Path(path)) for path in sorted({t.model_path for t in manifest.trials})}
        for host in self.hosts:
            for path in self._ask(host.actor.find_models.remote(wanted), host):
                size = Path(path).stat().st_size
                log(f"host {host.name}: sending {Path(path).name} ({size / 1e6:.0f} MB), which it lacks")
                with open(path, "rb") as handle:
                    sent = 0
                    while True:
                        piece = handle.read(CHUNK)
                        sent += len(piece)
                        self._ask(host.actor.receive_model.remote(path, wanted[path], piece, sent >= size), host)
                        if sent >= size:
                            break

    def run(self, hosts: list[Host], on_event: Callable[[Any, str, str | None], object]) -> None:
        """Every host's queue at once, until all end; a worker lost mid-run aborts its trial and the others go
        on. Ctrl-C (or SIGTERM, SIGHUP) aborts every host's running trial and closes each run `interrupted`."""
        from energytui.engine import interrupts

        previous = interrupts.install() if threading.current_thread() is threading.main_thread() else {}
        pending = {host.actor.run.remote(host.run, self.head): host for host in hosts}
        try:
            while pending:
                done, _ = self.ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                self._forward(on_event)
                for ref in done:
                    self._ended(pending.pop(ref), ref)
            self._forward(on_event)
        except KeyboardInterrupt as exc:
            with interrupts.held():  # a second Ctrl-C waits until every host has stopped
                self._stop_all(pending, exc, on_event)
            raise
        finally:
            interrupts.restore(previous)

    def _ended(self, host: Host, ref) -> None:
        try:
            host.status = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:
            why = _first_line(exc)
            self._ask(self.head.worker_lost.remote(host.run, host.name, why))
            host.status = "lost"
        except self.ray.exceptions.RayTaskError as exc:  # an error in the worker: run_queue closed its run
            host.status = f"failed: {_first_line(exc)}"

    def _forward(self, on_event) -> None:
        for host, event, phase in self._ask(self.head.drain.remote()):
            on_event(event, host, phase)

    def _stop_all(self, pending: dict, exc: KeyboardInterrupt, on_event) -> None:
        from energytui.engine.interrupts import describe

        reason = describe(exc)
        for host in pending.values():
            host.actor.abort.remote(reason)
        finished, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=30)
        for ref in finished:
            self._ended(pending[ref], ref)
        for host in pending.values():
            self._ask(self.head.close_run.remote(host.run, "interrupted", reason))
        self._forward(on_event)

    def trials(self, hosts: list[Host]) -> list[dict]:
        return self._ask(self.head.trials.remote([h.run for h in hosts if h.run is not None]))

    def stored_hosts(self) -> list[dict]:
        return self._ask(self.head.hosts.remote())

    def close(self) -> None:
        for host in self.hosts:
            try:
                self.ray.get(host.actor.close.remote(), timeout=10)
            except Exception:  # a lost worker has nothing left to close
                pass
        try:
            self.ray.get(self.head.close.remote(), timeout=10)
        finally:
            self.ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return next((line.strip() for line in text if line.strip()), type(exc).__name__)


def connect(address: str, db_path: Path, run_options: dict, wanted: list[str] | None) -> Fleet:
    """Join the cluster at `address` (checked private by the caller, before it creates the database) as its
    head's command: the database's actor on this machine, a worker on each selected host (None: all), each
    ready with its meter open."""
    ray = ray_module()
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"--cluster {address}: no Ray cluster answers there ({_first_line(exc)}); start its head "
                        "with `energytui worker --head --bind IP`") from None
    try:
        names = select_hosts(address, fleet_hosts(ray), wanted)
        head = _start_head(ray, db_path)
        return Fleet(ray, head, _start_workers(ray, names, run_options), ray.get(head.ready.remote()))
    except BaseException:
        ray.shutdown()
        raise


def fleet_hosts(ray) -> list[str]:
    """The names of the live nodes that run energytui trials (their host resource)."""
    return sorted(key[len(RESOURCE_PREFIX):] for node in ray.nodes() if node.get("Alive")
                  for key in node.get("Resources", {}) if key.startswith(RESOURCE_PREFIX))


def select_hosts(address: str, available: list[str], wanted: list[str] | None) -> list[str]:
    if not available:
        raise UserError(f"--cluster {address}: no energytui worker has joined; on each host run "
                        f"`energytui worker --join {address} --bind IP --name NAME`")
    unknown = [name for name in wanted or [] if name not in available]
    if unknown:
        raise UserError(f"--hosts {','.join(unknown)}: not in the fleet at {address}; its hosts: "
                        f"{', '.join(available)}")
    return wanted or available


def _start_head(ray, db_path: Path):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    head = ray.remote(FleetHead).options(num_cpus=0, scheduling_strategy=here).remote(str(db_path))
    try:
        ray.get(head.ready.remote(), timeout=READY_TIMEOUT_S)
    except ray.exceptions.RayActorError as exc:
        raise UserError(_worker_error(exc)) from None
    return head


def _start_workers(ray, names: list[str], run_options: dict) -> list[Host]:
    """One HostWorker per host, each holding its host's resource; all are started, then awaited together."""
    from energytui import __version__

    busy = _busy(ray, names)
    deadline = time.monotonic() + BUSY_WAIT_S
    while busy and time.monotonic() < deadline:  # a run that just ended frees its hosts within moments
        time.sleep(0.5)
        busy = _busy(ray, names)
    if busy:
        raise UserError(f"host {', '.join(busy)}: busy with another energytui run on this fleet; wait for it, or "
                        "leave the host out with --hosts")
    actors = {name: ray.remote(HostWorker).options(num_cpus=0, max_concurrency=2,
                                                   resources={RESOURCE_PREFIX + name: 1}).remote(run_options)
              for name in names}
    hosts = []
    for name, actor in actors.items():
        try:
            info = ray.get(actor.describe.remote(), timeout=READY_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise UserError(f"host {name}: its worker did not start within {READY_TIMEOUT_S:.0f} s (another "
                            "energytui run may hold it); try again when it is free, or leave it out with --hosts")
        except ray.exceptions.RayActorError as exc:
            raise UserError(f"host {name}: its worker could not start: {_worker_error(exc)}") from None
        if info["version"] != __version__:
            raise UserError(f"host {name}: energytui {info['version']} there, {__version__} here; install the same "
                            "version on every host")
        hosts.append(Host(name, actor, info["facts"], info["method"], info["only_estimates"],
                          info["free_bytes"]))
    return hosts


def _busy(ray, names: list[str]) -> list[str]:
    free = ray.available_resources()
    return [name for name in names if free.get(RESOURCE_PREFIX + name, 0) < 1]


def _worker_error(exc: BaseException) -> str:
    """The one line a worker's failed start comes down to (its UserError's text, when it raised one)."""
    text = str(exc)
    found = re.findall(r"UserError: (.+)", text)
    return found[-1].strip() if found else _first_line(exc)


def wait_for_hosts(address: str, count: int, timeout_s: float) -> list[str]:
    """For tests and scripts: the fleet's host names once `count` have joined (or a UserError)."""
    ray = ray_module()
    ray.init(address=address, namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            names = fleet_hosts(ray)
            if len(names) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        ray.shutdown()
    if len(names) < count:
        raise UserError(f"--cluster {address}: {len(names)} of {count} workers joined within {timeout_s:.0f} s")
    return names


__all__ = ["Fleet", "FleetHead", "Host", "HostWorker", "check_name", "check_private", "connect", "default_name",
           "start_node", "wait_for_hosts"]
