"""Modal screens: help, the quit question, the add-trial form and the manifest picker."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, DirectoryTree, Input, Select, Static

from energytui.app import UserError

from .forms import NO_LIVE_CHECK, Field, WholeNumbers, ascii_digits, check_fields


class HelpScreen(ModalScreen):
    """Every key and what it does (the lines come from the bindings: tui/commands.py), and what the labels mean."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    NOTES = ["", "Energy marked ESTIMATED comes from a model (static power + CPU utilisation × power per busy thread, "
             "from the CPU's TDP), not a meter.",
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


class AddTrialScreen(ModalScreen[int | None]):
    """A form for one trial (or a small sweep: comma lists expand like a manifest's lists). It closes only
    once its trials are queued, with their count (None: cancelled); until then a bad value is marked in the
    form and what was typed stays. `add` queues a manifest document (raising FormRejected or UserError) and
    runs in a worker thread, since it checks the model file and writes the database."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    AddTrialScreen { align: center middle; }
    #add-box { width: 76; max-width: 100%; height: 30; max-height: 100%; border: round $accent;
               background: $surface; padding: 0 1; }
    #add-fields { height: 1fr; }
    #add-error { dock: bottom; display: none; height: auto; color: $text-error; }
    #add-error.-shown { display: block; }
    #add-buttons { dock: bottom; height: auto; align-horizontal: right; }
    #add-buttons Button { margin-left: 1; }
    """

    def __init__(self, default_model: str, add: Callable[[dict], int]):
        super().__init__()
        self.default_model, self.add = default_model, add

    def compose(self) -> ComposeResult:
        def text(name: str, value: str, placeholder: str, *validators: Validator) -> Field:
            control = Input(value, placeholder=placeholder, id=f"add-{name}", validators=list(validators),
                            validate_on=NO_LIVE_CHECK)
            return Field(FORM_LABELS[name], control, label_width=LABEL_WIDTH)

        with Vertical(id="add-box"):
            yield Static("Add trials to the loaded run: comma lists expand into a sweep, e.g. threads 1,2. "
                         "Enter adds.", markup=False)
            with VerticalScroll(id="add-fields"):
                yield text("model", self.default_model, "a registry name or a .gguf path", _Filled("model"))
                yield Field(FORM_LABELS["backend"], Select([(b, b) for b in BACKENDS], value="cpu", allow_blank=False,
                                                           id="add-backend"), label_width=LABEL_WIDTH)
                yield text("threads", "2", "e.g. 2, or 1,2,4", WholeNumbers("threads", "2, or 1,2,4", many=True))
                yield text("prompt", "64", "a suite (sd, ar, ng) or a token count", _PromptSource())
                yield text("max", "64", "e.g. 64", WholeNumbers("max tokens", "64, or 32,64", many=True))
                yield text("batch", "1", "e.g. 1", WholeNumbers("batch size", "1, or 1,4", many=True))
            yield Static("", id="add-error", markup=False)
            with Horizontal(id="add-buttons"):
                yield Button("Add", id="add-ok", variant="primary")
                yield Button("Cancel", id="add-cancel")

    @on(Button.Pressed, "#add-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#add-ok")
    def submit(self) -> None:
        """Check the fields here, then the whole form in the application layer; close once queued."""
        adding = self.query_one("#add-ok", Button)
        if adding.disabled:  # one add at a time: Enter twice queues once
            return
        self._show_error("")
        if not check_fields(self.query(Field)):
            return
        values = {name: self.query_one(f"#add-{name}", Input).value.strip()
                  for name in ("model", "threads", "prompt", "max", "batch")}
        values["backend"] = str(self.query_one("#add-backend", Select).value)
        adding.disabled = True
        self._queue(form_manifest(values))

    @work(thread=True, exclusive=True, group="add-trials")
    def _queue(self, document: dict) -> None:
        from energytui.app.runs import FormRejected  # here, not at the top: app.runs loads llama.cpp

        try:
            added = self.add(document)
        except FormRejected as exc:
            self.app.call_from_thread(self._rejected, exc.key, exc.problem)
        except UserError as exc:
            self.app.call_from_thread(self._rejected, None, str(exc))
        else:
            self.app.call_from_thread(self.dismiss, added)

    def _rejected(self, key: str | None, problem: str) -> None:
        self.query_one("#add-ok", Button).disabled = False
        name = FIELD_OF_KEY.get(key or "")
        if name is None:  # a key the form has no field for (n_ctx): named in the message
            self._show_error(f"Not added: {in_form_words(f'{key}: {problem}' if key else problem)}")
            return
        field = self.query_one(f"#add-{name}-field", Field)
        field.show_error(f"{FORM_LABELS[name]}: {in_form_words(problem)}")
        field.control.focus()

    def _show_error(self, message: str) -> None:
        """A problem the validator found with no field to mark (shown above the buttons)."""
        error = self.query_one("#add-error", Static)
        error.update(message)
        error.set_class(bool(message), "-shown")


BACKENDS = ("cpu", "gpu", "hybrid")
LABEL_WIDTH = 12
FORM_LABELS = {"model": "model", "backend": "backend", "threads": "threads", "prompt": "prompt",
               "max": "max tokens", "batch": "batch size"}
# The manifest keys that form_manifest writes, by the field they come from.
FIELD_OF_KEY = {"model": "model", "backend": "backend", "gpu_layers": "backend", "threads": "threads",
                "suite": "prompt", "prompt_tokens": "prompt", "prompt_limit": "prompt", "max_tokens": "max",
                "batch_size": "batch"}
# The validator's messages are written for manifest files and the CLI; the form says the same in its words.
_FORM_WORDS = {"batch_size": "batch size", "max_tokens": "max tokens", "prompt_tokens": "prompt",
               ", or run with --skip-gpu": ", or choose backend cpu"}


def in_form_words(problem: str) -> str:
    for manifest_words, form_words in _FORM_WORDS.items():
        problem = problem.replace(manifest_words, form_words)
    return problem


class _Filled(Validator):
    def __init__(self, label: str):
        super().__init__()
        self.label = label

    def validate(self, value: str) -> ValidationResult:
        return self.success() if value.strip() else self.failure(
            f"{self.label}: missing; write a registry name (see `energytui models list`) or a .gguf path")


class _PromptSource(Validator):
    """A suite name or token counts (a comma list of either), not both: the manifest takes one source."""

    def validate(self, value: str) -> ValidationResult:
        parts = [part.strip() for part in value.split(",")]
        counts = [part for part in parts if ascii_digits(part)]
        if not value.strip() or "" in parts:
            return self.failure("prompt: missing; write a suite (sd, ar, ng) or a token count such as 64")
        if counts and len(counts) < len(parts):
            return self.failure(f"prompt: {value.strip()!r} mixes suites and token counts; write one kind")
        if any(int(count) < 1 for count in counts):
            return self.failure("prompt: a token count must be a whole number ≥ 1; write e.g. 64")
        return self.success()


class ManifestPicker(ModalScreen[Path | None]):
    """Pick a manifest file from a directory tree (YAML files only), which can go up to parent folders."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("backspace", "parent", "Parent folder")]
    DEFAULT_CSS = """
    ManifestPicker { align: center middle; }
    #picker-box { width: 76; max-width: 100%; height: 30; max-height: 100%; border: round $accent;
                  background: $surface; padding: 0 1; }
    #picker-folder { text-style: bold; }
    #picker-box DirectoryTree { height: 1fr; }
    #picker-buttons { dock: bottom; height: auto; }
    """

    def __init__(self, folder: Path | None = None):
        super().__init__()
        self.start = (folder or Path.cwd()).resolve()

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            yield Static("enter: pick a .yaml file · backspace: parent folder · esc: cancel", markup=False)
            yield Static(str(self.start), id="picker-folder", markup=False)
            yield _YamlTree(self.start)
            with Horizontal(id="picker-buttons"):
                yield Button("↑ Parent folder", id="picker-parent")

    @property
    def folder(self) -> Path:
        """The folder the tree shows."""
        return Path(self.query_one(_YamlTree).path)

    @on(Button.Pressed, "#picker-parent")
    def action_parent(self) -> None:
        tree = self.query_one(_YamlTree)
        tree.path = self.folder.parent  # the tree reloads from its new root
        self.query_one("#picker-folder", Static).update(str(self.folder))
        tree.focus()

    @on(DirectoryTree.FileSelected)
    def _chosen(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(event.path)


class _YamlTree(DirectoryTree):
    def filter_paths(self, paths):
        return [p for p in paths if p.is_dir() and not p.name.startswith(".") or p.suffix in (".yaml", ".yml")]


def form_manifest(form: dict) -> dict:
    """The add-trial form as a manifest document (validated by the same code as files)."""

    def values(text: str, numbers: bool = True):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        converted = [int(p) if numbers and ascii_digits(p) else p for p in parts]  # else the validator names it
        return converted[0] if len(converted) == 1 else converted

    run = {"id": "added", "model": form["model"], "backend": form["backend"], "threads": values(form["threads"]),
           "max_tokens": values(form["max"]), "batch_size": values(form["batch"])}
    prompt = values(form["prompt"], numbers=False)
    is_count = all(ascii_digits(str(p)) for p in (prompt if isinstance(prompt, list) else [prompt]))
    run["prompt_tokens" if is_count else "suite"] = values(form["prompt"]) if is_count else prompt
    if not is_count:
        run["prompt_limit"] = 1
    return {"runs": [run]}
