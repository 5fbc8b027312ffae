"""The app checks a manifest, and the add-trial form's trials, as `energytui run` does (engine/limits.py) before
anything is queued: what cannot work is refused, what is wasteful is warned about, a large run is asked about.
Loading used to queue anything the manifest validator took (n_ctx past the model's trained context included)."""

import asyncio
import os
import sqlite3

from textual.widgets import DataTable, Input, Static

from energytui.engine import limits
from energytui.tui.app import create_app
from energytui.tui.confirm import ConfirmScreen
from energytui.tui.dialogs import AddTrialScreen
from helpers import until

MANIFEST = """defaults:
  model: {model}
  n_ctx: {n_ctx}
  threads: {threads}
runs:
  - id: limits
    prompt_tokens: 8
    max_tokens: 2
    repetitions: {repetitions}
"""


def _manifest(write_manifest, model_path, n_ctx=64, threads=1, repetitions=1, name="manifest.yaml"):
    return write_manifest(MANIFEST.format(model=model_path, n_ctx=n_ctx, threads=threads, repetitions=repetitions),
                          name)


def _trials(db) -> int:
    if not db.is_file():
        return 0
    with sqlite3.connect(db) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'trials'").fetchone():
            return 0
        return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]


def _notes(app) -> list[str]:
    return [str(note.message) for note in app._notifications]


def _load(app, manifest) -> None:
    app.query_one("#manifest-path", Input).value = str(manifest)
    app.queue.action_load()


def test_loading_refuses_what_cannot_work_and_queues_nothing(write_manifest, model_path, tmp_path, quiet_meter):
    manifest = _manifest(write_manifest, model_path, n_ctx=100_000)  # SmolLM2 was trained on 8192 tokens
    db = tmp_path / "refused.db"

    async def scenario():
        app = create_app(db, None, quiet_meter)
        async with app.run_test() as pilot:
            _load(app, manifest)
            await until(pilot, lambda: any("n_ctx" in note for note in _notes(app)))
            assert _notes(app) == [f"{manifest}: run 'limits': n_ctx: 100000 is beyond "
                                   f"{model_path.name}'s trained context of 8192 tokens; use at most 8192"]
            assert app.queue.run_number is None and app.is_running

    asyncio.run(scenario())
    assert _trials(db) == 0


def test_loading_warns_about_what_is_wasteful_and_queues_it(write_manifest, model_path, tmp_path, quiet_meter):
    cores = os.cpu_count()
    manifest = _manifest(write_manifest, model_path, threads=cores + 1)
    db = tmp_path / "warned.db"

    async def scenario():
        app = create_app(db, None, quiet_meter)
        async with app.run_test() as pilot:
            _load(app, manifest)
            await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == 1)
            await until(pilot, lambda: len(_notes(app)) == 2)
            assert _notes(app) == [
                f"{manifest}: run 'limits': threads: {cores + 1} is more than this machine's {cores} CPUs: the extra "
                f"threads only wait for each other (slower, not faster); use at most {cores}",
                f"run 1: 1 trials queued from {manifest}"]

    asyncio.run(scenario())
    assert _trials(db) == 1


def test_a_large_run_is_queued_only_once_the_user_says_yes(write_manifest, model_path, tmp_path, quiet_meter):
    many = limits.LARGE_RUN + 1
    manifest = _manifest(write_manifest, model_path, repetitions=many)
    db = tmp_path / "large.db"

    async def scenario():
        app = create_app(db, None, quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            _load(app, manifest)
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.query("#confirm-question"))
            question = str(app.screen.query_one("#confirm-question", Static).render())
            assert question == (f"{manifest}: {many} trials, duration unknown (this model was never run on this "
                                "host). Queue it? y/n")
            await pilot.press("n")
            await until(pilot, lambda: f"nothing queued from {manifest}" in _notes(app))
            assert _trials(db) == 0
            _load(app, manifest)
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == many)

    asyncio.run(scenario())
    assert _trials(db) == many


def test_the_add_form_warns_and_refuses_as_a_manifest_would(write_manifest, model_path, tmp_path, quiet_meter,
                                                           monkeypatch):
    """More threads than CPUs: added, with the warning. A machine with too little free memory for the trials
    (a stand-in for one: limits reads 64 MiB free): refused in the form, nothing added."""
    cores = os.cpu_count()
    db = tmp_path / "form.db"

    async def add(pilot, app, threads: int) -> AddTrialScreen:
        await pilot.press("a")
        form = app.screen
        box = form.query_one("#add-threads", Input)
        box.focus()
        box.value = str(threads)
        await pilot.press("enter")
        return form

    async def scenario():
        app = create_app(db, _manifest(write_manifest, model_path), quiet_meter)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.click("#load")
            await until(pilot, lambda: app.query_one("#queue-table", DataTable).row_count == 1)
            app.query_one("#queue-table", DataTable).focus()
            await add(pilot, app, cores + 1)
            await until(pilot, lambda: _trials(db) == 2 and not isinstance(app.screen, AddTrialScreen))
            await until(pilot, lambda: any("threads:" in note for note in _notes(app)))
            assert f"add-trial form: run 'added': threads: {cores + 1} is more than this machine's {cores} CPUs" \
                in " ".join(_notes(app))

            monkeypatch.setattr(limits, "available_ram_bytes", lambda: 64 * 2**20)
            form = await add(pilot, app, 1)
            error = form.query_one("#add-error", Static)
            await until(pilot, lambda: str(error.render()) != "")
            assert str(error.render()).startswith("Not added: n_ctx: 2048 with batch size 1 needs about ")
            assert str(error.render()).endswith("this machine has 0.1 GiB free; lower n_ctx or batch size")
            assert app.screen is form and _trials(db) == 2

    asyncio.run(scenario())
