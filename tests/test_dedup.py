"""Unit and property tests of the dedup core: shingles, MinHash signatures, LSH keys, configuration."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest
import xxhash
from datasketch import MinHash, MinHashLSH
from datasketch.lsh import _optimal_param
from hypothesis import given, settings
from hypothesis import strategies as st

from stackv2.config import RunConfig
from stackv2.dedup import shingle as shingle_mod
from stackv2.dedup.config import DedupConfig
from stackv2.dedup.lsh import band_keys
from stackv2.dedup.minhash import MAX_HASH, MOD_PRIME, MinHasher, jaccard, make_hasher, pack
from stackv2.dedup.shingle import (
    ngrams,
    shingle_hash_batch,
    shingle_hash_sets,
    shingle_hashes,
    shingles,
    tokens,
    xxh32,
)
from stackv2.dedup.verify import verified_clusters
from udfs import dedup as udfs_dedup

CFG = DedupConfig()
HASHER = MinHasher(CFG.num_perm, CFG.seed, CFG.mod_prime)


def reference_signature(hashes: list[int], a: list[int], b: list[int], p: int = MOD_PRIME) -> list[int]:
    """Spec §6.2 formula in exact Python integers: min over shingles of ((h*a + b) % p) & MAX_HASH, padded."""
    pairs = zip(a, b, strict=True)
    return [min([((h * ai + bi) % p) & 0xFFFFFFFF for h in hashes] + [0xFFFFFFFF]) for ai, bi in pairs]


def test_paper_defaults_and_run_config():
    assert (CFG.threshold, CFG.ngram_size, CFG.min_length, CFG.num_perm, CFG.seed) == (0.7, 5, 5, 250, 42)
    assert CFG.mod_prime == MOD_PRIME == 2**32 - 5
    assert RunConfig().near_dedup == CFG


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
@given(
    text=st.text(alphabet=st.sampled_from("ab Z_é(\n ,.1"), max_size=60),
    n=st.integers(1, 6),
    min_length=st.integers(0, 7),
)
def test_shingles_equal_reference_definition(text, n, min_length):
    toks = re.split(r"\W", text.lower())
    grams = {" ".join(toks[i : i + n]) for i in range(max(1, len(toks) - n + 1))}
    expected = set() if len(toks) < min_length else grams
    assert shingles(text, n, min_length) == expected


def test_lone_surrogates_split_tokens():
    assert tokens("ab\udcffcd") == ["ab", "cd"]
    assert len(shingle_hashes("a b c d e\udcfff", 5, 5)) == 2


def reference_hashes(text: str, n: int, min_length: int) -> list[int]:
    """Spec §6.2 literally: re.split on \\W after lower(), n-grams by slicing, xxh32 of each str, sorted distinct."""
    toks = re.split(r"\W", text.lower())
    if len(toks) < min_length:
        return []
    grams = [" ".join(toks)] if len(toks) < n else [" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    return sorted({xxhash.xxh32_intdigest(g) for g in grams})


# Arbitrary Unicode (every category, lone surrogates included), and token soups with word runs long enough that
# shingles cross the 16-byte stripe of XXH32 in 1- to 4-byte UTF-8 characters.
_word = st.text(st.sampled_from("aZ_9éß中😀İΣςK\u0130\u212a\u0345"), min_size=0, max_size=25)
_sep = st.sampled_from([" ", "(", ",  ", "\n", "\udcff", "\ud83d\ude00", "\u2028", "\x00", "\u00a0", "-"])
any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=80),
    st.lists(st.one_of(_word, _sep), max_size=40).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(text=any_text, n=st.integers(1, 7), min_length=st.integers(0, 7))
def test_shingle_hashes_equal_reference_definition(text, n, min_length):
    got = shingle_hashes(text, n, min_length)
    assert got.dtype == np.uint32
    assert got.tolist() == reference_hashes(text, n, min_length)


@pytest.mark.parametrize("text", ["", " ", "a", "\udcff", "ΣΑΣ Σ", "a b c d", "a b c d e", "İK\u212a" * 9])
@pytest.mark.parametrize("n", [1, 2, 5, 7])
@pytest.mark.parametrize("min_length", [0, 1, 5, 7])
def test_shingle_hashes_edges(text, n, min_length):
    """Empty files (one empty token), fewer than min_length / ngram_size tokens, final sigma, case folds that
    change the length or leave ASCII."""
    assert shingle_hashes(text, n, min_length).tolist() == reference_hashes(text, n, min_length)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.one_of(st.none(), any_text), max_size=12),
    n=st.integers(1, 7),
    min_length=st.integers(0, 7),
    chunk=st.sampled_from([1, 7, 64, 1 << 16]),
)
def test_batch_equals_one_file_at_a_time(texts, n, min_length, chunk):
    saved = shingle_mod._CHUNK_BYTES
    shingle_mod._CHUNK_BYTES = chunk  # chunk boundaries must not matter
    try:
        flat, offsets = shingle_hash_batch(texts, n, min_length)
        sets = shingle_hash_sets(texts, n, min_length)
    finally:
        shingle_mod._CHUNK_BYTES = saved
    assert flat.dtype == np.uint32 and offsets.tolist()[0] == 0 and len(offsets) == len(texts) + 1
    for d, text in enumerate(texts):
        expected = reference_hashes(text or "", n, min_length)
        assert flat[offsets[d] : offsets[d + 1]].tolist() == expected
        assert sets[d].tolist() == expected


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.one_of(st.none(), any_text, st.just("a b a b a b a b c " * 5)), max_size=12),
    n=st.integers(1, 5),
    min_length=st.integers(0, 5),
    chunk=st.sampled_from([1, 64, 1 << 16]),
    engine=st.sampled_from(["numpy", "rensa"]),
)
def test_unordered_sets_are_the_sets_in_first_seen_order(texts, n, min_length, chunk, engine):
    """``ordered=False``: each file's distinct hashes in the order the file first has them (the same sets), and the
    same signatures with either engine."""
    saved = shingle_mod._CHUNK_BYTES
    shingle_mod._CHUNK_BYTES = chunk
    try:
        flat, offsets = shingle_hash_batch(texts, n, min_length)
        unordered, unordered_offsets = shingle_hash_batch(texts, n, min_length, ordered=False)
    finally:
        shingle_mod._CHUNK_BYTES = saved
    assert unordered.dtype == np.uint32 and unordered_offsets.dtype == np.int64
    assert len(unordered_offsets) == len(texts) + 1
    for d, text in enumerate(texts):
        first_seen = dict.fromkeys(xxhash.xxh32_intdigest(g) for g in ngrams(text or "", n, min_length))
        assert unordered[unordered_offsets[d] : unordered_offsets[d + 1]].tolist() == list(first_seen)
        assert sorted(first_seen) == flat[offsets[d] : offsets[d + 1]].tolist()
    hasher = make_hasher(DedupConfig(engine=engine))
    signatures = hasher.packed_signatures(flat, offsets)
    assert (hasher.packed_signatures(unordered, unordered_offsets) == signatures).all()


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(exclude_categories=()), max_size=60))
def test_joined_tokens_always_encode(text):
    """The fast path hashes UTF-8 spans of " ".join(tokens): lone surrogates are \\W, so no token keeps one and
    strict UTF-8 never fails; a space never occurs inside a token, so spaces are exactly the boundaries."""
    toks = tokens(text)
    joined = " ".join(toks).encode("utf-8")
    assert joined.split(b" ") == [t.encode("utf-8") for t in toks]


def test_xxh32_kernel_equals_xxhash():
    rng = np.random.default_rng(0)
    for length in range(101):
        for _ in range(10):
            data = rng.integers(0, 256, length + 3, dtype=np.uint8)
            assert xxh32(data, 0, length) == xxhash.xxh32_intdigest(data[:length].tobytes())
            assert xxh32(data, 3, length + 3) == xxhash.xxh32_intdigest(data[3:].tobytes())  # spans inside a buffer
    assert xxh32(np.full(64, 255, dtype=np.uint8), 0, 64) == xxhash.xxh32_intdigest(b"\xff" * 64)
    data = rng.integers(0, 256, 64, dtype=np.uint8)
    words = [shingle_mod._read32_le(data, i) for i in range(61)]
    assert words == [shingle_mod._read32_bytes(data, i) for i in range(61)]
    assert words == [int.from_bytes(data[i : i + 4].tobytes(), "little") for i in range(61)]


def test_word_table_is_re_word_class():
    table = shingle_mod.word_table()
    isword = np.fromiter((chr(c).isalnum() or c == 95 for c in range(0x110000)), dtype=np.uint8, count=0x110000)
    assert (table == isword).all()
    assert not table[0xD800:0xE000].any()


def test_permutations_are_bigcodes_draws():
    rng = np.random.RandomState(42)
    a = rng.randint(1, MOD_PRIME, size=250, dtype=np.uint32)
    b = rng.randint(0, MOD_PRIME, size=250, dtype=np.uint32)
    assert (HASHER.a == a).all() and (HASHER.b == b).all()


hash_sets = st.lists(st.lists(st.integers(0, 2**32 - 1), max_size=40, unique=True), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None)
@given(sets=hash_sets)
def test_signatures_match_reference_formula_and_do_not_depend_on_the_batch(sets):
    arrays = [np.array(s, dtype=np.uint32) for s in sets]
    sig = HASHER.signatures(arrays)
    a, b = HASHER.a.tolist(), HASHER.b.tolist()
    for row, s in zip(sig, sets, strict=True):
        assert row.tolist() == reference_signature(s, a, b)
    # one call, one call per set, or the batch reversed: the same rows
    alone = np.vstack([HASHER.signatures([x]) for x in arrays])
    assert (alone == sig).all()
    assert (HASHER.signatures(arrays[::-1])[::-1] == sig).all()


@settings(max_examples=20, deadline=None)
@given(sets=hash_sets, p=st.sampled_from([2**32 - 17, 2**31 - 1, 65_521]), seed=st.integers(0, 999))
def test_other_primes_take_the_division_path_and_match_the_formula(sets, p, seed):
    hasher = MinHasher(16, seed, p)
    sig = hasher.signatures([np.array(s, dtype=np.uint32) for s in sets])
    for row, s in zip(sig, sets, strict=True):
        assert row.tolist() == reference_signature(s, hasher.a.tolist(), hasher.b.tolist(), p)


@pytest.mark.parametrize("p", [MOD_PRIME, 2**32 - 17])
def test_modular_reduction_is_exact_at_the_edges(p):
    """One-hash sets give (a*h + b) % p itself; edge values of a, b and h against numpy's uint64 arithmetic."""
    edges = [0, 1, 2, 4, 5, 6, 2**31, p - 6, p - 2, p - 1, p, p + 1, 2**32 - 2, 2**32 - 1]
    hashes = np.array(edges + np.random.default_rng(0).integers(0, 2**32, 2_000).tolist(), dtype=np.uint64)
    hasher = MinHasher(1, 0, p)
    vals = np.array([v for v in edges if v < p], dtype=np.uint64)
    a, b = np.meshgrid(vals[vals > 0], vals)  # every (a, b) pair, a > 0
    hasher.a, hasher.b = a.ravel().astype(np.uint32), b.ravel().astype(np.uint32)
    hasher.num_perm = hasher.a.size
    sig = hasher.signatures([np.array([h], dtype=np.uint32) for h in hashes])
    expected = (np.multiply.outer(hashes, a.ravel()) + b.ravel()) % np.uint64(p)  # < 2**64: no overflow
    assert (sig == expected).all()


