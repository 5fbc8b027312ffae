"""The app's actions for people who do not know the keys: the command palette and the help screen.

Both are made from the key bindings (the app's and each tab's pane's), so a new key is in the palette,
the help and the footer at once. A binding's tooltip is its help text.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Iterator

from textual.app import SystemCommand
from textual.binding import Binding

if TYPE_CHECKING:
    from textual.dom import DOMNode
    from textual.screen import Screen

    from .app import EnergyApp


def documented(node: DOMNode) -> list[Binding]:
    """The bindings a node declares that say what they do."""
    return [b for b in Binding.make_bindings(type(node).BINDINGS) if b.tooltip]


def palette(app: EnergyApp, screen: Screen) -> Iterator[SystemCommand]:
    """Every app action, titled as in the footer (short titles rank the word typed first: the search matches
    titles only), its help under it; a tab's actions switch to that tab first."""
    for binding in documented(app):
        yield SystemCommand(binding.description, f"{binding.tooltip} (key {app.get_key_display(binding)})",
                            partial(app.run_action, binding.action))
    if screen is not app.screen_stack[0]:  # a dialog is open: the tabs' actions are behind it
        return
    for tab, pane in app.panes.items():
        for binding in documented(pane):
            yield SystemCommand(f"{tab.capitalize()}: {binding.description}",
                                f"{binding.tooltip} (key {app.get_key_display(binding)})",
                                partial(_in_tab, app, tab, binding.action))


async def _in_tab(app: EnergyApp, tab: str, action: str) -> None:
    app.action_tab(tab)
    await app.run_action(action, app.panes[tab])


def help_lines(app: EnergyApp) -> list[str]:
    """The help screen: every documented key, the app's first, then each tab's."""
    lines = [f"{app.get_key_display(b):<10} {b.tooltip}" for b in documented(app)]
    for tab, pane in app.panes.items():
        if keys := documented(pane):
            lines += ["", f"{tab.capitalize()} tab:"] + [f"{app.get_key_display(b):<10} {b.tooltip}" for b in keys]
    return lines
