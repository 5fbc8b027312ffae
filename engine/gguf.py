"""Read a GGUF file's header without loading it: architecture, layers, quantization, parameters.

Reading the header lets energytui reject a truncated or foreign file with a clear
message before llama.cpp sees it, and lets `models list` and the advisor know the
bits per weight of every model without loading any of them.
"""

from __future__ import annotations

import reprlib
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import BinaryIO

from .errors import UserError

GGUF_MAGIC = b"GGUF"
GGUF_NEWEST = 3  # the newest GGUF version llama.cpp writes

# GGUF metadata value types → struct format (arrays and strings handled apart).
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
GGML_MAX_DIMS = 4
_MAX_HEADER_NUMBER = 2**32 - 1  # llama.cpp holds layer counts, sizes and lengths in uint32

# ggml tensor types → (elements per block, bytes per block), from ggml's type traits.
GGML_BLOCKS = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    9: (32, 36),  # Q8_1
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    30: (1, 2),  # BF16
}

# llama_ftype (general.file_type) → the quantization name people use.
FILE_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
}


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    size: int
    arch: str
    name: str
    n_layers: int
    n_params: int
    quant: str
    tensor_bytes: int
    has_chat_template: bool
    # What the advisor's physical model needs (0 where the header does not say).
    n_embd: int = 0
    n_head: int = 0
    n_head_kv: int = 0
    head_dim: int = 0
    n_ctx_train: int = 0
    n_vocab: int = 0
    decode_bytes: int = 0  # weight bytes read once per decode step (every tensor but the embedding lookup)
    layer_bytes: int = 0  # bytes of the repeating blocks (what gpu_layers moves)
    matmul_params: int = 0  # weights multiplied per token (2 FLOPs each)

    @property
    def kv_bytes_per_token(self) -> int:
        return kv_bytes_per_token(self.n_layers, self.n_head_kv, self.head_dim)

    @property
    def bits_per_weight(self) -> float:
        """Bits of tensor data per parameter, as llama.cpp reports it (header excluded)."""
        return 8 * self.tensor_bytes / self.n_params if self.n_params else 0.0


