"""Prompt suites (data/prompts/*.jsonl), user prompt files, and synthetic prompts of exact length."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .paths import PROMPTS_DIR, read_file


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    suite: str


def suite_names() -> list[str]:
    return sorted(path.stem for path in PROMPTS_DIR.glob("*.jsonl"))


def load_suite(name: str) -> list[Prompt]:
    path = PROMPTS_DIR / f"{name}.jsonl"
    if not path.is_file():
        raise UserError(f"unknown prompt suite {name!r}; choose from {', '.join(suite_names())}")
    return load_prompt_file(path, suite=name)


def load_prompt_file(path: Path, suite: str | None = None) -> list[Prompt]:
    """A .jsonl file of {"id", "text"[, "suite"]} objects, or any other text file with one prompt per line."""
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a prompt file; give the path of a .jsonl or text file")
    raw = read_file(path, "prompt file", "check the path (relative paths are from the manifest's folder)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line} is not UTF-8 (byte {exc.start}); save the file as UTF-8") from None
    suite = suite or path.stem
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise UserError(f"{path}: the prompt file is empty; add one prompt per line")
    if path.suffix == ".jsonl":
        return _unique_ids(path, [(n, _json_prompt(path, n, line, suite)) for n, line in lines])
    return [Prompt(f"{suite}-{i:02d}", line, suite) for i, (_n, line) in enumerate(lines, 1)]


def _unique_ids(path: Path, numbered: list[tuple[int, Prompt]]) -> list[Prompt]:
    """Trials name their prompt by id: two prompts with one id would be indistinguishable in the results."""
    first_line: dict[str, int] = {}
    for line_no, prompt in numbered:
        first = first_line.setdefault(prompt.id, line_no)
        if first != line_no:
            raise UserError(f"{path}: line {line_no}: duplicate id {prompt.id!r} (first on line {first}); "
                            "give every prompt its own id")
    return [prompt for _, prompt in numbered]


def _json_prompt(path: Path, line_no: int, line: str, suite: str) -> Prompt:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: line {line_no}: invalid JSON ({exc.msg}); "
                        "write one {\"id\", \"text\"} object per line") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
        raise UserError(f"{path}: line {line_no}: needs a non-empty string \"text\"")
    return Prompt(str(obj.get("id", f"{suite}-{line_no:02d}")), obj["text"], str(obj.get("suite", suite)))


# Plain prose repeated to any length: synthetic prompts measure length effects, not content.
_FILLER = (
    "The committee met on a grey morning to review the river survey. Each member read the notes aloud, "
    "compared the measurements with last year's figures, and marked the places where the banks had moved. "
    "Nobody hurried; the point was to agree on what had changed and why. "
)


def synthetic_tokens(tokenize, n_tokens: int) -> list[int]:
    """Exactly `n_tokens` tokens (BOS included where the model adds one) of repeated filler prose."""
    tokens = tokenize(_FILLER)
    body = tokenize(_FILLER, add_special=False)
    while len(tokens) < n_tokens:
        tokens += body
    return tokens[:n_tokens]