@pytest.mark.parametrize("engine", ["numpy", "rensa"])
def test_empty_set_gets_max_hash_and_rows_do_not_depend_on_the_batch(engine):
    hasher = make_hasher(dataclasses.replace(CFG, engine=engine))
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
    sig = make_hasher(dataclasses.replace(CFG, engine=engine)).signatures([a, b])
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


def _one_bucket(n: int) -> np.ndarray:
    """Band keys putting ``n`` files in the same buckets."""
    return band_keys(np.zeros((n, CFG.num_perm), dtype=np.uint32), CFG.bands, CFG.rows)


def test_verified_clusters_check_every_bucket_pair_not_only_the_bucket_minimum():
    # b and c are similar (10/11); neither is similar to a, the bucket's smallest id
    sets = [
        np.arange(0, 10, dtype=np.uint32),
        np.arange(100, 110, dtype=np.uint32),
        np.arange(100, 111, dtype=np.uint32),
    ]
    assert verified_clusters(["a", "b", "c"], *pack(sets), _one_bucket(3), 0.7) == [None, "b", "b"]


def test_verified_clusters_follow_chains_and_ignore_other_buckets():
    x, y, z = np.arange(0, 10), np.arange(0, 12), np.arange(2, 14)  # J(x,y)=0.83, J(y,z)=0.71, J(x,z)=0.57
    sets = [s.astype(np.uint32) for s in (x, y, z)]
    assert verified_clusters(["x", "y", "z"], *pack(sets), _one_bucket(3), 0.7) == ["x", "x", "x"]
    assert verified_clusters(["x", "y", "z"], *pack(sets), _one_bucket(3), 0.75) == ["x", "x", None]
    apart = band_keys(np.arange(2 * CFG.num_perm, dtype=np.uint32).reshape(2, -1), CFG.bands, CFG.rows)
    assert verified_clusters(["p", "q"], *pack([sets[0], sets[0]]), apart, 0.7) == [None, None]  # no shared bucket
    empty = np.empty(0, np.uint32)
    assert verified_clusters(["p", "q"], *pack([sets[0], empty]), _one_bucket(2), 0.7) == [None, None]


