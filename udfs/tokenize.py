"""Tokenize adapter: a ``mapInArrow`` function that turns one hash partition of release rows into one token shard.

The tokenizer is loaded once per partition. The shard is named after the partition index, which the stage
fixes by hash-partitioning on ``repo_name`` into ``spark.shuffle_partitions`` partitions, so the token files
do not depend on how the input was split. Writing is idempotent: a retried task rewrites the same bytes. The token
folder and the tokenizer may be local or URIs (``stackv2.storage``; ``TokenSink`` uploads each file whole).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain, islice

import pyarrow as pa
from pyspark import TaskContext

from stackv2.notebooks.format import script_document, structured_document
from stackv2.release.products import JUPYTER_STRUCTURED
from stackv2.schema import TOKENIZED_FILES
from stackv2.storage import location
from stackv2.tokenize.config import TokenizeConfig
from stackv2.tokenize.fast import make_encoder
from stackv2.tokenize.stream import FileRow, TokenSink, shard_name, tokenize_notebooks, tokenize_shard
from stackv2.tokenize.tokenizer import load_tokenizer

_OUT_ROWS = 4096


def _rows(batches: Iterator[pa.RecordBatch]) -> Iterator[FileRow]:
    for batch in batches:
        cols = [batch.column(name).to_pylist() for name in FileRow._fields]
        yield from map(FileRow._make, zip(*cols, strict=True))


def _into_shard(
    items: Iterator, name: str, tokenize: Callable, cfg: TokenizeConfig, tokenizer_path: str, out_dir: str
) -> Iterator[pa.RecordBatch]:
    """Tokenize one partition's ``items`` with ``tokenize`` (``tokenize_shard`` or ``tokenize_notebooks``) into the
    shard ``name``, yielding ``schema.TOKENIZED_FILES`` batches; an empty partition writes no shard."""
    first = next(items, None)
    if first is None:
        return
    encoder = make_encoder(load_tokenizer(tokenizer_path), cfg.engine, cfg.verify_bytes)
    sink = TokenSink(out_dir, name, cfg.formats, encoder.dtype, location(tokenizer_path).name)
    try:
        records = tokenize(chain([first], items), encoder, cfg, sink, name)
        while chunk := list(islice(records, _OUT_ROWS)):
            yield pa.RecordBatch.from_pylist(chunk, schema=TOKENIZED_FILES)
    except BaseException:
        sink.discard()
        raise
    sink.close()


def tokenize_partitions(
    cfg: TokenizeConfig, tokenizer_path: str, out_dir: str
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Batches of ``FileRow`` columns, sorted by document order -> batches of ``schema.TOKENIZED_FILES``."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        name = shard_name(TaskContext.get().partitionId())
        yield from _into_shard(_rows(batches), name, tokenize_shard, cfg, tokenizer_path, out_dir)

    return run


def tokenize_notebook_partitions(
    cfg: TokenizeConfig, tokenizer_path: str, out_dir: str, product: str
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Batches of notebook rows (``FileRow`` columns, ``content`` the script; ``cells`` for the structured form) ->
    one token shard per partition, ``<product>-part-NNNNN``, of one document per notebook in StarCoder2's form for
    ``product`` (``jupyter-scripts`` or ``jupyter-structured``)."""

    def documents(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[FileRow, list]]:
        for batch in batches:
            cells = batch.column("cells").to_pylist() if product == JUPYTER_STRUCTURED else None
            for i, row in enumerate(_rows(iter([batch]))):
                if cells is None:
                    yield row, script_document(row.content)
                else:
                    yield row, structured_document((c["kind"], c["text"]) for c in cells[i])

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        name = shard_name(TaskContext.get().partitionId(), product)
        yield from _into_shard(documents(batches), name, tokenize_notebooks, cfg, tokenizer_path, out_dir)

    return run
