"""Word n-gram shingles hashed with xxh32, exactly as BigCode's ``intra_dedup.py`` tokenizes (docs/spec.md §6.2).

``re.split(r"\\W", content.lower())`` splits on every non-word character, so runs of separators yield empty
tokens, which are kept (they are part of the reference behaviour and of every published signature). Lone
surrogates are non-word characters, so tokens never contain one and always encode to UTF-8 for xxh32.

``tokens``/``ngrams``/``shingles`` are that definition in plain Python (the reference the tests and
``bench/dedup/truth.py`` use). ``shingle_hashes``/``shingle_hash_batch`` compute the same hashes without building a
string per token or per shingle: the shingles of a file are the byte spans of one buffer, the file lowered with
every non-word character replaced by one space (that buffer is ``" ".join(tokens).encode()``: a space is itself
non-word and UTF-8 continuation bytes are never 0x20, so the spaces are exactly the token boundaries). A numba
kernel builds that buffer (word characters from ``word_table``, derived from ``re`` itself) and hashes the n-gram
spans with its own XXH32; one numpy sort and a second kernel keep each file's distinct values.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterator, Sequence

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from stackv2.dedup.minhash import _jit

_NON_WORD = re.compile(r"\W")
_EMPTY = np.empty(0, dtype=np.uint32)
#: Input bytes per kernel call in ``shingle_hash_batch``: the working buffers stay in cache (x16 corpus: 16 MiB
#: chunks 0.85-0.98 s, 1 MiB 0.72-0.83 s, 64 KiB 0.67 s CPU).
_CHUNK_BYTES = 64 << 10


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


# --- fast path -------------------------------------------------------------------------------------------------


@functools.cache
def word_table() -> np.ndarray:
    """``word_table()[cp] == 1`` iff code point ``cp`` is a word character for ``re``'s ``\\w`` (str patterns,
    this Python's Unicode database), derived from the regex itself; 0 for every other code point, surrogates
    included. About 0.02 s, once per process."""
    every = np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")  # every code point
    word = "".join(re.findall(r"\w+", every)).encode("utf-32-le", "surrogatepass")
    table = np.zeros(0x110000, dtype=np.uint8)
    table[np.frombuffer(word, dtype=np.uint32)] = 1
    return table


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """``word_table()`` and the map of ASCII bytes to the token buffer: lowered word characters, else a space."""
    word = word_table()
    ascii_map = np.where(word[:128] == 1, np.arange(128), 32).astype(np.uint8)
    ascii_map[ord("A") : ord("Z") + 1] += 32
    return word, ascii_map


_M = np.uint64(0xFFFFFFFF)
_P1 = np.uint64(2654435761)
_P2 = np.uint64(2246822519)
_P3 = np.uint64(3266489917)
_P4 = np.uint64(668265263)
_P5 = np.uint64(374761393)
_V4 = np.uint64(2**32 - 2654435761)  # seed - P1 mod 2**32
_U = tuple(np.uint64(k) for k in range(33))  # shift counts as uint64: numba turns uint64-op-int64 into float64


@_jit
def _rotl(x, r):
    return ((x << _U[r]) | (x >> _U[32 - r])) & _M


@intrinsic
def _load_le32(typingctx, buf, i):
    """``buf[i:i + 4]`` of a contiguous uint8 array as one unaligned 32-bit load (zero-extended to uint64):
    little-endian machines only."""
    if not (isinstance(buf, types.Array) and buf.dtype == types.uint8 and buf.ndim == 1 and buf.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        word = builder.load(builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(32).as_pointer()), align=1)
        return builder.zext(word, ir.IntType(64))

    return types.uint64(buf, i), codegen


@_jit
def _read32_le(buf, i):
    """Little-endian uint32 at ``buf[i]``: one load (x16 corpus: hashing 0.23 s vs 0.33 s from four bytes)."""
    return _load_le32(buf, i)


@_jit
def _read32_bytes(buf, i):
    return (
        np.uint64(buf[i])
        | (np.uint64(buf[i + 1]) << _U[8])
        | (np.uint64(buf[i + 2]) << _U[16])
        | (np.uint64(buf[i + 3]) << _U[24])
    )


_read32 = _read32_le if sys.byteorder == "little" else _read32_bytes


@_jit
def _round(acc, lane):
    return (_rotl((acc + lane * _P2) & _M, 13) * _P1) & _M


@_jit
def xxh32(buf, start, end):
    """XXH32 (seed 0) of ``buf[start:end]`` (contiguous uint8 array), as ``xxhash.xxh32_intdigest``. Every value
    is a uint64 holding a uint32, masked after each multiplication and addition."""
    i = start
    length = end - start
    if length >= 16:
        v1 = (_P1 + _P2) & _M
        v2 = _P2
        v3 = np.uint64(0)
        v4 = _V4
        while i + 16 <= end:
            v1 = _round(v1, _read32(buf, i))
            v2 = _round(v2, _read32(buf, i + 4))
            v3 = _round(v3, _read32(buf, i + 8))
            v4 = _round(v4, _read32(buf, i + 12))
            i += 16
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
    else:
        h = _P5
    h = (h + (np.uint64(length) & _M)) & _M
    while i + 4 <= end:
        h = (_rotl((h + _read32(buf, i) * _P3) & _M, 17) * _P4) & _M
        i += 4
    while i < end:
        h = (_rotl((h + np.uint64(buf[i]) * _P5) & _M, 11) * _P1) & _M
        i += 1
    h ^= h >> _U[15]
    h = (h * _P2) & _M
    h ^= h >> _U[13]
    h = (h * _P3) & _M
    h ^= h >> _U[16]
    return np.uint32(h)


@_jit
def _shingle_keys(buf, offsets, word, ascii_map, n, min_length):
    """Shingle hashes of every file ``buf[offsets[d]:offsets[d + 1]]`` as ``d << 32 | xxh32``, grouped by file
    (repeats included, unsorted).

    Each file is the UTF-8 of ``content`` when that is ASCII (lowered here by ``ascii_map``), else of
    ``content.lower()`` with lone surrogates passed through (``surrogatepass``). Pass 1 writes the token buffer
    (word characters copied, each non-word character -> one space; branch-free for ASCII bytes) and counts each
    file's tokens; pass 2 finds the token starts of a file and hashes its n-gram spans."""
    ndoc = offsets.size - 1
    text = np.empty(buf.size, dtype=np.uint8)
    text_off = np.empty(ndoc + 1, dtype=np.int64)
    ntok = np.empty(ndoc, dtype=np.int64)
    w = 0
    for d in range(ndoc):
        text_off[d] = w
        k = 1
        i, end = offsets[d], offsets[d + 1]
        while i < end:
            c = buf[i]
            if c < 0x80:
                o = ascii_map[c]
                text[w] = o
                k += o == 32
                w += 1
                i += 1
                continue
            if c >= 0xF0:
                size = 4
                cp = (
                    (np.int64(c) & 0x07) << 18
                    | (np.int64(buf[i + 1]) & 0x3F) << 12
                    | (np.int64(buf[i + 2]) & 0x3F) << 6
                    | (np.int64(buf[i + 3]) & 0x3F)
                )
            elif c >= 0xE0:
                size = 3
                cp = (np.int64(c) & 0x0F) << 12 | (np.int64(buf[i + 1]) & 0x3F) << 6 | (np.int64(buf[i + 2]) & 0x3F)
            else:
                size = 2
                cp = (np.int64(c) & 0x1F) << 6 | (np.int64(buf[i + 1]) & 0x3F)
            if word[cp]:
                for j in range(size):
                    text[w + j] = buf[i + j]
                w += size
            else:
                text[w] = 32
                w += 1
                k += 1
            i += size
        ntok[d] = k
    text_off[ndoc] = w

    counts = np.zeros(ndoc, dtype=np.int64)
    most = 1
    for d in range(ndoc):
        if n >= 1 and ntok[d] >= min_length:
            counts[d] = 1 if ntok[d] < n else ntok[d] - n + 1
        most = max(most, ntok[d])
    keys = np.empty(counts.sum(), dtype=np.uint64)
    starts = np.empty(most + 1, dtype=np.int64)
    pos = 0
    for d in range(ndoc):
        m = counts[d]
        if m == 0:
            continue
        high = np.uint64(d) << _U[32]
        lo, hi = text_off[d], text_off[d + 1]
        if ntok[d] < n:
            keys[pos] = high | np.uint64(xxh32(text, lo, hi))
        else:
            starts[0] = lo
            t = 1
            for i in range(lo, hi):  # branch-free: always store, advance past a space
                starts[t] = i + 1
                t += text[i] == 32
            starts[ntok[d]] = hi + 1  # so token j always ends at starts[j + 1] - 1
            for j in range(m):
                keys[pos + j] = high | np.uint64(xxh32(text, starts[j], starts[j + n] - 1))
        pos += m
    return keys