def _reference_clusters(ids, arrays, keys, threshold):
    """The definition, plainly: every pair sharing a (band, key) with Jaccard >= threshold, then components
    labelled by their smallest id."""
    n = len(ids)
    label = list(ids)
    pairs = [
        (i, j)
        for i, j in itertools.combinations(range(n), 2)
        if len(arrays[i])
        and len(arrays[j])
        and (keys[i] == keys[j]).any()
        and jaccard(arrays[i], arrays[j]) >= threshold
    ]
    for _ in range(n):  # propagate the smallest label along the pairs until nothing changes
        for i, j in pairs:
            label[i] = label[j] = min(label[i], label[j])
    paired = {i for pair in pairs for i in pair}
    return [label[i] if i in paired else None for i in range(n)]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sets(st.integers(0, 40), max_size=15), min_size=1, max_size=10),
    st.sampled_from([(25, 10), (50, 5), (250, 1)]),
    st.sampled_from([0.3, 0.5, 0.7]),
)
def test_verified_clusters_match_the_definition(sets, banding, threshold):
    arrays = [np.array(sorted(s), dtype=np.uint32) for s in sets]
    ids = [f"f{(7 * i) % 11:02d}" for i in range(len(sets))]
    keys = band_keys(HASHER.signatures(arrays), *banding)
    assert verified_clusters(ids, *pack(arrays), keys, threshold) == _reference_clusters(ids, arrays, keys, threshold)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sets(st.integers(0, 30), min_size=1, max_size=12), min_size=1, max_size=8), st.randoms())
