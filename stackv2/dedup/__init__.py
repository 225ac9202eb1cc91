"""Exact and near deduplication (docs/spec.md §6): shingles, MinHash signatures, LSH bands, ranking rules.

Everything here is pure Python/numpy; ``pipelines/stages/dedup.py`` runs it on Spark (bands grouped by a shuffle,
connected components in ``pipelines/components.py``). The defaults are BigCode's ``intra_dedup.py`` values.
"""

from __future__ import annotations

#: Reject reasons of the ``dedup`` stage.
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"
REASONS = (EXACT_DUPLICATE, NEAR_DUPLICATE)
