"""MinHash signatures for many files at once: one fused numba kernel, one pass over the permutations per shingle.

The permutation family is BigCode's: ``h' = (a*h + b) mod MOD_PRIME`` with ``MOD_PRIME = 2**32 - 5`` and
``a, b`` drawn by ``np.random.RandomState(seed).randint`` (a first, then b, as uint32). The products are computed in
uint64 (they never overflow: both factors are < 2**32). BigCode's own code multiplies in uint32, so ``a*h + b``
wraps modulo 2**32 before the modulus; ``wrap32=True`` computes exactly that (``near_dedup.arithmetic``,
docs/dedup.md), and then the signatures are those of ``intra_dedup.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from stackv2.dedup.config import UINT32_ARITHMETIC, DedupConfig

#: BigCode's modulus: the largest prime below 2**32.
MOD_PRIME = 4_294_967_291
MAX_HASH = np.uint32(0xFFFFFFFF)

_P = np.uint64(MOD_PRIME)
_LOW = np.uint64(0xFFFFFFFF)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_SHIFT = np.uint64(32)
_FIVE = np.uint64(2**32 - MOD_PRIME)  # 2**32 ≡ 5 (mod MOD_PRIME)


@numba.njit(inline="always")
def _mod(x, p):
    """``x % p`` for any uint64 ``x``. For ``MOD_PRIME`` without a division: folding ``2**32 ≡ 5`` takes
    x < 2**64 below 6 * 2**32, then below 2**32 + 25 < 2p, and one conditional subtraction finishes; LLVM
    vectorizes it. Other primes (``DedupConfig.mod_prime``) take the plain 64-bit division (~12x slower)."""
    if p == _P:
        x = (x >> _SHIFT) * _FIVE + (x & _LOW)
        x = (x >> _SHIFT) * _FIVE + (x & _LOW)
        return np.uint32(x - _P if x >= _P else x)
    return np.uint32(x % p)


def _jit(fn):
    """``njit(cache=True)`` where numba finds a writable cache location (next to this file, NUMBA_CACHE_DIR or the
    user's cache dir); where none is, numba raises at decoration time, so compile in each process instead."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:
        return numba.njit(nogil=True)(fn)


@_jit
def _signatures(flat, offsets, a, b, p, mask, sig):
    """``sig[d, j] = min(sig[d, j], ((a[j] * h + b[j]) & mask) % p)`` for every hash ``h`` of set ``d``, i.e. of
    ``flat[offsets[d]:offsets[d + 1]]``; ``mask`` is all ones (exact) or 2**32 - 1 (BigCode's uint32 wrap; the
    uint64 sum cannot overflow). The inner loop runs over the permutations (contiguous, vectorized); four shingles
    share each load and store of ``a``, ``b`` and the signature row (~12% less time than one)."""
    for d in range(offsets.size - 1):
        row = sig[d]
        i, end = offsets[d], offsets[d + 1]
        while i + 4 <= end:
            h0, h1, h2, h3 = np.uint64(flat[i]), np.uint64(flat[i + 1]), np.uint64(flat[i + 2]), np.uint64(flat[i + 3])
            for j in range(a.size):
                aj, bj = np.uint64(a[j]), np.uint64(b[j])
                m01 = min(_mod((h0 * aj + bj) & mask, p), _mod((h1 * aj + bj) & mask, p))
                m23 = min(_mod((h2 * aj + bj) & mask, p), _mod((h3 * aj + bj) & mask, p))
                row[j] = min(row[j], m01, m23)
            i += 4
        while i < end:
            h = np.uint64(flat[i])
            for j in range(a.size):
                row[j] = min(row[j], _mod((h * np.uint64(a[j]) + np.uint64(b[j])) & mask, p))
            i += 1


def pack(hash_sets: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Many hash arrays in ``shingle.shingle_hash_batch``'s layout: (flat uint32, offsets int64 of
    ``len(hash_sets) + 1``); array ``d`` is ``flat[offsets[d]:offsets[d + 1]]``."""
    offsets = np.zeros(len(hash_sets) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, hash_sets), dtype=np.int64, count=len(hash_sets)), out=offsets[1:])
    flat = (
        np.concatenate([np.asarray(h, dtype=np.uint32) for h in hash_sets])
        if offsets[-1]
        else np.empty(0, dtype=np.uint32)
    )
    return flat, offsets


class MinHasher:
    """Holds one permutation family; ``signatures`` maps shingle-hash sets to a (n, num_perm) uint32 matrix."""

    def __init__(self, num_perm: int, seed: int, mod_prime: int = MOD_PRIME, wrap32: bool = False):
        if not 1 < mod_prime <= MAX_HASH:
            raise ValueError(f"mod_prime must be a prime below 2**32, got {mod_prime}")
        rng = np.random.RandomState(seed)
        self.a = rng.randint(1, mod_prime, size=num_perm, dtype=np.uint32)
        self.b = rng.randint(0, mod_prime, size=num_perm, dtype=np.uint32)
        self.num_perm = num_perm
        self.mod_prime = mod_prime
        self._mask = _LOW if wrap32 else _ALL

    def signatures(self, hash_sets: Sequence[np.ndarray]) -> np.ndarray:
        """Column-wise minimum of the permuted hashes of each set; an empty set gives all ``MAX_HASH``.

        Each row depends only on its own set (the kernel walks the sets one by one), not on the batch.
        """
        return self.packed_signatures(*pack(hash_sets))

    def packed_signatures(self, flat: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``signatures`` of sets already in ``pack``'s layout (as ``shingle.shingle_hash_batch`` gives them)."""
        sig = np.full((len(offsets) - 1, self.num_perm), MAX_HASH, dtype=np.uint32)
        if len(flat):
            _signatures(
                np.asarray(flat, dtype=np.uint32),
                np.asarray(offsets, dtype=np.int64),
                self.a,
                self.b,
                np.uint64(self.mod_prime),
                self._mask,
                sig,
            )
        return sig


class RensaHasher:
    """rensa's R-MinHash over the same shingle hashes (``near_dedup.engine = "rensa"``).

    Same interface and the same estimator quality (unbiased, sd ~ sqrt(J(1-J)/k), checked in tests), about two
    orders of magnitude less CPU than the numpy family in ``bench/dedup`` — but its permutations are rensa's, so
    the values (and which borderline pairs collide) differ from BigCode's.
    """

    def __init__(self, num_perm: int, seed: int):
        from rensa import RMinHash

        self._digest = RMinHash.digest_matrix_from_flat_token_hashes
        self.num_perm = num_perm
        self.seed = seed

    def signatures(self, hash_sets: Sequence[np.ndarray]) -> np.ndarray:
        return self.packed_signatures(*pack(hash_sets))

    def packed_signatures(self, flat: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        if len(flat) == 0:
            return np.full((len(offsets) - 1, self.num_perm), MAX_HASH, dtype=np.uint32)
        offsets = np.asarray(offsets, dtype=np.uint64)
        sig = np.array(
            self._digest(np.asarray(flat, dtype=np.uint64), offsets, self.num_perm, self.seed).to_rows(),
            dtype=np.uint32,
        )
        sig[offsets[1:] == offsets[:-1]] = MAX_HASH
        return sig


def make_hasher(cfg: DedupConfig) -> MinHasher | RensaHasher:
    if cfg.engine == "numpy":
        return MinHasher(cfg.num_perm, cfg.seed, cfg.mod_prime, wrap32=cfg.arithmetic == UINT32_ARITHMETIC)
    if cfg.engine == "rensa":
        return RensaHasher(cfg.num_perm, cfg.seed)
    raise ValueError(f"near_dedup.engine must be 'numpy' or 'rensa', got {cfg.engine!r}")


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sets given as arrays of distinct values (0.0 when both are empty)."""
    union = len(a) + len(b)
    if union == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (union - inter)
