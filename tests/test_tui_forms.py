"""The app's forms and file picker driven by its Pilot: labels, Enter, errors under the bad field, 80x24."""

import asyncio
import sqlite3

from textual.widgets import DataTable, Input, Static

from energytui.tui.app import create_app
from energytui.tui.dialogs import AddTrialScreen, ManifestPicker
from energytui.tui.forms import Field
from helpers import until

MANIFEST = """defaults:
  model: {model}
  threads: 2
  n_ctx: 128
runs:
  - id: forms
    prompt_tokens: [16, 24]
    max_tokens: 8
"""
ADDED = "SELECT run_id, backend, threads, prompt_id, max_tokens, batch_size, status FROM trials ORDER BY seq"


def _rows(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(ADDED).fetchall()


LOADED = [("forms", "cpu", 2, "synthetic-16", 8, 1, "pending"), ("forms", "cpu", 2, "synthetic-24", 8, 1, "pending")]


async def _load(pilot, app) -> None:
    """Load the app's manifest (two trials) and leave the focus on the queue table, where keys are bindings."""
    await pilot.click("#load")
    await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == 2)
    app.query_one("#queue-table", DataTable).focus()


async def _open_add_form(pilot, app) -> AddTrialScreen:
    """Load the app's manifest, then open the add-trial form on its run."""
    await _load(pilot, app)
    await pilot.press("a")
    assert isinstance(app.screen, AddTrialScreen)
    return app.screen


async def _type(pilot, field: str, text: str) -> None:
    """Replace a field's text the way a user does: focus it, clear it, type."""
    box = pilot.app.screen.query_one(field, Input)
    box.focus()
    box.value = ""
    await pilot.press(*text)


def _field(screen, name: str) -> Field:
    return screen.query_one(f"#{name}-field", Field)


def test_add_form_enter_submits_and_queues_the_sweep(write_manifest, model_path, tmp_path, quiet_meter):
    db = tmp_path / "add.db"

    async def scenario():
        app = create_app(db, write_manifest(MANIFEST.format(model=model_path)), quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            form = await _open_add_form(pilot, app)
            assert isinstance(form, AddTrialScreen)
            labels = [str(label.render()) for label in form.query(".field-label")]
            assert labels == ["model", "backend", "threads", "prompt", "max tokens", "batch size"]
            await _type(pilot, "#add-threads", "1,2")
            await _type(pilot, "#add-prompt", "sd")
            await _type(pilot, "#add-max", "4")
            await pilot.press("enter")  # in the max tokens field
            await until(pilot, lambda: not isinstance(app.screen, AddTrialScreen))
            await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == 4)
        assert _rows(db) == LOADED + [("added", "cpu", 1, "sd-01", 4, 1, "pending"),
                                      ("added", "cpu", 2, "sd-01", 4, 1, "pending")]

    asyncio.run(scenario())


