"""Line statistics the filters and the repo-level schema use (docs/spec.md §5.2), vectorized with numpy.

Definitions follow the BigCode preprocessing code: fractions over all characters (newlines included) of
``str.isalpha`` / ``str.isalnum``; lines as ``str.splitlines`` cuts them (``\\r\\n`` is one break, a final
break does not open an empty line). ``tests/test_detect_linestats.py`` checks equality with that plain-Python
definition on arbitrary text; the numpy form is ~50x faster on large files.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import numpy as np

#: Code points ``str.splitlines`` breaks on.
_BREAKS = (0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029)


@dataclass(frozen=True)
class LineStats:
    alpha_fraction: float
    alphanum_fraction: float
    num_lines: int
    avg_line_length: float
    max_line_length: int


EMPTY = LineStats(0.0, 0.0, 0, 0.0, 0)


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-code-point lookup tables (alpha, alnum, line break), built once per process (~0.1 s).

    ``np.char.isalpha`` applies CPython's own character tables, so these equal ``str.isalpha``/``isalnum``.
    """
    every_char = np.arange(sys.maxunicode + 1, dtype="<u4").view("<U1")
    brk = np.zeros(every_char.size, dtype=bool)
    brk[list(_BREAKS)] = True
    return np.char.isalpha(every_char), np.char.isalnum(every_char), brk


def _code_points(text: str) -> np.ndarray:
    if text.isascii():  # most code: one byte per character, 4x less memory to scan
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def letter_count(text: str) -> int:
    """``sum(c.isalpha() for c in text)``, ~20x faster on a few thousand characters."""
    return int(np.count_nonzero(_tables()[0][_code_points(text)])) if text else 0


def line_stats(text: str) -> LineStats:
    if not text:
        return EMPTY
    alpha, alnum, brk = _tables()
    cp = _code_points(text)
    n = cp.size
    breaks = np.flatnonzero(brk[cp])
    # "\r\n" is one break: drop the "\n" of each pair and let its "\r" span two characters.
    crlf = breaks[:-1][(cp[breaks[:-1]] == 0x0D) & (breaks[1:] == breaks[:-1] + 1) & (cp[breaks[1:]] == 0x0A)]
    width = np.ones(breaks.size, dtype=np.int64)
    if crlf.size:
        breaks = np.setdiff1d(breaks, crlf + 1, assume_unique=True)
        width = np.where(np.isin(breaks, crlf), 2, 1)
    starts = np.concatenate(([0], breaks + width))
    ends = np.concatenate((breaks, [n]))
    if starts[-1] >= n:  # text ends with a break: no empty last line
        starts, ends = starts[:-1], ends[:-1]
    lengths = ends - starts
    return LineStats(
        alpha_fraction=float(np.count_nonzero(alpha[cp])) / n,
        alphanum_fraction=float(np.count_nonzero(alnum[cp])) / n,
        num_lines=int(lengths.size),
        avg_line_length=float(lengths.mean()),
        max_line_length=int(lengths.max()),
    )
