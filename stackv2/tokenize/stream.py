"""The tokenization loop of one output shard: documents in, encoded in large batches, written to every format.

Batching by text size keeps ``encode_batch`` (which parallelises across cores within a call) busy while memory
stays bounded by ``TokenizeConfig.batch_bytes``; documents keep their input order, so the token files are a
function of the input order alone.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import groupby
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from stackv2.storage import Location, location
from stackv2.tokenize.config import DATATROVE, MEGATRON, TokenizeConfig
from stackv2.tokenize.datatrove_files import DatatroveWriter
from stackv2.tokenize.format import EOS, Document, FileChunk, Part, format_repo
from stackv2.tokenize.megatron import MegatronWriter
from stackv2.tokenize.tokenizer import DocumentEncoder, EncodedDocument


def encode_stream(
    docs: Iterable[Document], encoder: DocumentEncoder, batch_bytes: int
) -> Iterator[tuple[Document, EncodedDocument]]:
    batch: list[Document] = []
    size = 0
    for doc in docs:
        batch.append(doc)
        size += sum(len(p.text) for c in doc.chunks for p in c.parts)
        if size >= batch_bytes:
            yield from zip(batch, encoder.encode(batch), strict=True)
            batch, size = [], 0
    if batch:
        yield from zip(batch, encoder.encode(batch), strict=True)


class TokenSink:
    """One output shard: ``<out>/megatron/<name>.bin|.idx`` and/or ``<out>/datatrove/<name>.ds*``, each file appearing
    whole on ``close``. ``out`` may be a URI (``stackv2.storage``): the shard is then written to a local spool folder
    and each file uploaded on ``close``, one upload each (``discard`` drops the spool of a shard not finished)."""

    def __init__(
        self, out_dir: str | Path | Location, name: str, formats: Iterable[str], dtype: np.dtype, tokenizer_name: str
    ):
        self.out = location(out_dir)
        self._spool = None if self.out.is_local else Path(tempfile.mkdtemp(prefix="stackv2-tokens-"))
        out = self.out.local_path if self._spool is None else self._spool
        self.writers: list[MegatronWriter | DatatroveWriter] = []
        if MEGATRON in formats:
            (out / MEGATRON).mkdir(parents=True, exist_ok=True)
            self.writers.append(MegatronWriter(out / MEGATRON / name, dtype))
        if DATATROVE in formats:
            (out / DATATROVE).mkdir(parents=True, exist_ok=True)
            self.writers.append(DatatroveWriter(out / DATATROVE, name, dtype, tokenizer_name))
        self.documents = 0
        self.tokens = 0

    def add(self, ids: np.ndarray) -> int:
        """Write one document; returns its index in the shard."""
        for w in self.writers:
            w.add(ids)
        self.documents += 1
        self.tokens += len(ids)
        return self.documents - 1

    def close(self) -> None:
        for w in self.writers:
            w.close()
        if self._spool is not None:
            try:
                for f in sorted(p for p in self._spool.rglob("*") if p.is_file()):
                    (self.out / f.relative_to(self._spool).as_posix()).upload(f)
            finally:
                self.discard()

    def discard(self) -> None:
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)


#: Reason a release row is not tokenized (the release never has one; a hand-made input may).
MISSING_CONTENT = "missing_content"


class FileRow(NamedTuple):
    repo_name: str
    path: str
    blob_id: str
    language: str | None
    content: str


def shard_name(partition: int, notebooks: str | None = None) -> str:
    """``part-NNNNN`` holds repository documents; ``<product>-part-NNNNN`` one notebook product's documents."""
    return f"{notebooks}-part-{partition:05d}" if notebooks else f"part-{partition:05d}"


def holds_repositories(shard: str) -> bool:
    """Whether a shard (named by ``shard_name``) holds repository documents rather than notebooks."""
    return shard.startswith("part-")


def tokenize_shard(
    rows: Iterable[FileRow], encoder: DocumentEncoder, cfg: TokenizeConfig, sink: TokenSink, shard: str
) -> Iterator[dict[str, Any]]:
    """Rows grouped by repository (consecutive) -> one document per repository written to ``sink``.

    Yields one ``schema.TOKENIZED_FILES`` record per row, in document order.
    """
    pending: deque[list[FileRow]] = deque()

    def documents() -> Iterator[Document]:
        for repo_name, group in groupby(rows, key=lambda r: r.repo_name):
            files = list(group)
            pending.append(files)
            yield format_repo(repo_name, [(f.path, f.content) for f in files], cfg)

    for doc, enc in encode_stream(documents(), encoder, cfg.batch_bytes):
        files = pending.popleft()
        index = sink.add(enc.ids)
        for position, (chunk, n) in enumerate(zip(doc.chunks, enc.file_tokens, strict=True)):
            f = files[chunk.index]
            yield {
                "repo_name": f.repo_name,
                "path": f.path,
                "blob_id": f.blob_id,
                "language": f.language,
                "shard": shard,
                "document": index,
                "position": position,
                "tokens": n,
                "fim": chunk.fim,
                "metadata": doc.metadata,
            }


def tokenize_notebooks(
    rows: Iterable[tuple[FileRow, list[Part]]],
    encoder: DocumentEncoder,
    cfg: TokenizeConfig,
    sink: TokenSink,
    shard: str,
) -> Iterator[dict[str, Any]]:
    """One document per notebook (``stackv2.notebooks.format``: a script or structured parts, ending in EOS) written
    to ``sink``; yields one ``schema.TOKENIZED_FILES`` record per notebook, in document order."""
    pending: deque[FileRow] = deque()

    def documents() -> Iterator[Document]:
        for row, parts in rows:
            pending.append(row)
            body = tuple(parts[:-1] if parts and parts[-1] == Part(EOS, True) else parts)  # Document adds the EOS
            yield Document(row.repo_name, False, (), (FileChunk(0, None, body),))

    for _, enc in encode_stream(documents(), encoder, cfg.batch_bytes):
        row = pending.popleft()
        yield {
            "repo_name": row.repo_name,
            "path": row.path,
            "blob_id": row.blob_id,
            "language": row.language,
            "shard": shard,
            "document": sink.add(enc.ids),
            "position": 0,
            "tokens": len(enc.ids),
            "fim": None,
            "metadata": False,
        }