def test_verified_clusters_do_not_depend_on_input_order(sets, rnd):
    arrays = [np.array(sorted(s), dtype=np.uint32) for s in sets]
    ids = [f"f{i:02d}" for i in range(len(sets))]
    keys = band_keys(HASHER.signatures(arrays), CFG.bands, CFG.rows)
    labels = dict(zip(ids, verified_clusters(ids, *pack(arrays), keys, 0.5), strict=True))
    perm = list(range(len(sets)))
    rnd.shuffle(perm)
    shuffled = verified_clusters([ids[i] for i in perm], *pack([arrays[i] for i in perm]), keys[perm], 0.5)
    assert dict(zip([ids[i] for i in perm], shuffled, strict=True)) == labels
    for i, j in itertools.combinations(range(len(sets)), 2):  # a verified bucket pair always ends in one cluster
        if jaccard(arrays[i], arrays[j]) >= 0.5 and (keys[i] == keys[j]).any():
            assert labels[ids[i]] is not None and labels[ids[i]] == labels[ids[j]]


def _sketch_rows(cfg: DedupConfig, contents: list[str | None]) -> list[dict]:
    batch = pa.RecordBatch.from_pydict(
        {
            "blob_id": [f"b{i}" for i in range(len(contents))],
            "language": ["Python"] * len(contents),
            "content": contents,
        }
    )
    return [row for out in udfs_dedup.lsh_sketches(cfg)(iter([batch])) for row in out.to_pylist()]


def test_sketches_carry_band_keys_and_with_verify_the_shingle_hashes(monkeypatch):
    contents = [" ".join(f"w{i * j % 97}" for j in range(60)) for i in range(1, 5)]
    contents.insert(2, "too short")  # no row
    contents.insert(0, None)
    cfg = DedupConfig(verify=True)
    rows = _sketch_rows(cfg, contents)
    assert [r["blob_id"] for r in rows] == ["b1", "b2", "b4", "b5"]
    for r in rows:
        content = contents[int(r["blob_id"][1:])]
        hashes = shingle_hashes(content, cfg.ngram_size, cfg.min_length)
        assert np.frombuffer(r["shingles"], dtype="<u4").tolist() == hashes.tolist()
        keys = band_keys(MinHasher(cfg.num_perm, cfg.seed).signatures([hashes]), cfg.bands, cfg.rows)[0]
        assert r["keys"] == [k.tobytes() for k in keys]
    assert all(r["shingles"] is None for r in _sketch_rows(DedupConfig(), contents))  # not kept without verify
    # a batch past Arrow's binary limit is split into batches, without changing the rows
    monkeypatch.setattr(udfs_dedup, "_MAX_BATCH_HASHES", 120)
    assert _sketch_rows(cfg, contents) == rows
    monkeypatch.setattr(udfs_dedup, "_MAX_BATCH_HASHES", 10)
    with pytest.raises(ValueError, match="more than 10 distinct shingles"):
        _sketch_rows(cfg, contents)
