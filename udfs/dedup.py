"""Arrow adapters of the dedup stage: file sketches (``mapInArrow``: band keys, and shingle hashes for
verification), exact verification of one candidate component (``applyInArrow``).

The permutation family is drawn once per Python worker; each Arrow batch is shingled in one call
(``stackv2.dedup.shingle``) and all of its shingles go through the signature engine in another
(``stackv2.dedup.minhash``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from stackv2 import schema
from stackv2.dedup.config import SHORT_UNIQUE, DedupConfig
from stackv2.dedup.lsh import band_keys
from stackv2.dedup.minhash import MinHasher, RensaHasher, make_hasher
from stackv2.dedup.shingle import shingle_hash_batch
from stackv2.dedup.verify import verified_clusters

ArrowMap = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


@functools.cache
def _hasher(cfg: DedupConfig) -> MinHasher | RensaHasher:
    """One permutation family per Python worker (Spark reuses workers across tasks)."""
    return make_hasher(cfg)


#: Shingle hashes per output batch: Arrow binary offsets are int32 bytes.
_MAX_BATCH_HASHES = (2**31 - 1) // 4


def lsh_sketches(cfg: DedupConfig) -> ArrowMap:
    """(blob_id, language, content) batches -> ``schema.DEDUP_SKETCHES`` rows: the band keys of each file and,
    with ``near_dedup.verify``, its shingle hashes (verification then needs neither the content nor another
    shingling pass); files too short to compare get no row unless ``short_files`` clusters them."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        hasher = _hasher(cfg)
        for batch in batches:
            contents = batch.column("content").to_pylist()
            # Verification compares sorted sets; a signature needs each file's distinct hashes in any order.
            flat, offsets = shingle_hash_batch(contents, cfg.ngram_size, cfg.min_length, ordered=cfg.verify)
            # A short file has no hashes: it gets no row, or BigCode's all-max signature (``short_files``).
            keep = (
                np.flatnonzero(np.diff(offsets) > 0) if cfg.short_files == SHORT_UNIQUE else np.arange(batch.num_rows)
            )
            # The rows left out hold no hashes: the kept rows' hashes are consecutive runs of ``flat``.
            bounds = np.append(offsets[keep], offsets[-1])
            for lo, hi in _row_runs(bounds, _MAX_BATCH_HASHES if cfg.verify else len(flat) + 1):
                hashes, ends = flat[bounds[lo] : bounds[hi]], bounds[lo : hi + 1] - bounds[lo]
                keys = band_keys(hasher.packed_signatures(hashes, ends), cfg.bands, cfg.rows)
                yield _sketch_batch(batch, keep[lo:hi], keys, hashes if cfg.verify else None, ends)

    return run


def _row_runs(bounds: np.ndarray, limit: int) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges ``[lo, hi)`` holding at most ``limit`` hashes each (row ``i`` holds
    ``bounds[i + 1] - bounds[i]``)."""
    lo = 0
    while lo < len(bounds) - 1:
        hi = int(np.searchsorted(bounds, bounds[lo] + limit, side="right")) - 1
        if hi == lo:
            raise ValueError(f"a file has more than {limit:,} distinct shingles; cap file sizes before dedup")
        yield lo, hi
        lo = hi


def _sketch_batch(
    batch: pa.RecordBatch, rows: np.ndarray, keys: np.ndarray, flat: np.ndarray | None, offsets: np.ndarray
) -> pa.RecordBatch:
    n, bands = keys.shape
    key_values = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(keys.dtype.itemsize), n * bands, [None, pa.py_buffer(keys.tobytes())]
    ).cast(pa.binary())
    shingles = (
        pa.nulls(n, pa.binary())
        if flat is None
        else pa.BinaryArray.from_buffers(
            pa.binary(), n, [None, pa.py_buffer((offsets * 4).astype(np.int32)), pa.py_buffer(flat.astype("<u4"))]
        )
    )
    return pa.RecordBatch.from_arrays(
        [
            batch.column("blob_id").take(rows),
            batch.column("language").take(rows),
            pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * bands, bands, dtype=np.int32)), key_values),
            shingles,
        ],
        schema=schema.DEDUP_SKETCHES,
    )


def _binary_values(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets from 0) of a binary array without nulls, without copying."""
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data, offsets.astype(np.int64) - offsets[0]


def verify_component(cfg: DedupConfig) -> Callable[[pa.Table], pa.Table]:
    """``applyInArrow`` over one LSH component (node, keys, shingles of ``schema.DEDUP_SKETCHES``):
    ``schema.DEDUP_VERIFIED`` for its members that keep a verified pair, labelled by their verified cluster
    (``stackv2.dedup.verify``)."""

    def run(table: pa.Table) -> pa.Table:
        ids = table.column("node").to_pylist()
        key_bytes, _ = _binary_values(table.column("keys").combine_chunks().flatten())
        keys = key_bytes.view(np.dtype((np.void, cfg.rows * 4))).reshape(len(ids), cfg.bands)
        shingle_bytes, offsets = _binary_values(table.column("shingles"))
        labels = verified_clusters(ids, shingle_bytes.view("<u4"), offsets // 4, keys, cfg.threshold)
        kept = [i for i, label in enumerate(labels) if label is not None]
        return pa.Table.from_pydict(
            {"node": [ids[i] for i in kept], "component": [labels[i] for i in kept]}, schema=schema.DEDUP_VERIFIED
        )

    return run
