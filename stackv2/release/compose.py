"""The training sets' composition (docs/spec.md §5.5): which languages are capped and how, and smol's languages.

BigCode's composition code is not released; the paper gives the caps (Java and JavaScript 200 GB, HTML 100 GB,
JSON/XML/YAML 8 GB) and calls the rest "subsampled". Ours: above a cap, each (repository, language) group is kept
with probability cap / bytes of the language, decided by a seeded hash of the group, so a repository keeps all or
none of its files of that language (its documents stay whole), the result is about the cap, and the choice needs
no ordering of the whole language (one aggregation, then a filter). Rows not kept are rejected ``subsampled``.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Reject reason of stage ``compose``: the row's (repository, language) group fell outside its language's cap.
SUBSAMPLED = "subsampled"


def keep_rates(bytes_by_language: Mapping[str | None, int], caps: Mapping[str, int]) -> dict[str, float]:
    """The share of each capped language's bytes to keep: cap / bytes when over the cap (languages absent or
    under their cap are not listed: everything is kept)."""
    return {
        lang: caps[lang] / total
        for lang, total in sorted((k, v) for k, v in bytes_by_language.items() if k is not None)
        if lang in caps and total > caps[lang]
    }
