"""datatrove's tokenized-file format (what nanotron trains from), written by datatrove's own ``TokenizedFile``.

``<name>.ds`` holds the token ids back to back (uint16, or uint32 past 65,536 ids), ``<name>.ds.index`` the
document ends in tokens (uint64), ``<name>.ds.metadata`` the tokenizer name, token size and count. Documents
are written in the order given: the stage already orders them by a seeded hash, which is the shuffle
datatrove's ``DocumentTokenizer`` would do.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from datatrove.pipeline.tokens.tokenizer import TokenizedFile

from stackv2.atomic import temp_path


class DatatroveWriter:
    """Streams documents into ``<folder>/<name>.ds`` (+ ``.index``, ``.metadata``); files appear on ``close``."""

    def __init__(self, folder: str | Path, name: str, dtype: np.dtype, tokenizer_name: str):
        self.folder = Path(folder)
        self.name = f"{name}.ds"
        self._tmp = temp_path(self.folder / name)
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(parents=True)
        self.dtype = np.dtype(dtype)
        self._file = TokenizedFile(
            str(self._tmp), self.name, save_index=True, save_final_metadata=True,
            tokenizer_name_or_path=tokenizer_name, token_size=self.dtype.itemsize,
        )  # fmt: skip

    def add(self, ids: np.ndarray) -> None:
        self._file.write_bytes(np.ascontiguousarray(ids, dtype=self.dtype.newbyteorder("<")).tobytes())

    def close(self) -> None:
        self._file.close()
        for f in self._tmp.iterdir():
            os.replace(f, self.folder / f.name)
        self._tmp.rmdir()
