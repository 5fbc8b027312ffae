"""Modal screens: help, the quit question, the add-trial form and the manifest picker."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Select, Static

class HelpScreen(ModalScreen):
    """Every key and what it does (the lines come from the bindings: tui/commands.py), and what the labels mean."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    NOTES = ["", "Energy marked ESTIMATED comes from a model (CPU utilisation × TDP), not a meter.",
             "ctrl+p: every action by name. Tables sort by clicking a column header; the mouse works everywhere."]

    def __init__(self, lines: list[str]):
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static("\n".join(["energytui — keys (esc closes)", "", *self.lines, *self.NOTES]), id="help-text",
                         markup=False)


class _Unfocused(Button):
    """A button for the mouse only: Enter answers the question whatever has focus."""

    can_focus = False


class QuitScreen(ModalScreen[bool]):
    """Asked when quitting during a run: True stops the run (its current trial aborted) and quits."""

    BINDINGS = [Binding("enter,y", "dismiss(True)", "Stop and quit"),
                Binding("escape,n", "dismiss(False)", "Keep running")]

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            yield Static("Stop the run and quit?", id="quit-question", markup=False)
            yield Static("The current trial is marked aborted; finished trials are kept and pending ones stay "
                         "queued, to resume later.\nEnter or y: stop and quit · Esc or n: keep running",
                         markup=False)
            with Horizontal(classes="row"):
                yield _Unfocused("Stop and quit", id="quit-yes", variant="error")
                yield _Unfocused("Keep running", id="quit-no")

    @on(Button.Pressed, "#quit-yes, #quit-no")
    def _answer(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit-yes")


class AddTrialScreen(ModalScreen[dict | None]):
    """A form for one trial (or a small sweep: comma lists expand like a manifest's lists)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, default_model: str):
        super().__init__()
        self.default_model = default_model

    def compose(self) -> ComposeResult:
        with Vertical(id="add-form"):
            yield Static("Add trials to the loaded run (comma lists expand, e.g. threads 1,2)", markup=False)
            yield Input(self.default_model, placeholder="model: registry name or .gguf path", id="add-model")
            yield Select([(b, b) for b in ("cpu", "gpu", "hybrid")], value="cpu", allow_blank=False, id="add-backend")
            yield Input("2", placeholder="threads", id="add-threads")
            yield Input("64", placeholder="prompt: a suite (sd, ar, ng) or a token count", id="add-prompt")
            yield Input("64", placeholder="max tokens", id="add-max")
            yield Input("1", placeholder="batch size", id="add-batch")
            with Horizontal(classes="row"):
                yield Button("Add", id="add-ok", variant="primary")
                yield Button("Cancel", id="add-cancel")

    @on(Button.Pressed, "#add-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#add-ok")
    def _ok(self) -> None:
        value = {name: self.query_one(f"#add-{name}", Input).value.strip()
                 for name in ("model", "threads", "prompt", "max", "batch")}
        value["backend"] = str(self.query_one("#add-backend", Select).value)
        self.dismiss(value)


class ManifestPicker(ModalScreen[Path | None]):
    """Pick a manifest file from a directory tree (YAML files only)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Static("Choose a manifest (enter on a .yaml file, esc to cancel)", markup=False)
            yield _YamlTree(Path.cwd())

    @on(DirectoryTree.FileSelected)
    def _chosen(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(event.path)


class _YamlTree(DirectoryTree):
    def filter_paths(self, paths):
        return [p for p in paths if p.is_dir() and not p.name.startswith(".") or p.suffix in (".yaml", ".yml")]


def form_manifest(form: dict) -> dict:
    """The add-trial form as a manifest document (validated by the same code as files)."""

    def values(text: str, kind=int):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            converted = [kind(p) for p in parts]
        except ValueError:
            converted = parts  # the manifest validator names the bad value
        return converted[0] if len(converted) == 1 else converted

    run = {"id": "added", "model": form["model"], "backend": form["backend"], "threads": values(form["threads"]),
           "max_tokens": values(form["max"]), "batch_size": values(form["batch"])}
    prompt = values(form["prompt"], str)
    is_count = all(str(p).isdigit() for p in (prompt if isinstance(prompt, list) else [prompt]))
    run["prompt_tokens" if is_count else "suite"] = values(form["prompt"]) if is_count else prompt
    if not is_count:
        run["prompt_limit"] = 1
    return {"runs": [run]}
