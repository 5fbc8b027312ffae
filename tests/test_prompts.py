import json
import os
from pathlib import Path

import pytest

from energytui.engine.errors import UserError
from energytui.engine.paths import PROMPTS_DIR
from energytui.engine.prompts import load_prompt_file, load_suite, suite_names, synthetic_tokens


@pytest.mark.parametrize("suite", ["sd", "ar", "ng"])
def test_suites_have_enough_distinct_prompts_of_spread_lengths(suite):
    prompts = load_suite(suite)
    assert len(prompts) >= 12
    assert len({p.id for p in prompts}) == len(prompts)
    assert all(p.suite == suite for p in prompts)
    words = sorted(len(p.text.split()) for p in prompts)
    assert words[0] < 25 and words[-1] > 100  # short and long prompts in each suite
    for line in (PROMPTS_DIR / f"{suite}.jsonl").read_text().splitlines():
        assert set(json.loads(line)) == {"id", "text", "suite"}


def test_suite_names_are_the_shipped_files():
    assert {"sd", "ar", "ng"} <= set(suite_names())


def test_text_file_gives_one_prompt_per_line(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("first prompt\n\nsecond prompt\n")
    assert [p.text for p in load_prompt_file(path)] == ["first prompt", "second prompt"]


def test_empty_prompt_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(UserError, match="empty.jsonl: the prompt file is empty"):
        load_prompt_file(path)


def test_non_utf8_prompt_file_names_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("ok line\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(UserError, match="latin1.txt: line 2 is not UTF-8"):
        load_prompt_file(path)


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "text": "fine"}\n{"id": "b", text}\n')
    with pytest.raises(UserError, match="bad.jsonl: line 2: invalid JSON"):
        load_prompt_file(path)



def test_missing_prompt_file_says_where_relative_paths_start(tmp_path):
    with pytest.raises(UserError) as caught:
        load_prompt_file(tmp_path / "gone.txt")
    assert str(caught.value) == (f"{tmp_path / 'gone.txt'}: prompt file not found; "
                                 "check the path (relative paths are from the manifest's folder)")


def test_a_pipe_is_not_a_prompt_file(tmp_path):
    fifo = tmp_path / "prompts.fifo"
    os.mkfifo(fifo)  # opening it would wait for a writer forever, as /dev/stdin or a tty would
    with pytest.raises(UserError) as caught:
        load_prompt_file(fifo)
    assert str(caught.value) == (f"{fifo}: not a regular file (a device, pipe or socket); "
                                 "give the path of a saved prompt file")


@pytest.mark.parametrize("error, reason", [
    (PermissionError(13, "Permission denied"), "Permission denied"),  # chmod 000, for a user other than root
    (OSError(5, "Input/output error"), "Input/output error"),  # a failing disk, or /proc/self/mem
])
def test_an_unreadable_prompt_file_is_one_line(tmp_path, monkeypatch, error, reason):
    path = tmp_path / "mine.txt"
    path.write_text("a prompt\n")

    def fail(self):
        raise error

    monkeypatch.setattr(Path, "read_bytes", fail)
    with pytest.raises(UserError) as caught:
        load_prompt_file(path)
    assert str(caught.value) == f"{path}: cannot read the prompt file ({reason}); check its permissions"


def test_synthetic_prompt_has_the_exact_length(model_path):
    from energytui.engine.llama_backend import LoadedModel

    model = LoadedModel(model_path, 0)
    try:
        for n in (1, 7, 64, 300):
            assert len(synthetic_tokens(model.tokenize, n)) == n
    finally:
        model.close()
