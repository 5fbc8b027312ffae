"""The app's actions can be found: the command palette, the help screen, the footer of each tab, and focus."""

import asyncio
import inspect
import sqlite3

from textual.app import App
from textual.widgets import DataTable, Input
from textual.widgets._footer import FooterKey

from energytui.tui.app import HelpScreen, create_app
from energytui.tui.commands import documented
from energytui.tui.pane import Pane

ALIASES = {"interrupt"}  # ctrl+c: quit during a run (in the palette as quit), Textual's hint otherwise


def _actions(node_type: type) -> set[str]:
    """The actions a class of ours defines (not Textual's own)."""
    return {name.removeprefix("action_") for name, member in inspect.getmembers(node_type)
            if name.startswith("action_") and callable(member) and not hasattr(App, name) and not hasattr(Pane, name)}


def _action_name(action: str) -> str:
    return action.split("(")[0]


def test_every_action_of_the_app_and_its_tabs_is_in_the_palette_and_the_help(tmp_path, quiet_meter):
    async def scenario():
        app = create_app(tmp_path / "p.db", None, quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            titles = [command.title for command in app.get_system_commands(app.screen)]
            assert _actions(type(app)) - ALIASES <= {_action_name(b.action) for b in documented(app)}
            for tab, pane in app.panes.items():
                keys = documented(pane)
                assert _actions(type(pane)) <= {_action_name(b.action) for b in keys}, tab
                for binding in keys:
                    assert f"{tab.capitalize()}: {binding.description}" in titles
            assert {"Start", "Pause", "Stop", "Show the Results tab", "Queue: Load", "Queue: Add"} <= set(titles)
            assert titles.count("Quit") == 1
            helps = [command.help for command in app.get_system_commands(app.screen)]
            assert helps[titles.index("Quit")].startswith("Quit (asks first")  # ours, not Textual's

            await pilot.press("question_mark")
            await pilot.pause(0.2)
            assert isinstance(app.screen, HelpScreen)
            shown = "\n".join(app.screen.lines)
            for node in (app, *app.panes.values()):
                for binding in documented(node):
                    assert f"{app.get_key_display(binding):<10} {binding.tooltip}" in shown

    asyncio.run(scenario())


def test_the_palette_finds_load_by_name_and_runs_it_on_its_tab(write_manifest, model_path, tmp_path, quiet_meter):
    manifest = write_manifest(f"defaults:\n  model: {model_path}\nruns:\n  - id: p\n    prompt_tokens: [16, 24]\n"
                              "    max_tokens: 4\n")
    db = tmp_path / "palette.db"

    async def scenario():
        app = create_app(db, manifest, quiet_meter)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("3")  # from another tab
            await pilot.press("ctrl+p")
            await pilot.press(*"load")
            await pilot.pause(0.5)
            await pilot.press("enter")
            queue = app.query_one("#queue-table", DataTable)
            for _ in range(100):
                if queue.row_count == 2:
                    break
                await pilot.pause(0.1)
            assert app.query_one("TabbedContent").active == "queue"
            assert queue.row_count == 2 and app.run_number == 1

    asyncio.run(scenario())
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT prompt_id, status FROM trials ORDER BY seq").fetchall() == [
            ("synthetic-16", "pending"), ("synthetic-24", "pending")]


FOOTER_80 = {  # what each tab's footer shows at 80 columns, with no run loaded
    "queue": ["l Load", "o Open", "a Add", "del Remove", "⇧↑ ", "⇧↓ ", "q Quit", "? Help", "s Start", "^p palette"],
    "live": ["q Quit", "? Help", "s Start", "^p palette"],
    "results": ["c Trials/configs", "g Chart", "t Trace", "q Quit", "? Help", "s Start", "^p palette"],
}


def test_each_tab_has_its_keys_in_a_footer_that_fits_80_columns_and_a_focused_home(tmp_path, quiet_meter):
    async def scenario():
        app = create_app(tmp_path / "f.db", None, quiet_meter)
        async with app.run_test(size=(80, 24)) as pilot:
            for number, (tab, home) in enumerate((("queue", "queue-table"), ("live", "recent-table"),
                                                  ("results", "results-table"), ("advisor", "advise"),
                                                  ("host", "host-scroll")), start=1):
                await pilot.press(str(number))
                await pilot.pause(0.2)
                assert app.focused is not None and app.focused.id == home, tab
                keys = list(app.screen.query(FooterKey))
                assert all(key.region.right <= 80 for key in keys), tab
                if tab in FOOTER_80:
                    assert [f"{k.key_display} {k.description}" for k in keys] == FOOTER_80[tab]
                start = next(k for k in keys if k.key_display == "s")
                assert start.has_class("-disabled")  # greyed until a run is loaded

            await pilot.press("3")
            app.query_one("#results-filter", Input).focus()
            await pilot.press("x", "escape")  # a key typed in a box, then Esc back to the table
            assert app.query_one("#results-filter", Input).value == "x"
            assert app.focused is app.query_one("#results-table")

    asyncio.run(scenario())