@_jit
def _distinct(keys, ndoc):
    """Sorted ``d << 32 | h`` keys -> (flat uint32 distinct hashes, offsets of each file ``d < ndoc``)."""
    flat = np.empty(keys.size, dtype=np.uint32)
    offsets = np.zeros(ndoc + 1, dtype=np.int64)
    kept = 0
    for i in range(keys.size):
        v = keys[i]
        if i == 0 or v != keys[i - 1]:
            flat[kept] = np.uint32(v & _M)
            kept += 1
            offsets[np.int64(v >> _U[32]) + 1] = kept
    for d in range(ndoc):  # files without shingles
        offsets[d + 1] = max(offsets[d + 1], offsets[d])
    return flat[:kept].copy(), offsets


@_jit
def _distinct_unsorted(keys, ndoc):
    """``d << 32 | h`` keys grouped by file, as ``_shingle_keys`` gives them -> ``_distinct``'s (flat, offsets),
    each file's distinct hashes in first-seen order: one open-addressing set per file (xxh32 values are uniform, so
    the low bits index it), linear in the keys, where the sort is n log n."""
    n = keys.size
    flat = np.empty(n, dtype=np.uint32)
    offsets = np.zeros(ndoc + 1, dtype=np.int64)
    most, i = 0, 0
    while i < n:
        j, d = i, keys[i] >> _U[32]
        while j < n and keys[j] >> _U[32] == d:
            j += 1
        most, i = max(most, j - i), j
    size = 1
    while size < 2 * most:
        size *= 2
    table = np.full(size, -1, dtype=np.int64)
    kept, i = 0, 0
    while i < n:
        j, d = i, keys[i] >> _U[32]
        while j < n and keys[j] >> _U[32] == d:
            j += 1
        m = 1
        while m < 2 * (j - i):
            m *= 2
        for k in range(i, j):
            h = np.int64(keys[k] & _M)
            slot = h & (m - 1)
            while table[slot] != -1 and table[slot] != h:
                slot = (slot + 1) & (m - 1)
            if table[slot] == -1:
                table[slot] = h
                flat[kept] = np.uint32(h)
                kept += 1
        table[:m] = -1
        offsets[np.int64(d) + 1] = kept
        i = j
    for d in range(ndoc):  # files without shingles
        offsets[d + 1] = max(offsets[d + 1], offsets[d])
    return flat[:kept].copy(), offsets


