"""Exact ground truth and scoring for the near-dedup benchmark.

Truth: every pair of documents whose 5-gram shingle sets (the paper's tokenization, ``stackv2.dedup.shingle``)
have an exact Jaccard similarity >= 0.7. Shingles are hashed to 64 bits (xxh3) so hash collisions are not a
source of error. All pairs are found exactly with prefix filtering: with tokens ordered rarest first, two sets
with Jaccard >= t share a token within their first ``|S| - ceil(t|S|) + 1`` tokens, so only pairs sharing a
prefix token are candidates, and every candidate is verified by an exact intersection.

Scores (``score``): pairwise precision/recall/F1 of the clusterings (two documents form a predicted pair when a
system puts them in one cluster, a true pair when they are in one connected component of the truth graph), and
F1 of the per-document "is a near-duplicate" flag.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import xxhash

from stackv2.dedup.shingle import shingles


def shingle_sets(contents: list[str], ngram_size: int = 5, min_length: int = 5) -> list[np.ndarray]:
    return [
        np.unique(np.fromiter((xxhash.xxh3_64_intdigest(g) for g in grams), dtype=np.uint64, count=len(grams)))
        for grams in (shingles(c, ngram_size, min_length) for c in contents)
    ]


def true_pairs(sets: list[np.ndarray], threshold: float = 0.7) -> set[tuple[int, int]]:
    """All (i, j), i < j, with exact Jaccard(sets[i], sets[j]) >= threshold."""
    nonempty = [i for i, s in enumerate(sets) if len(s)]
    if not nonempty:
        return set()
    values, counts = np.unique(np.concatenate([sets[i] for i in nonempty]), return_counts=True)
    order = np.lexsort((values, counts))  # rarest first, ties by value
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    ranked = {i: np.sort(rank[np.searchsorted(values, sets[i])]) for i in nonempty}
    postings: dict[int, list[int]] = {}
    for i in nonempty:
        r = ranked[i]
        for tok in r[: len(r) - math.ceil(threshold * len(r)) + 1].tolist():
            postings.setdefault(tok, []).append(i)
    candidates: set[tuple[int, int]] = set()
    for docs in postings.values():
        for a in range(len(docs)):
            for b in range(a + 1, len(docs)):
                candidates.add((docs[a], docs[b]))
    pairs = set()
    for i, j in candidates:
        a, b = ranked[i], ranked[j]
        if min(len(a), len(b)) < threshold * max(len(a), len(b)):
            continue
        inter = len(np.intersect1d(a, b, assume_unique=True))
        if inter >= threshold * (len(a) + len(b) - inter):
            pairs.add((min(i, j), max(i, j)))
    return pairs


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


def components(n: int, pairs: set[tuple[int, int]]) -> list[int]:
    """Label of each of ``n`` documents: the smallest index of its connected component."""
    sets = DisjointSets(n)
    for i, j in pairs:
        sets.union(i, j)
    return [sets.find(i) for i in range(n)]


def _same_cluster_pairs(labels: list) -> int:
    return sum(c * (c - 1) // 2 for c in Counter(labels).values())


def score(truth_labels: list[int], predicted: dict[int, object]) -> dict[str, float]:
    """``predicted``: document index -> cluster label, for documents in clusters of 2+ (others are singletons)."""
    n = len(truth_labels)
    pred = [predicted.get(i, ("single", i)) for i in range(n)]
    tp = _same_cluster_pairs(list(zip(truth_labels, pred, strict=True)))
    n_pred, n_true = _same_cluster_pairs(pred), _same_cluster_pairs(truth_labels)
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_true if n_true else 1.0
    true_dup = {i for i, c in Counter(truth_labels).items() if c > 1}
    t_flag = {i for i in range(n) if truth_labels[i] in true_dup}
    p_counts = Counter(pred)
    p_flag = {i for i in range(n) if p_counts[pred[i]] > 1}
    both = len(t_flag & p_flag)
    doc_f1 = 2 * both / (len(t_flag) + len(p_flag)) if (t_flag or p_flag) else 1.0
    return {
        "pair_precision": round(precision, 4),
        "pair_recall": round(recall, 4),
        "pair_f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "doc_f1": round(doc_f1, 4),
        "pred_pairs": n_pred,
        "true_pairs": n_true,
    }
