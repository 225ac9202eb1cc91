"""Settings of the dedup stages: ``exact_dedup`` (``RunConfig.exact_dedup``) and ``near_dedup``
(``RunConfig.near_dedup``, BigCode's ``intra_dedup.py`` values as defaults)."""

from __future__ import annotations

from dataclasses import dataclass

#: ``DedupConfig.short_files``: a file with fewer tokens than ``min_length`` is never a near-duplicate (docs/spec.md
#: §6.2's text), or gets BigCode's empty-set signature (all 2**32-1), so all such files of a language are one cluster
#: and one survives (``intra_dedup.py``).
SHORT_UNIQUE = "unique"
SHORT_CLUSTER = "cluster"
#: ``DedupConfig.arithmetic``: the permutation ``(a*h + b) mod p`` computed exactly, or as ``intra_dedup.py`` does,
#: with ``a*h + b`` wrapping in uint32 before the modulus (``np.outer`` of two uint32 arrays).
EXACT_ARITHMETIC = "exact"
UINT32_ARITHMETIC = "uint32"


@dataclass(frozen=True)
class ExactDedupConfig:
    #: Decide licenses and languages before choosing one copy per blob: a blob survives when any copy of it is in a
    #: permissive or unlicensed repository and has a language. BigCode chose the copy first (over every license type
    #: and language) and dropped it afterwards when it was ``non_permissive`` or had no language, taking the blob
    #: out of the release with it (docs/fidelity.md).
    license_first: bool = True


@dataclass(frozen=True)
class DedupConfig:
    #: Jaccard similarity at which two files are near-duplicates.
    threshold: float = 0.7
    #: Words per shingle (word n-gram over ``re.split(r"\W", content.lower())``).
    ngram_size: int = 5
    #: Files with fewer tokens get no shingles; ``short_files`` says what becomes of them.
    min_length: int = 5
    short_files: str = SHORT_UNIQUE
    arithmetic: str = EXACT_ARITHMETIC
    num_perm: int = 250
    #: B x R from datasketch's ``_optimal_param(0.7, 250, 0.5, 0.5)`` (a test recomputes it).
    bands: int = 25
    rows: int = 10
    #: Seed of ``np.random.RandomState`` drawing the permutations (a first, then b), as BigCode does.
    seed: int = 42
    #: Modulus of the permutations ``(a*h + b) mod mod_prime``: the largest prime below 2**32.
    mod_prime: int = 4_294_967_291
    #: Signature engine: "numpy" = BigCode's permutation family (the paper's values; a numba kernel since the
    #: numpy version, same name); "rensa" = rensa's R-MinHash, same estimator quality, other values (docs/dedup.md).
    engine: str = "numpy"
    #: Cluster only pairs that share an LSH bucket and whose exact shingle Jaccard reaches ``threshold``
    #: (``stackv2.dedup.verify``); off in the paper. Removes LSH false positives and the chains they create.
    verify: bool = False
    #: Candidate components larger than this are not verified (one Python worker holds a component's contents
    #: while verifying it); they keep their LSH clustering and the stage logs how many there were.
    verify_max_members: int = 50_000
    #: Upper bound on large-star/small-star rounds; reaching it is an error, never a silent partial result.
    max_cc_iterations: int = 64

    def __post_init__(self) -> None:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"near_dedup: bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"near_dedup.threshold must be in (0, 1], got {self.threshold}")
        if self.engine not in ("numpy", "rensa"):
            raise ValueError(f"near_dedup.engine must be 'numpy' or 'rensa', got {self.engine!r}")
        if self.verify_max_members < 2:
            raise ValueError(f"near_dedup.verify_max_members must be >= 2, got {self.verify_max_members}")
        if self.short_files not in (SHORT_UNIQUE, SHORT_CLUSTER):
            raise ValueError(f"near_dedup.short_files must be {SHORT_UNIQUE!r} or {SHORT_CLUSTER!r}")
        if self.arithmetic not in (EXACT_ARITHMETIC, UINT32_ARITHMETIC):
            raise ValueError(f"near_dedup.arithmetic must be {EXACT_ARITHMETIC!r} or {UINT32_ARITHMETIC!r}")
        if self.ngram_size < 1 or self.min_length < 0:
            raise ValueError("near_dedup.ngram_size must be >= 1 and near_dedup.min_length >= 0")
