"""The `energytui` command line. Text for people on stdout, errors on stderr as one line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from energytui import __version__
from energytui.app import UserError, default_db_path, describe_interruption


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        args.handler = _cmd_tui
    try:
        return args.handler(args) or 0
    except UserError as exc:
        print(f"energytui: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP during `run` (app/runs.py)
        print(f"\nenergytui: {describe_interruption(exc)}; finished trials are kept", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a path the system refuses (a name too long, an unreadable file) that no check named
        if exc.filename is None:
            raise
        print(f"energytui: error: {exc.filename}: {exc.strerror or exc}; check the path", file=sys.stderr)
        return 2


class _Parser(argparse.ArgumentParser):
    """argparse with the house's one-line errors (no usage block): the value, and where to read more."""

    def error(self, message: str):
        if message.endswith("expected one argument"):  # `--budget -5W`: argparse takes -5W for an option
            message += " (a value that starts with '-' is written --option=VALUE)"
        self.exit(2, f"energytui: error: {self.prog}: {message}; see `{self.prog} --help`\n")


def _default_db_hint() -> str:
    """The default database for --help; a bad $ENERGYTUI_HOME is shown as given (a command says what is wrong)."""
    try:
        return str(default_db_path())
    except UserError:
        return os.environ.get("ENERGYTUI_DB") or os.path.join(os.environ.get("ENERGYTUI_HOME", ""), "energytui.db")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="energytui", description="Measure what running a small LLM costs in "
                                     "time and joules, and how to run it better. With no command: the app.")
    parser.add_argument("--version", action="version", version=f"energytui {__version__}")
    parser.add_argument("--db", type=Path, default=None, help="database for the app (with no command)")
    parser.add_argument("--manifest", type=Path, default=None, help="manifest to show in the app's Queue")
    sub = parser.add_subparsers(metavar="COMMAND")
    db_parent = _Parser(add_help=False)
    db_parent.add_argument("--db", type=Path, default=None,
                           help=f"SQLite database (default: $ENERGYTUI_DB or {_default_db_hint()})")

    run = sub.add_parser("run", parents=[db_parent], help="validate, queue and run a manifest's trials")
    run.add_argument("manifest", type=Path)
    choice = run.add_mutually_exclusive_group()
    choice.add_argument("--resume", action="store_true", help="finish the unfinished earlier run of this manifest")
    choice.add_argument("--fresh", action="store_true", help="start over even if an earlier run is unfinished")
    run.add_argument("--format", choices=("table", "md", "csv", "json"), default="table",
                     help="the summary after the run: a table fitted to the terminal (default), or as `report` "
                          "writes it")
    _add_columns_option(run, "the summary's", "; the first starts every table where the summary folds to fit "
                                               "the terminal")
    run.add_argument("--yes", action="store_true",
                     help=f"queue a run of more than {1000} trials without asking (needed without a terminal)")
    run.add_argument("--skip-gpu", action="store_true", help="leave out gpu and hybrid runs (for a CPU-only llama.cpp)")
    _add_meter_options(run)
    run.add_argument("--cluster", metavar="ADDRESS", default=None,
                     help="run on a fleet: the address (IP:PORT) of a Ray cluster's head started with `energytui "
                          "worker --head`; every selected host runs the manifest, the results come to --db here")
    run.add_argument("--hosts", default="all", metavar="all|NAME,...",
                     help="with --cluster: which hosts run the manifest (default: every worker that joined)")
    run.add_argument("--sample-hz", type=float, default=100.0,
                     help="measured power sources' sampling rate (default: %(default)g; the CPU estimate is read at "
                          "every window's edge and 10 times a second)")
    run.add_argument("--idle-s", type=float, default=0.5,
                     help="idle window measured before each trial, for idle power (default: %(default)g)")
    run.add_argument("--window", choices=("auto", "trial", "steady"), default=None,
                     help="measure energy over each trial's own windows (trial), or per configuration over a "
                          "steady-state window of its requests back to back (steady: for a power source that "
                          "updates slower than a trial lasts, such as a wall meter); default: as each run of "
                          "the manifest says (`window:`), auto: steady where a power source is that slow")
    run.add_argument("--min-window", default=None, metavar="SECONDS",
                     help="a steady window's length, e.g. 5s or 10 (default: 5 update periods of the "
                          "slowest power source, at least 1 s)")
    run.set_defaults(handler=_cmd_run)

    export = sub.add_parser("export", parents=[db_parent], help="one record per trial, as CSV or JSON")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    export.set_defaults(handler=_cmd_export)

    importer = sub.add_parser("import", parents=[db_parent], help="trials measured elsewhere, from CSV logs")
    importer.add_argument("log", type=Path, help="CSV: timestamp,run_id,backend,prompt_id,prompt_template,"
                          "prompt_length_chars,latency_ms,tokens_generated,energy_joules,notes")
    importer.add_argument("--map", type=Path, required=True, help="YAML: host, model and run id → configuration "
                          "(see config/imports/example-map.yaml)")
    importer.add_argument("--power-log", type=Path, help="companion CSV: timestamp,backend,energy_joules,notes")
    importer.add_argument("--again", action="store_true", help="import a log that was imported before once more")
    importer.set_defaults(handler=_cmd_import)

    report = sub.add_parser("report", parents=[db_parent],
                            help="mean ± stddev per configuration, backend or host, with EDP and the best by each")
    report.add_argument("--by", choices=("config", "backend", "host"), default="config",
                        help="one row per configuration (default), per backend of each host, or per host")
    report.add_argument("--format", choices=("md", "csv", "json"), default="md")
    _add_columns_option(report, "the markdown table's")
    report.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    report.set_defaults(handler=_cmd_report)

    compare = sub.add_parser("compare", parents=[db_parent],
                             help="two runs, hosts or run ids side by side: means, stddevs and B/A per configuration")
    compare.add_argument("a", help="A: a run number, a host id or a run id (`energytui report` lists them)")
    compare.add_argument("b", help="B: the same kinds as A")
    compare.add_argument("--format", choices=("md", "csv", "json"), default="md")
    compare.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    compare.set_defaults(handler=_cmd_compare)

    models = sub.add_parser("models", help="fetch, list and requantize models")
    models_sub = models.add_subparsers(metavar="ACTION")
    fetch = models_sub.add_parser("fetch", help="download and verify a registry model (default: the default model)")
    fetch.add_argument("name", nargs="?")
    fetch.set_defaults(handler=_cmd_models_fetch)
    listing = models_sub.add_parser("list", help="registry and local models, with quant, bits per weight, size")
    listing.set_defaults(handler=_cmd_models_list)
    ladder = models_sub.add_parser("ladder", help="write requantized variants with llama.cpp's quantize API")
    ladder.add_argument("model", nargs="?", help="registry name or .gguf path (default: the default model)")
    ladder.add_argument("--quants", default="Q4_0,Q5_1,Q8_0,F16", help="comma list (default: %(default)s)")
    ladder.add_argument("--threads", type=int, default=None)
    ladder.set_defaults(handler=_cmd_models_ladder)
    models.set_defaults(handler=lambda _args: models.print_help())

    advise = sub.add_parser("advise", parents=[db_parent],
                            help="recommend a configuration for a workload and a power budget")
    advise.add_argument("--tokens", type=int, help="tokens to generate per request")
    advise.add_argument("--prompt-tokens", type=int, default=128, help="prompt length (default: %(default)s)")
    advise.add_argument("--batch", type=int, default=None, help="requests decoded together (default: as measured)")
    advise.add_argument("--budget", default=None, help="average power limit, e.g. 50W, 50, 0.05kW (default: none)")
    advise.add_argument("--latency", default=None, help="latency limit per request, e.g. 5s or 500ms")
    advise.add_argument("--objective", default="energy", choices=("energy", "edp", "latency"))
    advise.add_argument("--model", default=None,
                        help="only this model (name or quant), or a registry name / GGUF path never run here (what-if)")
    advise.add_argument("--threads", type=int, default=None, help="CPU threads (default: as measured)")
    advise.add_argument("--quant", default=None,
                        help="also rungs of the quantization ladder not measured, e.g. Q8_0,F16 (what-if)")
    advise.add_argument("--hardware", default=None,
                        help="a device from config/hardware.yaml, e.g. rtx-3060-12gb (what-if: spec prior only); "
                             "`list` shows them")
    advise.add_argument("--host", default=None,
                        help="advise for another host's trials (its id or name, from `energytui report`), or `all`: "
                             "each host's answer and the best host")
    advise.add_argument("--json", action="store_true", help="the same content as JSON")
    advise.add_argument("--fit", action="store_true", help="refit even if the data did not change")
    advise.add_argument("--explain", action="store_true", help="held-out error per target and the data learned from")
    advise.set_defaults(handler=_cmd_advise)

    worker = sub.add_parser("worker", help="make this machine a fleet host (a Ray node) for `run --cluster`; "
                                           "runs until Ctrl-C")
    role = worker.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start the fleet's head here (and run trials here too, "
                                                          "unless --no-trials)")
    role.add_argument("--join", metavar="ADDRESS", help="join the fleet whose head is at ADDRESS (IP:PORT)")
    worker.add_argument("--bind", required=True, metavar="IP",
                        help="this machine's private (LAN) or loopback address, where Ray listens; never a public "
                             "one: Ray's ports are unauthenticated")
    worker.add_argument("--port", type=int, default=6379, help="with --head: the cluster's port (default: "
                                                               "%(default)s)")
    worker.add_argument("--name", default=None, help="this host's readable name in results (default: its hostname)")
    worker.add_argument("--no-trials", action="store_true", help="with --head: coordinate only, run no trials here")
    _add_meter_options(worker)
    worker.set_defaults(handler=_cmd_worker)

    doctor = sub.add_parser("doctor", help="what this machine and its llama.cpp can run and measure")
    _add_meter_options(doctor)
    doctor.set_defaults(handler=_cmd_doctor)
    return parser


