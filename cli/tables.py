"""Terminal output that fits the terminal: tables (drawn by rich) folded into several narrower ones, long
lines wrapped."""

from __future__ import annotations

import io
import os
import shutil
import sys
import textwrap

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

GAP = 2  # spaces between two columns
# Piped output: an ASCII rule under the headers and nothing else, so lines stay plain for grep and diff.
PLAIN_BOX = box.Box("    \n"
                    "    \n"
                    " -  \n"
                    "    \n"
                    "    \n"
                    "    \n"
                    "    \n"
                    "    \n")


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


def console(stream, width: int | None, terminal: bool) -> Console:
    """A rich console that decides nothing from the environment: the width and the terminal-ness are the
    caller's, and user data is never read as markup, emoji or something to highlight."""
    return Console(file=stream, width=width, force_terminal=terminal, force_jupyter=False,
                   force_interactive=terminal, color_system="auto" if terminal else None, legacy_windows=False,
                   markup=False, highlight=False, emoji=False)


def fold_groups(widths: list[int], width: int, keep: int, key_width: int | None = None) -> list[list[int]]:
    """The columns after the first `keep`, in order, grouped so that each group fits `width` beside the
    key columns, `key_width` wide together (default: their widths); a column too wide for that gets a
    group of its own."""
    base = sum(widths[:keep]) + GAP * (keep - 1) if key_width is None else key_width
    groups: list[list[int]] = []
    current: list[int] = []
    used = base
    for i in range(keep, len(widths)):
        if current and used + GAP + widths[i] > width:
            groups.append(current)
            current, used = [], base
        current.append(i)
        used += GAP + widths[i]
    return [*groups, current]


def fold(headers: list[str], body: list[list[str]], width: int | None = None, keep: int = 1,
         styled: bool = False) -> str:
    """The table as one or more tables no wider than `width` (default: the terminal's; none: one table,
    lines whole): the first `keep` columns start every one, the others fill them left to right in order.
    Numbers are never cut: where a column does not fit beside the key columns, the key columns wrap, and
    only where even that is too wide is a line longer than `width`. `styled`: bold headers, for a terminal."""
    if not headers:
        return ""
    keep = max(1, min(keep, len(headers)))
    width = width or terminal_width()
    columns = [list(column) for column in zip(headers, *body)]
    widths = [max(map(cell_len, column)) for column in columns]
    # a key column can wrap down to its longest word; the others keep their width
    narrowest = [max(cell_len(word) for text in column for word in text.split() or [""]) if i < keep else widths[i]
                 for i, column in enumerate(columns)]
    keys, narrow_keys = sum(widths[:keep]) + GAP * (keep - 1), sum(narrowest[:keep]) + GAP * (keep - 1)
    if width is None:
        groups = [list(range(keep, len(headers)))]
    else:  # wrap the key columns only as far as the widest other column needs
        widest = max(widths[keep:], default=0)
        groups = fold_groups(widths, width, keep, min(keys, max(narrow_keys, width - GAP - widest)))
    tables = []
    for group in groups:
        shown = list(range(keep)) + group
        gaps = GAP * (len(shown) - 1)
        fitted = max(width or sum(widths[i] for i in shown) + gaps, sum(narrowest[i] for i in shown) + gaps)
        tables.append(_render(headers, body, shown, keep, fitted, styled))
    return "\n\n".join(tables)


def _render(headers, body, shown: list[int], keep: int, width: int, styled: bool) -> str:
    """One table of the columns `shown`, drawn `width` wide at most."""
    table = Table(box=box.SIMPLE_HEAD if styled else PLAIN_BOX, show_edge=False, pad_edge=False,
                  padding=(0, GAP - 1, 0, 0), header_style="bold" if styled else "")
    for i in shown:  # key columns may wrap (at spaces, else anywhere); the others never do
        table.add_column(Text(headers[i]), no_wrap=i >= keep, overflow="fold")
    for row in body:
        table.add_row(*(Text(row[i]) for i in shown))
    out = io.StringIO()
    console(out, width, styled).print(table)
    lines = out.getvalue().rstrip("\n").split("\n")
    return "\n".join(lines if styled else (line.rstrip() for line in lines))
