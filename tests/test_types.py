"""mypy, configured in pyproject.toml, finds no type error in the `energytui` package."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_nothing(namespace_tree):
    # No cache: a cold run costs seconds, and a cache kept between runs could hide a stale result.
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                             "--cache-dir", os.devnull], cwd=namespace_tree, capture_output=True, text=True,
                            env={**os.environ, "MYPYPATH": str(namespace_tree)})
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Success" in result.stdout, output
