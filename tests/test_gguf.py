import re
import sqlite3
import struct
from pathlib import Path

import pytest

from energytui.engine.errors import UserError
from energytui.engine.gguf import read_gguf
from helpers import run_cli


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


def _text(value: str) -> bytes:
    return struct.pack("<Q", len(value.encode())) + value.encode()


def _gguf(path: Path, header: dict, version: int = 3, tensors: int = 1) -> Path:
    """A small GGUF written by hand: `header` values are str (type 8), int (uint32, type 4) or bytes (the value's
    type and value, encoded by the caller), and `tensors` F32 tensors of 8 elements after the 32-byte aligned
    header."""
    out = b"GGUF" + struct.pack("<IQQ", version, tensors, len(header))
    for key, value in header.items():
        if isinstance(value, str):
            value = struct.pack("<I", 8) + _text(value)
        elif isinstance(value, int):
            value = struct.pack("<II", 4, value)
        out += _text(key) + value
    for i in range(tensors):
        out += _text(f"blk.0.t{i}.weight") + struct.pack("<I", 1) + struct.pack("<Q", 8) + struct.pack("<IQ", 0, 32 * i)
    out += b"\0" * (-len(out) % 32) + b"\0" * 32 * tensors
    path.write_bytes(out)
    return path


@pytest.mark.parametrize("header, version, tensors, message", [
    ({"general.architecture": "llama", "llama.block_count": "abc"}, 3, 1,
     "header key llama.block_count is 'abc', not a whole number from 0 to 4294967295; the file is damaged or not a "
     "llama.cpp model"),
    ({"general.architecture": "llama", "general.alignment": "x"}, 3, 1, "header key general.alignment is 'x'"),
    ({"general.architecture": 5, "llama.block_count": 2}, 3, 1,
     "header key general.architecture is 5, not text; the file is damaged or not a llama.cpp model"),
    ({"general.architecture": "llama", "general.name": 7}, 3, 1, "header key general.name is 7, not text"),
    ({"general.architecture": "llama"}, 99, 1, "GGUF version 99 is newer than this reader knows (2–3)"),
    ({"general.architecture": "llama", "llama.block_count": 2}, 3, 0, "a GGUF header with no tensors, not a model"),
])
def test_a_header_with_values_of_the_wrong_type_is_one_clear_error(tmp_path, header, version, tensors, message):
    with pytest.raises(UserError, match=re.escape(message)):
        read_gguf(_gguf(tmp_path / "odd.gguf", header, version, tensors))


def test_a_small_hand_written_gguf_reads(tmp_path):
    info = read_gguf(_gguf(tmp_path / "ok.gguf", {"general.architecture": "llama", "llama.block_count": 2}))
    assert (info.arch, info.n_layers, info.n_params) == ("llama", 2, 8)


LLAMA = {"general.architecture": "llama", "llama.block_count": 2}
HOSTILE = ["nested arrays", "2^63+5-byte key", "2^45-byte key", "infinite embedding length"]
NESTED_ARRAYS = struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 5000 + struct.pack("<IQ", 0, 0)


def _huge_key(path: Path, length: int) -> Path:
    """A header whose first key claims `length` bytes, followed by 3."""
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + struct.pack("<Q", length) + b"abc")
    return path


