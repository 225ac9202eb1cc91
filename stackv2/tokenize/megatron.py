"""Megatron-LM indexed datasets (``.bin`` + ``.idx``, the ``MMIDIDX`` mmap format Megatron and NeMo read).

Layout of the ``.idx`` (little-endian), as ``megatron/core/datasets/indexed_dataset.py: _IndexWriter`` writes it:
``b"MMIDIDX\\x00\\x00"`` | version u64 = 1 | dtype code u8 | sequence count u64 | document count u64 |
sequence lengths int32[sequences] | sequence byte offsets int64[sequences] | document indices
int64[documents] (``[0, …]``: the sequence index range ``[d[i], d[i+1])`` of each document). The ``.bin`` is the
token ids back to back. We write one sequence per document (a repository ending in ``<|endoftext|>``), so the
document indices are ``0..n``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from stackv2.atomic import temp_path

INDEX_HEADER = b"MMIDIDX\x00\x00"
VERSION = 1
#: Megatron's ``DType`` codes.
DTYPE_CODES = {
    np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
    np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7, np.dtype(np.uint16): 8,
}  # fmt: skip
_CODE_DTYPES = {v: k for k, v in DTYPE_CODES.items()}


class MegatronWriter:
    """Streams documents into ``<prefix>.bin``; ``close`` writes ``<prefix>.idx``. Both appear atomically."""

    def __init__(self, prefix: str | Path, dtype: np.dtype):
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        self._tmp_bin = temp_path(f"{self.prefix}.bin")
        self._bin = open(self._tmp_bin, "wb")  # noqa: SIM115 - closed in close()
        self.lengths: list[int] = []

    def add(self, ids: np.ndarray) -> None:
        self._bin.write(np.ascontiguousarray(ids, dtype=self.dtype).tobytes())
        self.lengths.append(len(ids))

    def close(self) -> None:
        self._bin.close()
        lengths = np.asarray(self.lengths, dtype=np.int64)
        pointers = np.concatenate([[0], np.cumsum(lengths[:-1]) * self.dtype.itemsize]).astype(np.int64)
        documents = np.arange(len(lengths) + 1, dtype=np.int64)
        tmp_idx = temp_path(f"{self.prefix}.idx")
        with open(tmp_idx, "wb") as f:
            f.write(INDEX_HEADER)
            f.write(struct.pack("<QBQQ", VERSION, DTYPE_CODES[self.dtype], len(lengths), len(documents)))
            f.write(lengths.astype("<i4").tobytes())
            f.write(pointers[: len(lengths)].astype("<i8").tobytes())
            f.write(documents.astype("<i8").tobytes())
        os.replace(self._tmp_bin, f"{self.prefix}.bin")
        os.replace(tmp_idx, f"{self.prefix}.idx")

    def __enter__(self) -> MegatronWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._bin.close()
            self._tmp_bin.unlink(missing_ok=True)


def read_index(index: bytes | np.ndarray, where: str) -> tuple[np.dtype, np.ndarray, np.ndarray, np.ndarray]:
    """An ``.idx`` file's contents (bytes or a memory map) -> (token dtype, sequence lengths, sequence byte offsets,
    document indices), the arrays views of ``index``."""
    head = bytes(index[: len(INDEX_HEADER) + 25])
    if head[: len(INDEX_HEADER)] != INDEX_HEADER:
        raise ValueError(f"{where}: not a Megatron MMIDIDX index")
    version, code, n_seq, n_doc = struct.unpack("<QBQQ", head[len(INDEX_HEADER) :])
    if version != VERSION:
        raise ValueError(f"{where}: index version {version}, expected {VERSION}")
    offset = len(head)
    lengths = np.frombuffer(index, dtype="<i4", count=n_seq, offset=offset)
    offset += lengths.nbytes
    pointers = np.frombuffer(index, dtype="<i8", count=n_seq, offset=offset)
    offset += pointers.nbytes
    return _CODE_DTYPES[code], lengths, pointers, np.frombuffer(index, dtype="<i8", count=n_doc, offset=offset)


class MegatronReader:
    """Memory-maps ``<prefix>.idx``/``.bin``; ``reader[i]`` is sequence ``i``'s token ids (a read-only view)."""

    def __init__(self, prefix: str | Path):
        idx_path = f"{prefix}.idx"
        idx = np.memmap(idx_path, mode="r", dtype=np.uint8)
        self.dtype, self.sequence_lengths, self.sequence_pointers, self.document_indices = read_index(idx, idx_path)
        size = os.path.getsize(f"{prefix}.bin")
        self._bin = np.memmap(f"{prefix}.bin", mode="r", dtype=np.uint8) if size else np.zeros(0, np.uint8)

    def __len__(self) -> int:
        return len(self.sequence_lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        return np.frombuffer(
            self._bin, dtype=self.dtype, count=int(self.sequence_lengths[i]), offset=int(self.sequence_pointers[i])
        )

    @property
    def num_tokens(self) -> int:
        return int(self.sequence_lengths.sum())
