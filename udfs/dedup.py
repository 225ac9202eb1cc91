"""Arrow adapters of the dedup stage: LSH band keys (``mapInArrow``), exact verification of one candidate
component (``applyInArrow``).

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
from stackv2.dedup import DedupConfig
from stackv2.dedup.lsh import band_keys
from stackv2.dedup.minhash import MinHasher, RensaHasher, make_hasher
from stackv2.dedup.shingle import shingle_hash_sets
from stackv2.dedup.verify import verified_clusters

ArrowMap = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


def _hash_sets(batch: pa.RecordBatch | pa.Table, cfg: DedupConfig) -> list[np.ndarray]:
    """Shingle hashes of every row, the whole batch in one call (a null content counts as empty)."""
    return shingle_hash_sets(batch.column("content").to_pylist(), cfg.ngram_size, cfg.min_length)


@functools.cache
def _hasher(cfg: DedupConfig) -> MinHasher | RensaHasher:
    """One permutation family per Python worker (Spark reuses workers across tasks)."""
    return make_hasher(cfg.engine, cfg.num_perm, cfg.seed, cfg.mod_prime)


def lsh_bands(cfg: DedupConfig) -> ArrowMap:
    """(blob_id, language, content) batches -> ``schema.DEDUP_BANDS`` rows; files too short to compare get none."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        hasher = _hasher(cfg)
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


def verify_component(cfg: DedupConfig) -> Callable[[pa.Table], pa.Table]:
    """``applyInArrow`` over one LSH component (node, content): ``schema.DEDUP_VERIFIED`` for its members that
    keep a verified pair, labelled by their verified cluster (``stackv2.dedup.verify``)."""

    def run(table: pa.Table) -> pa.Table:
        ids = table.column("node").to_pylist()
        sets = _hash_sets(table, cfg)
        keys = band_keys(_hasher(cfg).signatures(sets), cfg.bands, cfg.rows)
        labels = verified_clusters(ids, sets, keys, cfg.threshold)
        kept = [i for i, label in enumerate(labels) if label is not None]
        return pa.Table.from_pydict({"node": [ids[i] for i in kept], "component": [labels[i] for i in kept]},
                                    schema=schema.DEDUP_VERIFIED)

    return run
