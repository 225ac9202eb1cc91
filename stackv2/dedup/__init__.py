"""Exact and near deduplication (docs/spec.md §6): shingles, MinHash signatures, LSH bands, ranking rules.

Everything here is pure Python/numpy; ``pipelines/stages/exact_dedup.py`` and ``near_dedup.py`` run it on Spark
(bands grouped by a shuffle, connected components in ``pipelines/components.py``). The defaults are BigCode's
``intra_dedup.py`` values.
"""

from __future__ import annotations

from stackv2.detect.license import NON_PERMISSIVE as NON_PERMISSIVE  # the reason is the license type's name

#: Reject reasons of stage ``exact_dedup``: another copy of the blob was kept; a copyleft or commercial license
#: (docs/spec.md §3.4); no language go-enry knows (BigCode published no folder for those).
EXACT_DUPLICATE = "exact_duplicate"
NO_LANGUAGE = "no_language"
#: Reject reason of stage ``near_dedup``.
NEAR_DUPLICATE = "near_duplicate"
