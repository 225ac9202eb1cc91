"""CPU of the near-dedup band pass over real stage rows: shingling (sorted or first-seen distinct sets), signatures
and band keys, with a digest of the keys (docs/dedup.md, "Decisions").

    .venv/bin/python -m bench.dedup.sketch_parts --input /tmp/s32/w-b200-new/exact_dedup/data --parts 8

Reads the ``content`` of the first ``--parts`` Parquet files of ``--input`` (a scale run's ``exact_dedup`` output
is what ``near_dedup`` reads) in batches of 10,000 rows, as the stage's Arrow batches; then, in turn and twice,
runs ``udfs.dedup.lsh_sketches``' steps with ``ordered`` sets (what verification needs) and without.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from stackv2.dedup.config import DedupConfig
from stackv2.dedup.lsh import band_keys
from stackv2.dedup.minhash import make_hasher
from stackv2.dedup.shingle import shingle_hash_batch


def band_pass(batches: list[list[str | None]], cfg: DedupConfig, ordered: bool) -> tuple[float, float, str]:
    """(CPU s shingling, CPU s signatures and band keys, digest of the keys)."""
    hasher, clock = make_hasher(cfg), time.process_time
    shingling = signing = 0.0
    digest = hashlib.sha256()
    for contents in batches:
        t = clock()
        flat, offsets = shingle_hash_batch(contents, cfg.ngram_size, cfg.min_length, ordered=ordered)
        u = clock()
        keep = np.flatnonzero(np.diff(offsets) > 0)
        bounds = np.append(offsets[keep], offsets[-1])
        signatures = hasher.packed_signatures(flat[bounds[0] : bounds[-1]], bounds - bounds[0])
        digest.update(band_keys(signatures, cfg.bands, cfg.rows).tobytes())
        shingling, signing = shingling + u - t, signing + clock() - u
    return shingling, signing, digest.hexdigest()[:16]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, required=True, help="a folder of Parquet files with a content column")
    p.add_argument("--parts", type=int, default=8)
    args = p.parse_args()
    cfg = DedupConfig()
    batches = []
    for path in sorted(args.input.glob("*.parquet"))[: args.parts]:
        for batch in pq.read_table(path, columns=["content"]).to_batches(max_chunksize=10_000):
            batches.append(batch.column("content").to_pylist())
    for ordered in (True, False):  # the kernels compiled or loaded from numba's cache before timing
        shingle_hash_batch(batches[0][:10], cfg.ngram_size, cfg.min_length, ordered=ordered)
    print(f"{sum(map(len, batches)):,} rows")
    for _ in range(2):
        for ordered in (True, False):
            shingling, signing, digest = band_pass(batches, cfg, ordered)
            print(f"ordered={ordered}: shingles {shingling:.2f} s, signatures + keys {signing:.2f} s, digest {digest}")


if __name__ == "__main__":
    main()
