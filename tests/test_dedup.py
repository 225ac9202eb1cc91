"""Unit and property tests of the dedup core: shingles, MinHash signatures, LSH keys, configuration."""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict

import numpy as np
import pytest
import xxhash
from datasketch import MinHash, MinHashLSH
from datasketch.lsh import _optimal_param
from hypothesis import given, settings
from hypothesis import strategies as st

from stackv2.config import RunConfig
from stackv2.dedup import DedupConfig
from stackv2.dedup.lsh import band_keys
from stackv2.dedup.minhash import MAX_HASH, MOD_PRIME, MinHasher, jaccard, make_hasher
from stackv2.dedup.shingle import shingle_hashes, shingles, tokens

CFG = DedupConfig()
HASHER = MinHasher(CFG.num_perm, CFG.seed, CFG.mod_prime)


def reference_signature(hashes: list[int], a: list[int], b: list[int]) -> list[int]:
    """Spec §6.2 formula in exact Python integers: min over shingles of ((h*a + b) % p) & MAX_HASH, padded."""
    pairs = zip(a, b, strict=True)
    return [min([((h * ai + bi) % MOD_PRIME) & 0xFFFFFFFF for h in hashes] + [0xFFFFFFFF]) for ai, bi in pairs]


def test_paper_defaults_and_run_config():
    assert (CFG.threshold, CFG.ngram_size, CFG.min_length, CFG.num_perm, CFG.seed) == (0.7, 5, 5, 250, 42)
    assert CFG.mod_prime == MOD_PRIME == 2**32 - 5
    assert RunConfig().dedup == CFG


def test_bands_rows_are_datasketch_optimum():
    assert _optimal_param(CFG.threshold, CFG.num_perm, 0.5, 0.5) == (CFG.bands, CFG.rows)


def test_config_rejects_impossible_banding():
    with pytest.raises(ValueError, match="exceeds num_perm"):
        DedupConfig(bands=30, rows=10)
    with pytest.raises(ValueError, match="threshold"):
        dataclasses.replace(CFG, threshold=0.0)


def test_tokens_keep_empty_tokens_between_separators():
    assert tokens("Foo(bar,  Baz)") == ["foo", "bar", "", "", "baz", ""]


def test_shingles_follow_reference():
    text = "a b c d e f"
    assert shingles(text, 5, 5) == {"a b c d e", "b c d e f"}
    assert shingles("a b c d", 5, 5) == set()  # fewer than min_length tokens: no signature
    assert shingles("a b c", 5, 1) == {"a b c"}  # fewer tokens than n: the whole file is one shingle
    expected = sorted({xxhash.xxh32_intdigest(s) for s in shingles(text, 5, 5)})
    assert shingle_hashes(text, 5, 5).tolist() == expected
    assert shingle_hashes("x", 5, 5).dtype == np.uint32


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab Z_é(\n ,.1"), max_size=60), n=st.integers(1, 6),
       min_length=st.integers(0, 7))
def test_shingles_equal_reference_definition(text, n, min_length):
    toks = re.split(r"\W", text.lower())
    grams = {" ".join(toks[i : i + n]) for i in range(max(1, len(toks) - n + 1))}
    expected = set() if len(toks) < min_length else grams
    assert shingles(text, n, min_length) == expected


def test_lone_surrogates_split_tokens():
    assert tokens("ab\udcffcd") == ["ab", "cd"]
    assert len(shingle_hashes("a b c d e\udcfff", 5, 5)) == 2


def test_permutations_are_bigcodes_draws():
    rng = np.random.RandomState(42)
    a = rng.randint(1, MOD_PRIME, size=250, dtype=np.uint32)
    b = rng.randint(0, MOD_PRIME, size=250, dtype=np.uint32)
    assert (HASHER.a == a).all() and (HASHER.b == b).all()


hash_sets = st.lists(st.lists(st.integers(0, 2**32 - 1), max_size=40, unique=True), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None)
@given(sets=hash_sets, block_rows=st.integers(1, 64))
def test_signatures_match_reference_formula_for_any_block_size(sets, block_rows):
    arrays = [np.array(s, dtype=np.uint32) for s in sets]
    sig = HASHER.signatures(arrays, block_rows=block_rows)
    a, b = HASHER.a.tolist(), HASHER.b.tolist()
    for row, s in zip(sig, sets, strict=True):
        assert row.tolist() == reference_signature(s, a, b)
    # one call or one call per set: the same rows
    alone = np.vstack([HASHER.signatures([x]) for x in arrays])
    assert (alone == sig).all()


