import re
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


def _gguf(path: Path, header: dict, version: int = 3, tensors: int = 1) -> Path:
    """A small GGUF written by hand: `header` values are str (type 8) or int (uint32, type 4), and `tensors`
    F32 tensors of 8 elements after the 32-byte aligned header."""
    import struct

    def text(value: str) -> bytes:
        return struct.pack("<Q", len(value.encode())) + value.encode()

    out = b"GGUF" + struct.pack("<IQQ", version, tensors, len(header))
    for key, value in header.items():
        out += text(key) + (struct.pack("<I", 8) + text(value) if isinstance(value, str)
                            else struct.pack("<II", 4, value))
    for i in range(tensors):
        out += text(f"blk.0.t{i}.weight") + struct.pack("<I", 1) + struct.pack("<Q", 8) + struct.pack("<IQ", 0, 32 * i)
    out += b"\0" * (-len(out) % 32) + b"\0" * 32 * tensors
    path.write_bytes(out)
    return path


@pytest.mark.parametrize("header, version, tensors, message", [
    ({"general.architecture": "llama", "llama.block_count": "abc"}, 3, 1,
     "header key llama.block_count is 'abc', not a whole number; the file is damaged or not a llama.cpp model"),
    ({"general.architecture": "llama", "general.alignment": "x"}, 3, 1, "header key general.alignment is 'x'"),
    ({"general.architecture": "llama"}, 99, 1, "GGUF version 99 is newer than this reader knows (2–3)"),
    ({"general.architecture": "llama", "llama.block_count": 2}, 3, 0, "a GGUF header with no tensors, not a model"),
])
def test_a_header_with_values_of_the_wrong_type_is_one_clear_error(tmp_path, header, version, tensors, message):
    with pytest.raises(UserError, match=re.escape(message)):
        read_gguf(_gguf(tmp_path / "odd.gguf", header, version, tensors))


def test_a_small_hand_written_gguf_reads(tmp_path):
    info = read_gguf(_gguf(tmp_path / "ok.gguf", {"general.architecture": "llama", "llama.block_count": 2}))
    assert (info.arch, info.n_layers, info.n_params) == ("llama", 2, 8)