class _Reader:
    def __init__(self, fh: BinaryIO, path: Path, size: int):
        self.fh, self.path, self.size = fh, path, size

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        raw = self.fh.read(size)
        if len(raw) < size:
            raise UserError(f"{self.path}: GGUF header is truncated; download the file again")
        return struct.unpack(fmt, raw)[0]

    def expect(self, nbytes: int, what: str) -> None:
        """Refuse a length the rest of the file cannot hold before reading (and allocating) it."""
        at = self.fh.tell()
        if nbytes > self.size - at:
            raise UserError(f"{self.path}: GGUF header is truncated or damaged ({what} at byte {at}, only "
                            f"{self.size - at} bytes left); download the file again")

    def damaged(self, what: str) -> UserError:
        return UserError(f"{self.path}: {what}; the file is damaged or not GGUF")

    def string(self) -> str:
        length = self.take("<Q")
        self.expect(length, f"a string of {length} bytes")
        return self.fh.read(length).decode("utf-8", errors="replace")

    def value(self, vtype: int):
        if vtype in _SCALAR_FORMATS:
            return self.take(_SCALAR_FORMATS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            self.skip_array()
            return None
        raise self.damaged(f"unknown GGUF value type {vtype}")

    def skip_array(self) -> None:
        """The reader needs no array's values (a per-layer number reads as missing)."""
        item_type, count = self.take("<I"), self.take("<Q")
        if item_type == _STRING:
            self.expect(count * 8, f"an array of {count} strings")  # each string is at least its 8-byte length
            for _ in range(count):
                self.string()
        elif item_type in _SCALAR_FORMATS:
            nbytes = count * struct.calcsize(_SCALAR_FORMATS[item_type])
            self.expect(nbytes, f"an array of {count} numbers")
            self.fh.seek(nbytes, 1)
        elif item_type == _ARRAY:  # llama.cpp refuses them too; following them would recurse without bound
            raise self.damaged("a GGUF array of arrays, which llama.cpp cannot load")
        else:
            raise self.damaged(f"unknown GGUF value type {item_type}")

    def tensor_info(self) -> tuple[str, list[int], int, int]:
        """Name, dimensions, ggml type and data offset of one tensor."""
        name, n_dims = self.string(), self.take("<I")
        if n_dims > GGML_MAX_DIMS:
            raise self.damaged(f"a tensor of {n_dims} dimensions (ggml allows {GGML_MAX_DIMS})")
        dims = [self.take("<Q") for _ in range(n_dims)]
        return name, dims, self.take("<I"), self.take("<Q")


KV_BYTES_PER_VALUE = 2  # llama.cpp's default KV cache type is F16


def kv_bytes_per_token(n_layers: int, n_head_kv: int, head_dim: int) -> int:
    """K and V of one token in every layer (0 when the header did not give the attention shape)."""
    return 2 * n_layers * n_head_kv * head_dim * KV_BYTES_PER_VALUE


def read_gguf(path: str | Path) -> GGUFInfo:
    """Parse the header and tensor table; raise UserError for missing, foreign or truncated files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found; check the path or run `energytui models fetch`")
    try:
        return _read_header(path)
    except OSError as exc:  # unreadable (EACCES, EIO): the header reader's own errors are UserErrors
        raise UserError(f"{path}: cannot read the model ({exc.strerror or exc}); check its permissions") from None


def _read_header(path: Path) -> GGUFInfo:
    size = path.stat().st_size
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise UserError(f"{path}: not a GGUF file (bad magic); give a llama.cpp .gguf model")
        reader = _Reader(fh, path, size)
        version = reader.take("<I")
        if version < 2:
            raise UserError(f"{path}: GGUF version {version} is too old for llama.cpp; convert the model again")
        if version > GGUF_NEWEST:
            raise UserError(f"{path}: GGUF version {version} is newer than this reader knows (2–{GGUF_NEWEST}); "
                            "update energytui and llama-cpp-python, or convert the model with this llama.cpp")
        n_tensors, n_kv = reader.take("<Q"), reader.take("<Q")
        meta = {}
        for _ in range(n_kv):
            key = reader.string()
            meta[key] = reader.value(reader.take("<I"))
        tensors = [reader.tensor_info() for _ in range(n_tensors)]
        if n_tensors == 0:
            raise UserError(f"{path}: a GGUF header with no tensors, not a model; give a llama.cpp .gguf model")
        alignment = _header_number(path, meta, "general.alignment") or 32
        data_start = -(-fh.tell() // alignment) * alignment
    return _summarise(path, size, meta, tensors, data_start)


def _summarise(path: Path, size: int, meta: dict, tensors: list, data_start: int) -> GGUFInfo:
    arch = _header_text(path, meta, "general.architecture", "unknown")
    n_params, tensor_bytes, data_end = 0, 0, data_start
    sizes: dict[str, tuple[int, int, list]] = {}  # name -> (elements, bytes, dims)
    for name, dims, ggml_type, offset in tensors:
        elements = prod(dims)
        n_params += elements
        block = GGML_BLOCKS.get(ggml_type)
        nbytes = elements // block[0] * block[1] if block else 0
        tensor_bytes += nbytes
        sizes[name] = (elements, nbytes, dims)
        data_end = max(data_end, data_start + offset + nbytes)
    if size < data_end:
        raise UserError(f"{path}: truncated ({size} of {data_end} bytes); download it again")
    file_type = meta.get("general.file_type")
    # A type the table lacks, or a header without one, is named as it reads: "ftype99", "ftypeNone".
    quant = (FILE_TYPE_NAMES.get(file_type) if isinstance(file_type, int) else None) or f"ftype{file_type}"
    shape = _shape(path, arch, meta, sizes)
    return GGUFInfo(
        path=path,
        size=size,
        arch=arch,
        name=_header_text(path, meta, "general.name", path.stem),
        n_layers=_header_number(path, meta, f"{arch}.block_count"),
        n_params=n_params,
        quant=quant,
        tensor_bytes=tensor_bytes or size - data_start,
        has_chat_template="tokenizer.chat_template" in meta,
        **shape,
    )


def _header_text(path: Path, meta: dict, key: str, missing: str) -> str:
    """A name from the header (`missing` when absent); a number there means a damaged or foreign file."""
    value = meta.get(key, missing)
    if not isinstance(value, str):
        raise UserError(f"{path}: header key {key} is {str(value)[:40]}, not text; the file is damaged or not a "
                        "llama.cpp model")
    return value


def _header_number(path: Path, meta: dict, key: str) -> int:
    """A count or size from the header, 0 when missing (or a per-layer array, which the reader skips); anything
    but a whole number llama.cpp can hold means a damaged or foreign file."""
    value = meta.get(key)
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():  # a float type holding a whole number is still one
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_HEADER_NUMBER:
        raise UserError(f"{path}: header key {key} is {reprlib.repr(value)}, not a whole number from 0 to "
                        f"{_MAX_HEADER_NUMBER}; the file is damaged or not a llama.cpp model")
    return value


def _shape(path: Path, arch: str, meta: dict, sizes: dict[str, tuple[int, int, list]]) -> dict:
    """Attention shape, trained context and the bytes and FLOPs one token costs.

    A decode step reads every weight once except the token embedding, of which it reads one
    row per token; a model without `output.weight` reuses the embedding as its output
    matrix and so reads it whole. Matrices (2-D tensors) cost 2 FLOPs per weight per token.
    """
    def number(key: str) -> int:
        return _header_number(path, meta, f"{arch}.{key}")

    n_embd, n_head = number("embedding_length"), number("attention.head_count")
    n_head_kv = number("attention.head_count_kv") or n_head
    head_dim = number("attention.key_length") or (n_embd // n_head if n_head else 0)
    tied = "output.weight" not in sizes
    embed = sizes.get("token_embd.weight", (0, 0, [0, 0]))
    decode_bytes = sum(nbytes for name, (_e, nbytes, _d) in sizes.items() if name != "token_embd.weight")
    matmul = sum(elements for name, (elements, _b, dims) in sizes.items()
                 if len(dims) >= 2 and name != "token_embd.weight")
    if tied:
        decode_bytes += embed[1]
        matmul += embed[0]
    return {
        "n_embd": n_embd, "n_head": n_head, "n_head_kv": n_head_kv, "head_dim": head_dim,
        "n_ctx_train": number("context_length"),
        "n_vocab": number("vocab_size") or (embed[2][-1] if len(embed[2]) > 1 else 0),
        "decode_bytes": decode_bytes,
        "layer_bytes": sum(nbytes for name, (_e, nbytes, _d) in sizes.items() if name.startswith("blk.")),
        "matmul_params": matmul,
    }