@pytest.mark.parametrize("engine", ["numpy", "rensa"])
def test_empty_set_gets_max_hash_and_rows_do_not_depend_on_the_batch(engine):
    hasher = make_hasher(engine, CFG.num_perm, CFG.seed, CFG.mod_prime)
    sets = [np.empty(0, dtype=np.uint32), np.array([7, 9], dtype=np.uint32), np.arange(100, dtype=np.uint32)]
    sig = hasher.signatures(sets)
    assert sig.dtype == np.uint32 and sig.shape == (3, CFG.num_perm)
    assert (sig[0] == MAX_HASH).all() and (sig[1] < MAX_HASH).all()
    assert all((hasher.signatures([s])[0] == row).all() for s, row in zip(sets, sig, strict=True))


def test_engine_is_validated():
    with pytest.raises(ValueError, match="engine"):
        DedupConfig(engine="gpu")


@pytest.mark.parametrize("engine", ["numpy", "rensa"])
@settings(max_examples=30, deadline=None, derandomize=True)
@given(shared=st.integers(50, 400), only_a=st.integers(0, 300), only_b=st.integers(0, 300), seed=st.integers(0, 999))
def test_jaccard_estimate_within_tolerance(engine, shared, only_a, only_b, seed):
    values = np.random.default_rng(seed).choice(2**32, size=shared + only_a + only_b, replace=False).astype(np.uint32)
    a = np.sort(values[: shared + only_a])
    b = np.sort(np.concatenate([values[:shared], values[shared + only_a :]]))
    true = jaccard(a, b)
    sig = make_hasher(engine, CFG.num_perm, CFG.seed, CFG.mod_prime).signatures([a, b])
    estimate = float((sig[0] == sig[1]).mean())
    # 250 permutations: standard error <= 0.032; 0.15 is > 4.5 sigma
    assert abs(estimate - true) <= 0.15
    assert true == shared / (shared + only_a + only_b)


def _documents() -> list[str]:
    rng = np.random.default_rng(7)
    vocab = [f"w{i}" for i in range(300)]
    base = [" ".join(rng.choice(vocab, 200)) for _ in range(6)]
    docs = []
    for text in base:
        words = text.split()
        for edits in (0, 3, 10, 40, 120):
            w = list(words)
            for i in rng.choice(len(w), edits, replace=False):
                w[i] = "x" + w[i]
            docs.append(" ".join(w))
    return docs


def test_lsh_candidates_equal_datasketch_lsh():
    docs = _documents()
    sigs = HASHER.signatures([shingle_hashes(d, 5, 5) for d in docs])
    keys = band_keys(sigs, CFG.bands, CFG.rows)
    buckets: dict[tuple[int, bytes], set[int]] = defaultdict(set)
    for i, row in enumerate(keys):
        for band, key in enumerate(row):
            buckets[(band, key.tobytes())].add(i)
    ours = {i: set().union(*(m for m in buckets.values() if i in m)) for i in range(len(docs))}

    lsh = MinHashLSH(threshold=CFG.threshold, num_perm=CFG.num_perm)
    assert (lsh.b, lsh.r) == (CFG.bands, CFG.rows)
    hashes = [MinHash(hashvalues=s, scheme="affine32") for s in sigs]
    for i, m in enumerate(hashes):
        lsh.insert(i, m)
    theirs = {i: set(lsh.query(m)) for i, m in enumerate(hashes)}
    assert ours == theirs
    assert any(len(c) > 1 for c in ours.values()) and any(len(c) == 1 for c in ours.values())


def test_band_key_bytes_are_little_endian_rows():
    sig = np.arange(250, dtype=np.uint32).reshape(1, 250)
    keys = band_keys(sig, 25, 10)
    assert keys.shape == (1, 25)
    assert keys[0, 1].tobytes() == np.arange(10, 20, dtype="<u4").tobytes()
