"""Arrow adapters of the dedup stage (``mapInArrow``): LSH band keys, packed shingle sets, pair Jaccard.

The permutation family is drawn once per partition; each Arrow batch is shingled row by row (Python string work)
and hashed in one vectorized numpy pass over all of its shingles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from stackv2 import schema
from stackv2.dedup import DedupConfig
from stackv2.dedup.lsh import band_keys
from stackv2.dedup.minhash import jaccard, make_hasher
from stackv2.dedup.shingle import shingle_hashes

ArrowMap = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


def _hash_sets(batch: pa.RecordBatch, cfg: DedupConfig) -> list[np.ndarray]:
    return [shingle_hashes(c or "", cfg.ngram_size, cfg.min_length) for c in batch.column("content").to_pylist()]


def lsh_bands(cfg: DedupConfig) -> ArrowMap:
    """(blob_id, language, content) batches -> ``schema.DEDUP_BANDS`` rows; files too short to compare get none."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        hasher = make_hasher(cfg.engine, cfg.num_perm, cfg.seed, cfg.mod_prime)
        width = cfg.rows * 4
        for batch in batches:
            sets = _hash_sets(batch, cfg)
            keep = np.flatnonzero([len(s) > 0 for s in sets])
            if len(keep) == 0:
                continue
            keys = band_keys(hasher.signatures([sets[i] for i in keep]), cfg.bands, cfg.rows)
            rows = np.repeat(keep, cfg.bands)
            key_arr = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(width), len(rows), [None, pa.py_buffer(keys.tobytes())]
            )
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("blob_id").take(rows),
                    batch.column("language").take(rows),
                    pa.array(np.tile(np.arange(cfg.bands, dtype=np.int32), len(keep))),
                    key_arr.cast(pa.binary()),
                ],
                schema=schema.DEDUP_BANDS,
            )

    return run


def packed_shingles(cfg: DedupConfig) -> ArrowMap:
    """(blob_id, content) batches -> ``schema.DEDUP_SHINGLES``: sorted distinct shingle hashes as uint32 bytes."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            packed = [s.astype("<u4").tobytes() for s in _hash_sets(batch, cfg)]
            yield pa.RecordBatch.from_arrays(
                [batch.column("blob_id"), pa.array(packed, type=pa.binary())], schema=schema.DEDUP_SHINGLES
            )

    return run


def _unpack(packed: bytes) -> np.ndarray:
    return np.frombuffer(packed, dtype="<u4")


def pair_jaccard(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """(src, dst, src_shingles, dst_shingles) batches -> ``schema.DEDUP_PAIRS`` with the exact Jaccard."""
    for batch in batches:
        a = batch.column("src_shingles").to_pylist()
        b = batch.column("dst_shingles").to_pylist()
        sims = [jaccard(_unpack(x), _unpack(y)) for x, y in zip(a, b, strict=True)]
        yield pa.RecordBatch.from_arrays(
            [batch.column("src"), batch.column("dst"), pa.array(sims, type=pa.float64())], schema=schema.DEDUP_PAIRS
        )
