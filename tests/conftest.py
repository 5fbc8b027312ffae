"""Shared fixtures. Tests use the real default model that the README's set-up command fetched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from energytui.engine.manifest import load_manifest
from energytui.engine.models import default_model_name, load_registry


def _default_model_path() -> Path:
    _, entries = load_registry()
    return entries[default_model_name()].path


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = _default_model_path()
    if not path.is_file():
        pytest.exit(f"default model missing at {path}: "
                    "run `energytui models fetch` first (the README's test command does)", 2)
    return path


@pytest.fixture(scope="session")
def engine():
    from energytui.engine.runner import Engine

    shared = Engine()
    yield shared
    shared.close()


@pytest.fixture
def isolated_home(tmp_path, monkeypatch, model_path) -> Path:
    """An ENERGYTUI_HOME of its own, with the default model linked in (no download)."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    os.symlink(model_path, home / "models" / model_path.name)
    monkeypatch.setenv("ENERGYTUI_HOME", str(home))
    monkeypatch.delenv("ENERGYTUI_DB", raising=False)
    return home


@pytest.fixture
def write_manifest(tmp_path):
    def write(text: str, name: str = "manifest.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def specs(write_manifest, model_path):
    """The trials of a manifest of `runs` on the default model (2 threads, CPU)."""
    def make(runs: str, n_ctx: int = 512):
        text = f"defaults:\n  model: {model_path}\n  threads: 2\n  n_ctx: {n_ctx}\nruns:\n{runs}"
        return load_manifest(write_manifest(text), gpu_offload=False).trials

    return make


def copy_model(model_path: Path, target: Path) -> Path:
    shutil.copyfile(model_path, target)
    return target


ADVISOR_SWEEP = """defaults:
  model: {model}
  threads: 2
  n_ctx: 256
  ignore_eos: true
runs:
  - id: small-sweep
    prompt_tokens: [16, 64]
    batch_size: [1, 2, 3]
    max_tokens: [6, 12]
"""



@pytest.fixture(scope="session")
def measured_db(tmp_path_factory, model_path):
    """A database with 12 real trials over 3 configurations: enough for the advisor to fit."""
    from energytui.advisor.fit import MIN_TRIALS
    from energytui.main import main
    from helpers import run_sweep

    folder = tmp_path_factory.mktemp("advisor")
    db = run_sweep(folder, ADVISOR_SWEEP.format(model=model_path))
    for _ in range(2):  # a trial whose re-run stalled too is left out (engine/queue.py, retry_stalled): run again
        if _counted_trials(db) >= MIN_TRIALS:
            break
        assert main(["run", str(folder / "sweep.yaml"), "--db", str(db), "--idle-s", "0.2", "--fresh"]) == 0
    assert main(["advise", "--db", str(db), "--fit"]) == 0  # cache the fit: tests that only ask stay fast
    return db


def _counted_trials(db: Path) -> int:
    from energytui.engine.report import counted
    from energytui.engine.store import Store

    store = Store(db, read_only=True)
    try:
        return sum(map(counted, store.trials()))
    finally:
        store.close()


REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def namespace_tree(tmp_path) -> Path:
    """A folder holding `energytui` as tools that cannot follow pyproject.toml's package-dir mapping read it
    (import-linter, mypy): links to cli/'s modules and to engine/, advisor/, app/, tui/."""
    package = tmp_path / "energytui"
    package.mkdir()
    for module in (REPO_ROOT / "cli").glob("*.py"):
        (package / module.name).symlink_to(module)
    for sub in ("engine", "advisor", "app", "tui"):
        (package / sub).symlink_to(REPO_ROOT / sub, target_is_directory=True)
    return tmp_path


@pytest.fixture(autouse=True)
def no_battery(monkeypatch):
    """No laptop battery unless a test brings its fake one (tests/fakes/power_supply.py): on a laptop running
    on battery, a test means what it means here."""
    monkeypatch.setenv("ENERGYTUI_POWER_SUPPLY_ROOT", "/nonexistent/energytui-tests-have-no-battery")


@pytest.fixture(autouse=True)
def plain_terminal_settings(monkeypatch):
    """The caller's terminal settings must not decide what a test sees: output is fitted to $COLUMNS when set,
    TERM=dumb (an editor's or a CI's shell) turns the progress bar into lines, and NO_COLOR / FORCE_COLOR change
    rich's and Textual's escape codes. A test that needs one of them sets it."""
    for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


@pytest.fixture(autouse=True)
def default_decode_loop(monkeypatch):
    """The engine's default decode loop (the C one where it was built), whatever ENERGYTUI_DECODE_LOOP the caller
    set: its choice is made once per process (engine/native_loop.py), in this one or a CLI child."""
    monkeypatch.delenv("ENERGYTUI_DECODE_LOOP", raising=False)


@pytest.fixture
def quiet_meter(tmp_path):
    """The meter as the app's tests use it: a short idle window, and no powercap tree and no battery (so the CPU
    estimate, on a laptop too)."""
    from energytui.engine.metering import MeterOptions

    empty = tmp_path / "no-powercap"
    empty.mkdir()
    return MeterOptions(idle_s=0.1, powercap_root=str(empty), power_supply_root=str(empty))


@pytest.fixture
def imported_db(tmp_path):
    """24 deterministic trials in 4 configurations: the import test's logs from another machine."""
    import test_import
    from energytui.engine.importer import import_logs
    from energytui.engine.store import Store

    db = tmp_path / "imported.db"
    store = Store(db)
    import_logs(store, test_import._log(tmp_path, energy_in_log=True), test_import.EXAMPLE_MAP)
    store.close()
    return db