def hostile_ggufs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Damaged or hostile headers that once crashed the reader → (file, what read_gguf must say after its path)."""
    truncated = "GGUF header is truncated or damaged ({} at byte 32, only 3 bytes left); download the file again"
    return {
        "nested arrays": (_gguf(folder / "deep.gguf", {**LLAMA, "a": NESTED_ARRAYS}),
                          "a GGUF array of arrays, which llama.cpp cannot load; the file is damaged or not GGUF"),
        "2^63+5-byte key": (_huge_key(folder / "hugestr.gguf", 2**63 + 5),
                            truncated.format("a string of 9223372036854775813 bytes")),
        "2^45-byte key": (_huge_key(folder / "hugestr2.gguf", 2**45),
                          truncated.format("a string of 35184372088832 bytes")),
        "infinite embedding length": (
            _gguf(folder / "inf.gguf", {**LLAMA, "llama.embedding_length": struct.pack("<Id", 12, float("inf"))}),
            "header key llama.embedding_length is inf, not a whole number from 0 to 4294967295; the file is "
            "damaged or not a llama.cpp model"),
    }


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_header_is_one_clear_error(tmp_path, case):
    path, message = hostile_ggufs(tmp_path)[case]
    with pytest.raises(UserError) as raised:
        read_gguf(path)
    assert str(raised.value) == f"{path}: {message}"


@pytest.mark.parametrize("value, message", [
    (struct.pack("<IQ", 8, 2**40), "GGUF header is truncated or damaged (an array of 1099511627776 strings at byte "
                                   "{at}, only {left} bytes left); download the file again"),
    (struct.pack("<IQ", 10, 2**62), "GGUF header is truncated or damaged (an array of 4611686018427387904 numbers "
                                    "at byte {at}, only {left} bytes left); download the file again"),
])
def test_an_array_longer_than_the_file_is_refused_before_it_is_read(tmp_path, value, message):
    path = _gguf(tmp_path / "long.gguf", {"a": struct.pack("<I", 9) + value})
    at = 24 + len(_text("a")) + 4 + len(value)
    with pytest.raises(UserError) as raised:
        read_gguf(path)
    assert str(raised.value) == f"{path}: " + message.format(at=at, left=path.stat().st_size - at)


def test_a_tensor_of_more_dimensions_than_ggml_allows_is_refused(tmp_path):
    path = tmp_path / "dims.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + _text("t") + struct.pack("<I", 2**31) + b"\0" * 64)
    with pytest.raises(UserError) as raised:
        read_gguf(path)
    assert str(raised.value) == (f"{path}: a tensor of 2147483648 dimensions (ggml allows 4); the file is damaged "
                                 "or not GGUF")


@pytest.mark.parametrize("stored, read", [
    (struct.pack("<Id", 12, 576.0), 576),  # a whole number in a float type
    (struct.pack("<IQ", 10, 576), 576),
    (struct.pack("<IIQ", 9, 4, 2) + struct.pack("<II", 64, 64), 0),  # per layer: not read
])
def test_header_numbers_in_any_whole_form_are_read(tmp_path, stored, read):
    info = read_gguf(_gguf(tmp_path / "n.gguf", {**LLAMA, "llama.embedding_length": stored}))
    assert info.n_embd == read


@pytest.mark.parametrize("stored, shown", [
    (struct.pack("<If", 6, float("nan")), "nan"),
    (struct.pack("<Id", 12, 576.5), "576.5"),
    (struct.pack("<Iq", 11, -1), "-1"),
    (struct.pack("<IQ", 10, 2**32), "4294967296"),
    (struct.pack("<I", 8) + _text("x" * 100), "'xxxxxxxxxxxx...xxxxxxxxxxxxx'"),
])
def test_header_numbers_that_are_not_whole_numbers_in_range_are_refused(tmp_path, stored, shown):
    path = _gguf(tmp_path / "n.gguf", {**LLAMA, "llama.context_length": stored})
    with pytest.raises(UserError) as raised:
        read_gguf(path)
    assert str(raised.value) == (f"{path}: header key llama.context_length is {shown}, not a whole number from 0 to "
                                 "4294967295; the file is damaged or not a llama.cpp model")


def test_advise_on_a_hostile_model_is_one_line(imported_db, capsys, tmp_path):
    host = sqlite3.connect(imported_db).execute("SELECT id FROM hosts").fetchone()[0]
    for path, message in hostile_ggufs(tmp_path).values():
        code, _, err = run_cli(capsys, "advise", "--db", imported_db, "--host", host, "--tokens", "10", "--model", path)
        assert (code, err) == (2, f"energytui: error: --model: {path}: {message}\n")


def test_run_with_a_hostile_model_is_one_line(capsys, tmp_path):
    for path, message in hostile_ggufs(tmp_path).values():
        manifest = tmp_path / f"{path.stem}.yaml"
        manifest.write_text(f"runs:\n  - id: one\n    model: {path}\n    prompt_tokens: 8\n    max_tokens: 2\n")
        code, _, err = run_cli(capsys, "run", manifest, "--db", tmp_path / "never.db")
        assert (code, err) == (2, f"energytui: error: {manifest}: run 'one': key 'model': {path}: {message}\n")
    assert not (tmp_path / "never.db").exists()


def test_models_list_shows_each_hostile_file_as_unreadable_and_lists_the_rest(isolated_home, capsys):
    hostile = hostile_ggufs(isolated_home / "models")
    code, out, _ = run_cli(capsys, "models", "list")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and rows["smollm2-135m-q4_1"].split()[1:3] == ["Q4_1", "5.74"]
    for path, message in hostile.values():
        assert rows[path.stem].split()[1:7] == ["–"] * 5 + ["yes"]
        assert rows[path.stem].endswith(f"  {path}  (unreadable: {path}: {message})")


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="needs Linux's /proc/self/mem, a file reads fail on")
def test_a_model_file_that_cannot_be_read_is_one_line():
    """/proc/self/mem: a regular file whose every read at offset 0 fails (EIO), as a damaged disk's would."""
    with pytest.raises(UserError) as caught:
        read_gguf("/proc/self/mem")
    assert str(caught.value) == "/proc/self/mem: cannot read the model (Input/output error); check its permissions"
