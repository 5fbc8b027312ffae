"""Where energytui keeps its database, models and shipped files."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import platformdirs

from .errors import UserError

# In a source checkout and in an installed wheel alike, config/ and data/ sit
# next to engine/ (pyproject maps all three under the energytui package).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PACKAGE_ROOT / "config"
PROMPTS_DIR = PACKAGE_ROOT / "data" / "prompts"


def compiled_module(name: str) -> Path | None:
    """The file of one of engine/'s optional C modules (setup.py), None where the install could not build it (no C
    compiler or Python headers): engine/native_loop.py and engine/sigbus.py load them with ctypes."""
    try:
        module = importlib.import_module(f"energytui.engine.{name}")
    except ImportError:
        return None
    return Path(module.__file__) if module.__file__ else None


def expand_home(path: str | Path, named: str) -> Path:
    """`path` with `~` or `~user` expanded; a user without a home is one line naming where the path came from."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # pathlib: "Could not determine home directory."
        raise UserError(f"{named} {path}: no home folder for that user; write the path in full") from None


def home_dir() -> Path:
    """Root for models and the default database: $ENERGYTUI_HOME or the user data dir."""
    override = os.environ.get("ENERGYTUI_HOME")
    return expand_home(override, "$ENERGYTUI_HOME") if override else Path(platformdirs.user_data_dir("energytui"))


def models_dir() -> Path:
    return home_dir() / "models"


def default_db_path() -> Path:
    """$ENERGYTUI_DB, else energytui.db in the home dir."""
    override = os.environ.get("ENERGYTUI_DB")
    return expand_home(override, "$ENERGYTUI_DB") if override else home_dir() / "energytui.db"


def where_from(path: Path) -> str:
    """How the user named `path`'s location: the environment variable that set it, for an error message."""
    if os.environ.get("ENERGYTUI_DB") and path == default_db_path():
        return "$ENERGYTUI_DB"
    if os.environ.get("ENERGYTUI_HOME") and home_dir() in path.parents:
        return "$ENERGYTUI_HOME"
    return ""


def make_folder_for(path: Path, flag: str) -> None:
    """mkdir -p of `path`'s folder, writable, or one line naming the setting behind it (`flag` or an environment
    variable)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{where_from(path) or flag}: cannot create the folder {path.parent} ({exc.strerror}); "
                        "choose another path") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):  # a read-only mount or folder: say so before writing
        raise UserError(f"{where_from(path) or flag}: cannot write in the folder {path.parent} (read-only); "
                        "choose another path")


def check_regular_file(path: Path, what: str, not_found: str = "check the path") -> None:
    """A missing path, or one that is no regular file, is one line: reading a device or a pipe may never end."""
    if not path.exists():
        raise UserError(f"{path}: {what} not found; {not_found}")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file (a device, pipe or socket); give the path of a saved {what}")


def read_file(path: Path, what: str, not_found: str = "check the path") -> bytes:
    """The bytes of a file the user named; missing, not a regular file or unreadable (EIO, EACCES) is one line."""
    check_regular_file(path, what, not_found)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror or exc}); check its permissions") from None
