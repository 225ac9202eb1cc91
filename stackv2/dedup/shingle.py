"""Word n-gram shingles hashed with xxh32, exactly as BigCode's ``intra_dedup.py`` tokenizes (spec §6.2).

``re.split(r"\\W", content.lower())`` splits on every non-word character, so runs of separators yield empty
tokens, which are kept (they are part of the reference behaviour and of every published signature). Lone
surrogates are non-word characters, so tokens never contain one and always encode to UTF-8 for xxh32.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import xxhash

_NON_WORD = re.compile(r"\W")
_EMPTY = np.empty(0, dtype=np.uint32)


def tokens(content: str) -> list[str]:
    return _NON_WORD.split(content.lower())


def ngrams(content: str, ngram_size: int, min_length: int) -> Iterator[str]:
    """Space-joined word n-grams in order (repeats included); none when the file has fewer than ``min_length``
    tokens, and the whole file as one n-gram when it has fewer than ``ngram_size``.

    Built with ``map``/``zip`` so the per-n-gram work runs in C, not in a Python loop.
    """
    toks = tokens(content)
    if len(toks) < min_length:
        return iter(())
    if len(toks) < ngram_size:
        return iter((" ".join(toks),))
    return map(" ".join, zip(*(toks[i:] for i in range(ngram_size)), strict=False))


def shingles(content: str, ngram_size: int, min_length: int) -> set[str]:
    return set(ngrams(content, ngram_size, min_length))


def shingle_hashes(content: str, ngram_size: int, min_length: int) -> np.ndarray:
    """Sorted distinct xxh32 values of the shingles (uint32); empty array for files too short to compare."""
    hashes = np.fromiter(map(xxhash.xxh32_intdigest, ngrams(content, ngram_size, min_length)), dtype=np.uint32)
    return np.unique(hashes) if len(hashes) else _EMPTY
