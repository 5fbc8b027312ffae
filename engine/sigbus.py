"""One line instead of "Bus error" when a model file is cut short while llama.cpp reads it (engine/_sigbus.c).

llama.cpp maps model files into memory. A file cut short in place during a trial (a copy or a download over it)
makes the next read of a lost page raise SIGBUS, which ends the process before Python can run: no exception to
catch and no row to close. Between trials the engine checks the file itself (llama_backend.LoadedModel.changed).
The C handler writes the line prepared here, naming the model files mapped now, and exits with 135 as a SIGBUS
would; the trials finished before it are in the database, and the next run offers `--resume` for the rest. Where
the package was built without a C compiler, the process still ends as a plain "Bus error".
"""

from __future__ import annotations

import ctypes
from collections import Counter

from .paths import compiled_module

_mapped: Counter[str] = Counter()  # model file -> models loaded from it now
_state: dict = {}


def _library() -> ctypes.CDLL | None:
    if "library" not in _state:
        path = compiled_module("_sigbus")
        try:
            library = ctypes.CDLL(str(path)) if path else None
        except OSError:
            library = None
        if library is not None:
            library.et_sigbus_message.argtypes = [ctypes.c_char_p]
            library.et_sigbus_message.restype = ctypes.c_int
            library.et_sigbus_terminal.argtypes = [ctypes.c_int, ctypes.c_char_p]
            library.et_sigbus_terminal.restype = ctypes.c_int
        _state["library"] = library
    return _state["library"]


def message(paths: list[str]) -> str:
    """The line written when a mapped model file was cut short."""
    files = " or ".join(paths) if paths else "a model file"
    return (f"energytui: {files} was cut short while llama.cpp read it (SIGBUS); the trials finished before it are "
            "kept: restore the file, then run the manifest again with --resume for the rest\n")


def mapped(path: str) -> None:
    """A model was loaded from `path` (llama.cpp maps it)."""
    _mapped[path] += 1
    _prepare()


def unmapped(path: str) -> None:
    """A model loaded from `path` was freed."""
    _mapped[path] -= 1
    if _mapped[path] <= 0:
        del _mapped[path]
    _prepare()


def guard_terminal(fd: int, leave: str) -> None:
    """A full-screen app is about to take the terminal whose input is `fd`: on such a SIGBUS, its settings as they
    are now are put back and `leave` (the escape codes that leave the app's modes) written first, so the line and
    the shell after it read normally. Call before the app changes the terminal."""
    library = _library()
    if library is not None:
        library.et_sigbus_terminal(fd, leave.encode())  # -1 (not a terminal): nothing to put back


def release_terminal() -> None:
    """The app gave the terminal back."""
    library = _library()
    if library is not None:
        library.et_sigbus_terminal(-1, b"")


def _prepare() -> None:
    library = _library()
    if library is not None:
        library.et_sigbus_message(message(sorted(_mapped)).encode("utf-8", errors="replace"))
