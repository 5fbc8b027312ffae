"""Terminal output that fits the terminal: tables folded into several narrower ones, long lines wrapped."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap


def terminal_width() -> int | None:
    """The width to fit: the terminal's, or $COLUMNS; None when output goes to a file or a pipe and no
    width was asked for (lines stay whole for grep and scripts)."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return shutil.get_terminal_size(fallback=(80, 24)).columns
    return None


def wrap(text: str, width: int | None = None, indent: str = "  ") -> str:
    """Each line of `text` wrapped to the width, continuation lines indented (unchanged without a width)."""
    width = width or terminal_width()
    if width is None:
        return text
    return "\n".join(textwrap.fill(line, width, subsequent_indent=indent, break_on_hyphens=False,
                                   break_long_words=True) if len(line) > width else line
                     for line in text.splitlines())


def fold(headers: list[str], body: list[list[str]], width: int | None = None, keep: int = 1) -> str:
    """The table as one or more tables no wider than `width`: the first `keep` columns start every one,
    the others fill them left to right in order."""
    width = width or terminal_width() or 10**6
    widths = [max([len(h), *(len(row[i]) for row in body)]) for i, h in enumerate(headers)]
    base = sum(widths[:keep]) + 2 * (keep - 1)
    groups: list[list[int]] = []
    current: list[int] = []
    used = base
    for i in range(keep, len(headers)):
        if current and used + 2 + widths[i] > width:
            groups.append(current)
            current, used = [], base
        current.append(i)
        used += 2 + widths[i]
    groups.append(current)
    tables = []
    for group in groups:
        columns = list(range(keep)) + group
        lines = ["  ".join(cells[i].ljust(widths[i]) for i in columns).rstrip()
                 for cells in [headers, *body]]
        lines.insert(1, "  ".join("-" * widths[i] for i in columns))
        tables.append("\n".join(lines))
    return "\n\n".join(tables)
