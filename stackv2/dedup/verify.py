"""Exact verification of LSH candidates (``dedup.verify``): clusters made only of truly similar pairs.

LSH puts files in the same bucket when one band of their signatures matches; that catches most pairs above the
threshold but also some below it, and chaining through a few of those merges unrelated files. Verification keeps
a candidate pair only when the exact Jaccard of the two shingle sets reaches the threshold, and the clusters are
the connected components of the kept pairs.

Every pair sharing a bucket is a candidate, not just each member and the bucket's smallest file: checking only
those star links drops a member whose closest neighbours are not the bucket minimum (on the benchmark, recall
0.923 with star links vs 0.973 with every bucket pair, at 56k vs 66k Jaccard computations; docs/dedup.md). Pairs
already joined through earlier pairs are skipped, so the work stays near one check per member and bucket.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stackv2.dedup.minhash import jaccard


class DisjointSets:
    """Union-find over ``0 .. n-1``; a set's root is its smallest member (path halving, union by minimum)."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        self.parent[max(ra, rb)] = min(ra, rb)


def verified_clusters(ids: Sequence[str], hash_sets: Sequence[np.ndarray], keys: np.ndarray,
                      threshold: float) -> list[str | None]:
    """Cluster label of each file: the smallest id of its component in the graph of pairs that share an LSH
    bucket and have an exact Jaccard >= ``threshold``; None for a file with no such pair.

    ``keys`` is the ``(n, bands)`` band-key matrix of ``lsh.band_keys``; files with an empty shingle set are never
    paired. The result depends only on the inputs as a set (not on their order).
    """
    n = len(ids)
    joined = DisjointSets(n)
    order = sorted(range(n), key=ids.__getitem__)
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for i in order:
        if len(hash_sets[i]):
            for band, key in enumerate(keys[i]):
                buckets.setdefault((band, key.tobytes()), []).append(i)
    rejected: set[tuple[int, int]] = set()
    for members in buckets.values():
        for pos, i in enumerate(members):
            for j in members[:pos]:
                if joined.find(i) == joined.find(j) or (j, i) in rejected:
                    continue
                if jaccard(hash_sets[i], hash_sets[j]) >= threshold:
                    joined.union(i, j)
                else:
                    rejected.add((j, i))
    roots = [joined.find(i) for i in range(n)]
    label: dict[int, str] = {}
    size: dict[int, int] = {}
    for i, r in enumerate(roots):
        size[r] = size.get(r, 0) + 1
        label[r] = min(label.get(r, ids[i]), ids[i])
    return [label[r] if size[r] > 1 else None for r in roots]
