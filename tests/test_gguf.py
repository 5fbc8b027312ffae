from pathlib import Path

import pytest

from energytui.engine.errors import UserError
from energytui.engine.gguf import read_gguf


def test_reads_the_default_model_header(model_path):
    info = read_gguf(model_path)
    assert (info.arch, info.quant, info.n_layers) == ("llama", "Q4_1", 30)
    assert 130e6 < info.n_params < 140e6  # SmolLM2-135M
    assert 4.5 < info.bits_per_weight < 6.5  # Q4_1 blocks are 5 bits; a few tensors stay wider
    assert info.has_chat_template


def _prefix(model_path: Path, target: Path, n_bytes: int) -> Path:
    with model_path.open("rb") as src:
        target.write_bytes(src.read(n_bytes))
    return target


def test_truncated_tensor_data_is_rejected(model_path, tmp_path):
    cut = _prefix(model_path, tmp_path / "cut.gguf", model_path.stat().st_size // 2)
    with pytest.raises(UserError, match=r"cut.gguf: truncated .* download it again"):
        read_gguf(cut)


def test_truncated_header_is_rejected(model_path, tmp_path):
    cut = _prefix(model_path, tmp_path / "head.gguf", 4096)
    with pytest.raises(UserError, match="header is truncated"):
        read_gguf(cut)


def test_foreign_file_is_rejected(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_text("this is not a model\n")
    with pytest.raises(UserError, match="not a GGUF file"):
        read_gguf(bogus)


def test_missing_file_names_the_remedy(tmp_path):
    with pytest.raises(UserError, match="models fetch"):
        read_gguf(tmp_path / "absent.gguf")