def test_add_form_keeps_a_bad_value_marked_until_it_is_fixed(write_manifest, model_path, tmp_path, quiet_meter):
    db = tmp_path / "bad.db"

    async def scenario():
        app = create_app(db, write_manifest(MANIFEST.format(model=model_path)), quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            form = await _open_add_form(pilot, app)
            await _type(pilot, "#add-max", "lots")
            await _type(pilot, "#add-threads", "0,2")
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert app.screen is form  # still open, with what was typed
            assert form.query_one("#add-max", Input).value == "lots"
            assert _field(form, "add-max").error == ("max tokens: 'lots' is not a whole number ≥ 1; "
                                                     "write e.g. 64, or 32,64")
            assert _field(form, "add-threads").error == "threads: '0' is not a whole number ≥ 1; write e.g. 2, or 1,2,4"
            assert form.query_one("#add-max", Input).has_class("-invalid")
            assert [f.id for f in form.query(Field) if f.error] == ["add-threads-field", "add-max-field"]
            assert form.focused is form.query_one("#add-threads", Input)  # the first bad field
            assert _rows(db) == LOADED

            await _type(pilot, "#add-threads", "3")  # editing a field clears its mark
            assert _field(form, "add-threads").error == "" and not form.query_one("#add-threads").has_class("-invalid")
            await _type(pilot, "#add-max", "6")
            await pilot.press("enter")
            await until(pilot, lambda: not isinstance(app.screen, AddTrialScreen))
            await until(pilot, lambda: len(_rows(db)) == 3)
        assert _rows(db)[2] == ("added", "cpu", 3, "synthetic-64", 6, 1, "pending")

    asyncio.run(scenario())


def _set(screen, field: str, text: str) -> None:
    """A value no key name spells ('²'), as pasted."""
    box = screen.query_one(field, Input)
    box.focus()
    box.value = text


def test_forms_take_ascii_digits_only_and_mark_others(write_manifest, model_path, tmp_path, quiet_meter):
    """'²' passes str.isdigit() and not int(): it ended the app. '٣' passes both, and was queued as 3 threads.
    Counts are ASCII digits, as the CLI and manifests take them: the others are marked on their field."""
    db = tmp_path / "digits.db"

    async def scenario():
        app = create_app(db, write_manifest(MANIFEST.format(model=model_path)), quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            form = await _open_add_form(pilot, app)
            _set(form, "#add-threads", "٣")
            _set(form, "#add-max", "4,¹")
            _set(form, "#add-prompt", "²")
            await pilot.press("enter")
            await until(pilot, lambda: _field(form, "add-threads").error != "")
            assert app.screen is form and app.is_running
            assert _field(form, "add-threads").error == "threads: '٣' is not a whole number ≥ 1; write e.g. 2, or 1,2,4"
            assert _field(form, "add-max").error == ("max tokens: '¹' is not a whole number ≥ 1; "
                                                     "write e.g. 64, or 32,64")
            _set(form, "#add-threads", "1")
            _set(form, "#add-max", "2")
            await pilot.press("enter")  # '²' is no count: a suite's name, which the application layer refuses
            await until(pilot, lambda: _field(form, "add-prompt").error != "")
            assert _field(form, "add-prompt").error == "prompt: unknown suite '²'; use one of ar, ng, sd"
            assert _rows(db) == LOADED and app.screen is form
            _set(form, "#add-prompt", "8")
            await pilot.press("enter")
            await until(pilot, lambda: len(_rows(db)) == 3)
            await pilot.press("4")  # the advisor's whole numbers too
            pane = app.query_one("AdvisorPane")
            for bad in ("²", "٣"):
                _set(app.screen, "#adv-tokens", bad)
                await pilot.press("enter")
                await until(pilot, lambda: _field(pane, "adv-tokens").error.startswith(f"tokens: {bad!r}"))
                assert _field(pane, "adv-tokens").error == f"tokens: {bad!r} is not a whole number ≥ 1; write e.g. 256"
                assert str(app.query_one("#advice-text", Static).render()) == "Cannot advise: fix the marked field."
            assert app.is_running
        assert _rows(db)[2] == ("added", "cpu", 1, "synthetic-8", 2, 1, "pending")

    asyncio.run(scenario())


def test_add_form_shows_the_validators_problem_under_its_field(write_manifest, model_path, tmp_path, quiet_meter):
    """Problems only the application layer can find (a missing model file, an unknown suite) are marked too."""
    db = tmp_path / "late.db"

    async def scenario():
        app = create_app(db, write_manifest(MANIFEST.format(model=model_path)), quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            form = await _open_add_form(pilot, app)
            model = form.query_one("#add-model", Input).value
            await _type(pilot, "#add-model", "missing.gguf")
            await pilot.press("enter")
            await until(pilot, lambda: _field(form, "add-model").error != "")
            assert _field(form, "add-model").error == (
                "model: missing.gguf is neither a registry name nor an existing file; see `energytui models list`, "
                "or give the path of a .gguf file")
            assert form.query_one("#add-model", Input).has_class("-invalid") and app.screen is form

            await _type(pilot, "#add-model", model)
            await _type(pilot, "#add-prompt", "zz")
            await pilot.press("enter")
            await until(pilot, lambda: _field(form, "add-prompt").error != "")
            assert _field(form, "add-prompt").error == "prompt: unknown suite 'zz'; use one of ar, ng, sd"
            assert _field(form, "add-model").error == "" and app.screen is form
            assert _rows(db) == LOADED

            await _type(pilot, "#add-prompt", "ng")
            await pilot.press("enter")
            await until(pilot, lambda: len(_rows(db)) == 3)
            assert not isinstance(app.screen, AddTrialScreen)
        assert _rows(db)[2] == ("added", "cpu", 2, "ng-01", 64, 1, "pending")

    asyncio.run(scenario())


def test_picker_goes_up_a_folder_and_picks_a_manifest_there(write_manifest, model_path, tmp_path, quiet_meter,
                                                            monkeypatch):
    folder = tmp_path / "manifests"
    (folder / "inner").mkdir(parents=True)
    manifest = folder / "up.yaml"
    manifest.write_text(MANIFEST.format(model=model_path))
    (folder / "notes.txt").write_text("not a manifest")
    monkeypatch.chdir(folder / "inner")

    async def scenario():
        app = create_app(tmp_path / "pick.db", None, quiet_meter)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("o")
            picker = app.screen
            assert isinstance(picker, ManifestPicker)
            assert str(picker.query_one("#picker-folder", Static).render()) == str(folder / "inner")
            await pilot.press("backspace")
            tree = picker.query_one("DirectoryTree")
            names = lambda: [node.data.path.name for node in tree.root.children]  # noqa: E731
            await until(pilot, lambda: names() == ["inner", "up.yaml"])  # YAML files and folders only
            assert str(picker.query_one("#picker-folder", Static).render()) == str(folder)
            tree.move_cursor(tree.root.children[1])
            await pilot.press("enter")
            await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == 2)
            assert app.query_one("#manifest-path", Input).value == str(manifest)

    asyncio.run(scenario())


def test_the_dialogs_fit_80x24(write_manifest, model_path, tmp_path, quiet_meter):
    """With every field of the add form in error, its buttons stay on screen and every field scrolls into view."""

    async def scenario():
        app = create_app(tmp_path / "small.db", write_manifest(MANIFEST.format(model=model_path)), quiet_meter)
        async with app.run_test(size=(80, 24)) as pilot:
            form = await _open_add_form(pilot, app)
            for name in ("model", "threads", "prompt", "max", "batch"):
                form.query_one(f"#add-{name}", Input).value = ""
            form.query_one("#add-ok").press()
            await pilot.pause(0.2)
            assert len([f for f in form.query(Field) if f.error]) == 5
            screen = form.region
            for selector in ("#add-ok", "#add-cancel", "#add-model", "#add-batch"):
                widget = form.query_one(selector)
                widget.scroll_visible(animate=False)
                await pilot.pause(0.1)
                assert screen.contains_region(widget.region), selector
                if selector.startswith("#add-") and selector not in ("#add-ok", "#add-cancel"):
                    assert form.query_one("#add-fields").region.contains_region(widget.region), selector
            await pilot.press("escape")

            await pilot.press("o")
            parent = app.screen.query_one("#picker-parent")
            assert app.screen.region.contains_region(parent.region)
            await pilot.press("escape")

    asyncio.run(scenario())


def test_advisor_form_at_80x24_marks_a_bad_field_and_enter_advises(measured_db, quiet_meter):
    async def scenario():
        app = create_app(measured_db, None, quiet_meter)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("4")
            pane = app.query_one("AdvisorPane")
            labels = [str(label.render()) for label in pane.query(".field-label")]
            assert labels == ["tokens", "prompt tokens", "budget", "latency limit", "objective"]
            for name in ("tokens", "prompt", "budget", "latency"):
                assert app.query_one(f"#adv-{name}", Input).content_region.width >= 8, name  # "0.05kW" shows whole
            assert app.screen.region.contains_region(app.query_one("#advise").region)

            await _type(pilot, "#adv-tokens", "ten")
            await _type(pilot, "#adv-latency", "soon")
            await pilot.press("enter")  # in the latency field
            await until(pilot, lambda: str(app.query_one("#advice-text", Static).render()).startswith("Cannot advise"))
            assert _field(pane, "adv-tokens").error == "tokens: 'ten' is not a whole number ≥ 1; write e.g. 256"
            assert _field(pane, "adv-latency").error == (
                "latency limit: 'soon' is not a duration; write e.g. 5s or 500ms, or nothing")
            assert app.query_one("#adv-tokens", Input).has_class("-invalid")
            assert app.query_one("#adv-tokens", Input).value == "ten"
            assert str(app.query_one("#advice-text", Static).render()) == "Cannot advise: fix the marked field."
            rows = [str(row.query_one(".row-errors", Static).render()) for row in pane.query("FieldRow")]
            assert rows == [_field(pane, "adv-tokens").error, _field(pane, "adv-latency").error]

            await _type(pilot, "#adv-latency", "")
            await _type(pilot, "#adv-budget", "0.05kW")
            await _type(pilot, "#adv-tokens", "10")
            await pilot.press("enter")
            text = lambda: str(app.query_one("#advice-text", Static).render())  # noqa: E731
            await until(pilot, lambda: "Recommended:" in text())
            assert "ESTIMATED energy" in text()
            assert "Static power of the CPU estimate: " in text() and "% of TDP" in text()  # holds, or where not
            assert not [f for f in pane.query(Field) if f.error]

    asyncio.run(scenario())