def _utf8(content: str | None) -> bytes:
    if not content:
        return b""
    if content.isascii():
        return content.encode()
    return content.lower().encode("utf-8", "surrogatepass")


def shingle_hash_batch(
    contents: Sequence[str | None], ngram_size: int, min_length: int, ordered: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``shingle_hashes`` of many files at once: (flat uint32, offsets int64 of len(contents) + 1); file ``d``'s
    hashes are ``flat[offsets[d]:offsets[d + 1]]``. ``None`` counts as an empty file. ``ordered=False``: each file's
    distinct hashes in first-seen order (a MinHash signature needs no order; the sort was a third of the sketch
    pass, docs/dedup.md).

    Files go through the kernels in chunks of about ``_CHUNK_BYTES``; the keys of a chunk are sorted with numpy's
    ``sort`` (file index in the high 32 bits, so one sort orders every file's hashes)."""
    flats, offs, base = [], [np.zeros(1, dtype=np.int64)], 0
    chunk, size = [], 0
    for data in map(_utf8, contents):
        chunk.append(data)
        size += len(data)
        if size >= _CHUNK_BYTES:
            flat, off = _chunk_hashes(chunk, ngram_size, min_length, ordered)
            flats.append(flat)
            offs.append(off[1:] + base)
            base += len(flat)
            chunk, size = [], 0
    if chunk or not flats:
        flat, off = _chunk_hashes(chunk, ngram_size, min_length, ordered)
        flats.append(flat)
        offs.append(off[1:] + base)
    return (flats[0] if len(flats) == 1 else np.concatenate(flats)), np.concatenate(offs)


def _chunk_hashes(
    chunk: list[bytes], ngram_size: int, min_length: int, ordered: bool
) -> tuple[np.ndarray, np.ndarray]:
    word, ascii_map = _tables()
    offsets = np.zeros(len(chunk) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk)), out=offsets[1:])
    buf = np.frombuffer(b"".join(chunk), dtype=np.uint8)
    keys = _shingle_keys(buf, offsets, word, ascii_map, ngram_size, min_length)
    if not ordered:
        return _distinct_unsorted(keys, len(chunk))
    keys.sort()
    return _distinct(keys, len(chunk))


def shingle_hash_sets(contents: Sequence[str | None], ngram_size: int, min_length: int) -> list[np.ndarray]:
    """One ``shingle_hashes`` array per file (views of one flat array)."""
    flat, offsets = shingle_hash_batch(contents, ngram_size, min_length)
    return np.split(flat, offsets[1:-1])


def shingle_hashes(content: str, ngram_size: int, min_length: int) -> np.ndarray:
    """Sorted distinct xxh32 values of the shingles (uint32); empty array for files too short to compare.

    Equal to ``np.unique([xxh32_intdigest(s) for s in ngrams(content, ngram_size, min_length)])``."""
    flat, _ = shingle_hash_batch([content], ngram_size, min_length)
    return flat if len(flat) else _EMPTY