def _add_columns_option(parser: argparse.ArgumentParser, whose: str, more: str = "") -> None:
    parser.add_argument("--columns", type=_column_list, metavar="NAMES",
                        help=f"{whose} columns, in this order: their headers, comma-separated, any case (e.g. "
                             f"'configuration,decode tok/s,J/token'; a wrong name lists them all){more}")


def _column_list(text: str) -> list[int]:
    """--columns: positions of the named columns (engine.report.column_positions)."""
    from energytui.app.views import column_positions  # here: the module is slow to import for every command

    try:
        return column_positions([name.strip() for name in text.split(",") if name.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_columns_format(args) -> None:
    if args.columns is not None and args.format in ("csv", "json"):
        raise UserError(f"--columns chooses a table's columns; --format {args.format} writes every field "
                        "(drop --columns, or choose --format md)")


def _add_meter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpu-tdp", type=float, default=None, metavar="W",
                        help="your CPU's TDP in watts, for the CPU estimate where no RAPL counter can be read")
    parser.add_argument("--cpu-static-share", type=_share, default=None, metavar="SHARE",
                        help="the CPU estimate's static power (uncore, leakage: drawn whatever the load, so its idle "
                             "power) as a share of TDP, e.g. 0.3 or 30%% (default: config/cpu_tdp.yaml's for this CPU "
                             "or its class)")
    parser.add_argument("--power-command", default=None, metavar="CMD",
                        help="a command that prints the whole system's watts (smart plug, wall meter)")


def _share(text: str) -> float:
    """--cpu-static-share: '0.3' or '30%' → 0.3 (its range is checked with the other meter options)."""
    number = text.strip().removesuffix("%")
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share; write e.g. 0.3 or 30%") from None
    return (value / 100 if text.strip().endswith("%") else value) + 0.0  # + 0.0: -0 prints as 0


def _meter_options(args):
    from energytui.app.machine import MeterOptions, parse_seconds

    window = getattr(args, "min_window", None)
    return MeterOptions(rate_hz=getattr(args, "sample_hz", 100.0), idle_s=getattr(args, "idle_s", 0.5),
                        cpu_tdp_w=args.cpu_tdp, cpu_static_share=args.cpu_static_share,
                        power_command=args.power_command, window=getattr(args, "window", None),
                        min_window_s=parse_seconds("--min-window", window) if window is not None else None)


def _cmd_tui(args) -> int:
    """The app; its exit code as `run`'s: 130, 143 or 129 after SIGINT, SIGTERM or SIGHUP, 1 after a crash
    (each having stopped the app's run and closed its row first)."""
    import gc

    from energytui.tui.app import create_app

    app = create_app(_db_path(args, for_writing=True), args.manifest)
    app.run()
    gc.freeze()  # nothing left to free: the final collection over the app's heap took 0.4-0.8 s of the exit
    if app.database_error:  # the app opens the database once its first screen is painted
        raise app.database_error
    try:
        for line in app.farewell:  # how the runs it stopped or left ended
            print(line, file=sys.stderr)
    except OSError:  # the terminal is gone (SIGHUP): the database says it all
        pass
    return app.exit_status


def _db_path(args, for_writing: bool = False) -> Path:
    from energytui.app.queries import db_path

    return db_path(args.db, for_writing)


def _read_only(args):
    """The database of a command that only reads it: opened read-only, never creating a file."""
    from energytui.app.queries import database

    return database(_db_path(args), read_only=True)


def _cmd_run(args) -> int:
    from energytui.app import runs

    from .progress import for_stream
    from .tables import wrap

    _check_columns_format(args)
    options = _meter_options(args)
    options.check()
    manifest = runs.load_manifest(args.manifest, skip_gpu=args.skip_gpu)
    for run_id in manifest.skipped_runs:
        print(f"skipped the gpu/hybrid configurations of run {run_id!r} (--skip-gpu)")
    if not manifest.trials:
        raise UserError(f"{args.manifest}: no trials to run after --skip-gpu; add cpu runs")
    path = _db_path(args, for_writing=True)
    if args.cluster is not None:  # checked against each host once connected
        return _run_fleet(args, manifest, path, options)
    if args.hosts != "all":
        raise UserError("--hosts chooses among a fleet's hosts; add --cluster ADDRESS")
    _check_limits(args, runs.plan(manifest, path, options.idle_s))
    with runs.running(path, options) as live:
        if live.stale_aborted:
            print(f"marked {live.stale_aborted} trial(s) left running by a stopped process as aborted")
        edited = live.unfinished_earlier_version(manifest)
        if args.resume and edited:
            raise UserError(f"{args.manifest}: nothing to resume of this version: run {edited['id']} of it is "
                            f"unfinished ({edited['left']} of {edited['total']} trials left) but the file changed "
                            "since; restore it to resume that run, or drop --resume to start a new one", 1)
        if args.resume and not live.can_resume(manifest):
            raise UserError(f"{args.manifest}: nothing to resume (no unfinished run of this manifest in "
                            f"{live.store.path}); drop --resume to start a new run", 1)
        if edited:
            print(wrap(f"run {edited['id']} of an earlier version of {args.manifest} stays unfinished "
                       f"({edited['left']} of {edited['total']} trials left); this version starts a new run"))
        resume = True if args.resume else False if args.fresh else None
        try:
            run = live.queue(manifest, resume)
        except runs.ResumeAvailable as offer:
            if not sys.stdin.isatty():
                raise
            run = live.queue(manifest, _ask_resume(offer))
        print(wrap(f"run {run}: {len(manifest.trials)} trials from {args.manifest} → {live.store.path}"))
        for line in live.meter.method.splitlines():
            print(wrap(f"energy: {line}"))
        if live.meter.only_estimates:
            print(wrap("energy: no power counter can be read here: every energy figure of this run is an "
                       "ESTIMATE (`energytui doctor` says why and what would fix it)"))
        progress = for_stream(sys.stderr)
        try:
            live.run(run, progress.on_event)
        finally:
            progress.close()
            trials = live.trials(run)
            _print_summary(args.format, trials, live.store.hosts(), args.columns)
    short = sum(t.get("stop_reason") == "n_ctx" for t in trials)
    if short:
        print(f"{short} trial(s) stopped at n_ctx before max_tokens (stop_reason n_ctx in `export`)",
              file=sys.stderr)
    failed = sum(t["status"] == "failed" for t in trials)
    if failed:
        print(f"{failed} trial(s) failed; `energytui report` lists why", file=sys.stderr)
    return 1 if failed == len(trials) else 0


def _run_fleet(args, manifest, path: Path, options) -> int:
    """`run --cluster`: every selected host runs the manifest with its own meter; this process's database
    keeps everything (app/fleet.py)."""
    from energytui.app import fleet
    from energytui.app.queries import database

    from .progress import fleet_progress
    from .tables import wrap

    machine = [flag for flag, value in (("--cpu-tdp", args.cpu_tdp), ("--cpu-static-share", args.cpu_static_share),
                                        ("--power-command", args.power_command)) if value is not None]
    if machine:
        raise UserError(f"{machine[0]} describes one machine: give it to `energytui worker` on that host, not to "
                        "a fleet's run")
    fleet.check_private("--cluster", args.cluster)  # before the database is created
    fleet.ray_module()  # without the fleet extra, how to install it comes first
    fleet.check_head_answers("--cluster", args.cluster)
    with database(path):  # created and checked here, before any host starts
        pass
    wanted = None if args.hosts == "all" else [name.strip() for name in args.hosts.split(",") if name.strip()]
    run_options = {"rate_hz": options.rate_hz, "idle_s": options.idle_s, "window": options.window,
                   "min_window_s": options.min_window_s}
    cluster = fleet.connect(args.cluster, path, run_options, wanted)
    try:
        if cluster.stale_aborted:
            print(f"marked {cluster.stale_aborted} trial(s) left running by a stopped process as aborted")
        _check_limits(args, cluster.check(manifest))
        resumed = _fleet_resumed(args, cluster, manifest)
        cluster.send_models(manifest, print)
        hosts = cluster.queue(manifest, resumed)
        for host in cluster.hosts:
            if host not in hosts:
                print(wrap(f"host {host.name}: nothing to resume (its run of this manifest is finished)"))
        for host in hosts:
            print(wrap(f"host {host.name}: run {host.run}: {len(manifest.trials)} trials from {args.manifest} → "
                       f"{path}"))
            print(wrap(f"host {host.name}: energy: {host.method.splitlines()[0]}" +
                       (" (every energy figure from this host is an ESTIMATE)" if host.only_estimates else "")))
        progress = fleet_progress(sys.stderr, [host.name for host in hosts])
        try:
            cluster.run(hosts, progress.on_event)
        finally:
            progress.close()
            trials = cluster.trials(hosts)
            _print_summary(args.format, trials, cluster.stored_hosts(), args.columns)
    finally:
        cluster.close()
    for host in hosts:
        if host.status == "lost":
            print(f"host {host.name}: its worker was lost mid-run; its running trial is aborted, the rest wait: "
                  f"`energytui run {args.manifest} --cluster {args.cluster} --resume` finishes them", file=sys.stderr)
    failed = sum(t["status"] == "failed" for t in trials)
    if failed:
        print(f"{failed} trial(s) failed; `energytui report` lists why", file=sys.stderr)
    lost = any(host.status == "lost" for host in hosts)
    return 1 if lost or (trials and failed == len(trials)) else 0


def _fleet_resumed(args, cluster, manifest) -> dict[str, dict] | None:
    """The hosts' unfinished runs to resume (--resume, or yes on a terminal), or None for new runs (--fresh, or
    nothing to resume)."""
    if args.fresh:
        return None
    unfinished = cluster.unfinished(manifest)
    listed = ", ".join(f"{name} (run {p['id']}: {p['done']} of {p['total']} done)" for name, p in unfinished.items())
    if args.resume:
        if not unfinished:
            raise UserError(f"{args.manifest}: nothing to resume (no host has an unfinished run of this manifest); "
                            "drop --resume to start a new run", 1)
        return unfinished
    if not unfinished:
        return None
    if not sys.stdin.isatty():
        raise UserError(f"{args.manifest}: earlier runs of this manifest are unfinished on {listed}; add --resume "
                        "to finish them or --fresh to start over", 2)
    return unfinished if _resume_or_fresh(f"unfinished on {listed}. Resume? [Y]es / [f]resh runs / [q]uit: ") else None


def _cmd_worker(args) -> int:
    from energytui.app import fleet

    if args.no_trials and not args.head:
        raise UserError("--no-trials is for a head that only coordinates; a joining host is there to run trials")
    options = _meter_options(args)
    options.check()
    machine = {"cpu_tdp_w": options.cpu_tdp_w, "cpu_static_share": options.cpu_static_share,
               "power_command": options.power_command}
    name = None if args.no_trials else (fleet.default_name() if args.name is None else args.name)
    return fleet.start_node(args.bind, args.port if args.head else None, args.join, name, machine)


def _print_summary(fmt: str, trials: list[dict], hosts: list[dict], columns: list[int] | None = None) -> None:
    """The run's configurations: a table fitted to the terminal, or as `report` writes them; `columns`:
    which of the table's columns, in order."""
    from energytui.app.views import energy_legend, report_text, select_columns, summarise, table_cells

    from .tables import fold, wrap

    if fmt != "table":
        print(report_text(trials, hosts, "config", fmt, columns), end="")
        return
    headers, body, caption = table_cells(summarise(trials), compact=True)
    print(fold(*select_columns(headers, body, columns), styled=sys.stdout.isatty()))
    if caption:
        print(wrap(caption))
    print("\n" + wrap("\n".join(energy_legend(trials))))


def _check_limits(args, verdict) -> None:
    """Warn about what is wasteful; a large run is confirmed on a terminal or needs --yes."""
    for line in verdict.warnings:
        print(f"energytui: warning: {line}", file=sys.stderr)
    if verdict.needs_confirmation and not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"{verdict.needs_confirmation}; add --yes to queue a run this large")
        answer = input(f"{verdict.needs_confirmation}. Queue it? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise UserError("nothing queued", 1)


def _ask_resume(offer) -> bool:
    """On a terminal, offer to resume an unfinished earlier run of the same manifest."""
    previous = offer.previous
    return _resume_or_fresh(f"run {previous['id']} of this manifest ({previous['created_at']}) has {previous['done']} "
                            f"of {previous['total']} trials done. Resume it? [Y]es / [f]resh run / [q]uit: ")


def _resume_or_fresh(question: str) -> bool:
    """The answer to a resume question on a terminal: True resume, False fresh; quitting runs nothing."""
    answer = input(question).strip().lower()
    if answer in ("", "y", "yes"):
        return True
    if answer in ("f", "fresh"):
        return False
    raise UserError("nothing run; add --resume or --fresh next time to choose without being asked", 1)


def _cmd_export(args) -> None:
    from energytui.app import queries

    with _read_only(args) as store:
        _write(args, lambda: queries.export(store, args.format))


def _cmd_import(args) -> None:
    from energytui.app.queries import database, import_logs

    with database(_db_path(args, for_writing=True)) as store:
        result = import_logs(store, args.log, args.map, args.power_log, again=args.again)
    for line in result.skipped:
        print(f"energytui: skipped {args.log}: {line}", file=sys.stderr)
    print(f"imported {result.trials} trials ({result.with_energy} with energy) from {args.log} as run {result.run}, "
          f"host {result.host_id}; they are marked imported, with their caveats")
    print(f"advise for that host: energytui advise --host {result.host_id} --tokens 256 --budget 50W")


def _cmd_report(args) -> None:
    from energytui.app import queries

    _check_columns_format(args)
    with _read_only(args) as store:
        _write(args, lambda: queries.report(store, args.by, args.format, args.columns))


def _cmd_compare(args) -> None:
    from energytui.app import queries

    with _read_only(args) as store:
        _write(args, lambda: queries.compare_text(store, args.a, args.b, args.format))


def _write(args, produce: Callable[[], str]) -> None:
    """The text `produce` makes, to stdout or --output (checked before the text is made)."""
    output: Path | None = args.output
    if output is None:
        sys.stdout.write(produce())
        return
    from energytui.app.queries import refuse_to_overwrite_a_database

    refuse_to_overwrite_a_database(output, Path(_db_path(args)))
    text = produce()
    try:
        output.write_text(text)
    except OSError as exc:
        raise UserError(f"--output {output}: cannot write ({exc.strerror}); choose another path") from None
    print(f"wrote {output}")


def _cmd_models_fetch(args) -> None:
    from energytui.app.machine import fetch

    fetch(args.name)


def _cmd_models_list(args) -> None:
    from energytui.app.machine import list_models

    rows = list_models()
    headers = ("name", "quant", "bits/w", "params", "layers", "size MB", "present", "path / note")
    table = []
    for row in rows:
        info = row.info
        table.append((
            row.name, info.quant if info else "–", f"{info.bits_per_weight:.2f}" if info else "–",
            f"{info.n_params / 1e6:.0f}M" if info else "–", str(info.n_layers) if info else "–",
            f"{info.size / 1e6:.1f}" if info else "–", "yes" if row.present else "no",
            f"{row.path}" + (f"  ({row.note})" if row.note else ""),
        ))
    widths = [max(len(x) for x in column) for column in zip(headers, *table)]
    for line in (headers, *table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def _cmd_models_ladder(args) -> None:
    from energytui.app.machine import MAX_THREADS, default_model_name, ladder

    quants = [q.strip() for q in args.quants.split(",") if q.strip()]
    if not quants:
        raise UserError(f"--quants {args.quants!r}: name at least one quantization, e.g. Q4_0,Q8_0")
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise UserError(f"--threads {args.threads}: give a whole number from 1 to {MAX_THREADS}")
    ladder(args.model or default_model_name(), quants, args.threads)


def _cmd_advise(args) -> int:
    from energytui.advisor.recommend import Request, advise, parse_duration, parse_power, render, to_json
    from energytui.advisor.service import (check_host, current_fit, explain, has_gpu_trials, local_host_id,
                                           what_if_models)

    if args.hardware == "list":
        from energytui.advisor.hardware import table_text

        print(table_text())
        return 0
    if args.tokens is None and not (args.fit or args.explain):
        raise UserError("advise: give --tokens N (tokens to generate per request), or --fit / --explain")
    budget = parse_power(args.budget) if args.budget is not None else None
    latency = parse_duration(args.latency) if args.latency is not None else None
    request = Request(gen_tokens=1 if args.tokens is None else args.tokens, prompt_tokens=args.prompt_tokens,
                      budget_w=budget, latency_s=latency, objective=args.objective, batch=args.batch,
                      threads=args.threads, model=args.model,
                      quants=[q.strip().upper() for q in (args.quant or "").split(",") if q.strip()],
                      hardware=args.hardware)
    request.check()  # before the database is opened: bad values fail fast
    if args.host is not None and not args.host.strip():
        raise UserError("--host '': empty; give a host id or name from `energytui report`, or `all`")
    if args.host == "all":
        return _advise_all_hosts(args, request)
    with _read_only(args) as store:
        host = check_host(store, args.host) if args.host else local_host_id(store)
        fit, refitted = current_fit(store, host, refit=args.fit)
        if args.explain or (args.fit and args.tokens is None):
            summary, details = explain(fit).split("\n", 1)
            print(("refitted: " if refitted else "cached fit (data unchanged): ") + summary)
            if args.explain:
                print(details)
            if args.tokens is None:
                return 0
        result = advise(fit, request, has_gpu_trials(store, host), what_if_models(args.model, fit))
    print(to_json(result) if args.json else render(result))
    return 0 if result.recommendation else 4


def _advise_all_hosts(args, request) -> int:
    """`advise --host all`: each host's answer from its own calibration, then the best host."""
    from energytui.advisor.across import advise_hosts, hosts_json, render_hosts

    if args.tokens is None or args.explain:
        raise UserError("advise --host all answers a request: give --tokens N (and --explain one host at a time)")
    with _read_only(args) as store:
        answers = advise_hosts(store, request, refit=args.fit)
    print(hosts_json(answers, args.objective) if args.json else render_hosts(answers, args.objective))
    return 0 if any(a.advice is not None and a.advice.recommendation for a in answers) else 4


def _period_text(ms: float) -> str:
    return f"{ms:.3g} ms" if ms < 1000 else f"{ms / 1e3:.3g} s"


def _cmd_doctor(args) -> int:
    from energytui.app import machine

    described = machine.describe(_meter_options(args))
    host, report = described.host, described.power
    print(f"host        {host['hostname']}: {host['cpu']}, {host['cores']} CPUs, {host['ram_gb']} GiB RAM")
    print(f"os          {host['os']}, Python {host['python']}")
    gpu = f"{host['gpu']}, driver {host['gpu_driver']}" if host["gpu"] else "no NVIDIA GPU visible through NVML"
    print(f"gpu         {gpu}")
    print(f"llama.cpp   llama-cpp-python {host['llama_cpp']}; GPU offload: "
          f"{'yes' if host['gpu_offload'] else 'no (CPU-only build: gpu and hybrid trials are refused)'}")
    print(f"features    {described.features}")
    print(f"weights     {described.weights}")
    print(f"decode loop {described.decode_loop}")
    print("power sources (sampled for 1 s: measured sources at 100 Hz, the CPU estimate 10 times a second, as a "
          "run reads it between window edges):")
    for source in report.sources:
        print(f"  ok        {', '.join(source['devices'])}: {source['tag']}, {source['achieved_hz']:.0f} Hz achieved, "
              f"value updates every {_period_text(source['update_period_ms'])} "
              f"({'slow' if source['slow'] else 'fast enough for single trials'})")
        print(f"            {source['method']}")
        if source.get("assumption"):
            print(f"            assumption: {source['assumption']}")
        if source.get("state"):
            print(f"            state: {source['state']}")
        if source["slow"]:
            print("            slow: one update lasts longer than a trial's prefill or decode, so its energy comes "
                  "from steady-state windows over back-to-back requests of a configuration")
    for missing in report.unavailable:
        print(f"  missing   {missing.name}: {missing.reason}")
        if missing.remedy:
            print(f"            fix: {missing.remedy}")
    if report.real:
        print("verdict     energy is measured (counter or integrated power)")
        return 0
    print("verdict     no power counter can be read: energy figures will be ESTIMATES (exit 3)")
    return 3
