"""engine/ and advisor/ never import textual: the UI depends on them, never the reverse."""

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import energytui


def _core_modules() -> list[str]:
    names = []
    for package in ("engine", "advisor"):
        module = __import__(f"energytui.{package}", fromlist=["_"])
        names.append(module.__name__)
        names += [info.name for info in pkgutil.walk_packages(module.__path__, module.__name__ + ".")]
    return names


def test_engine_and_advisor_import_without_textual():
    modules = _core_modules()
    assert {"energytui.engine.runner", "energytui.advisor.recommend"} <= set(modules)
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "leaked = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
            "assert not leaked, leaked\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_source_file_in_engine_or_advisor_mentions_textual_imports():
    root = Path(energytui.engine.__file__).resolve().parent.parent
    for folder in ("engine", "advisor"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            assert "import textual" not in text and "from textual" not in text, path


ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold(namespace_tree):
    """pyproject.toml's import-linter contracts: engine < advisor < app and CLI, never the reverse."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=namespace_tree,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(namespace_tree)})
    assert result.returncode == 0 and "0 broken" in result.stdout, result.stdout[-2000:] + result.stderr


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
