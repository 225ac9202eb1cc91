"""Repository-context formatting and FIM (docs/spec.md §10.1): exact layout, inversion, rates, determinism."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stackv2.tokenize.config import TokenizeConfig
from stackv2.tokenize.format import (
    EOS,
    FILE_SEP,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    PSM,
    REPO_NAME,
    SPM,
    Part,
    display_path,
    format_repo,
    merge_text,
    restore,
)

NO_FIM = TokenizeConfig(fim_repo_rate=0.0)
ALWAYS_META = TokenizeConfig(metadata_rate=1.0, fim_repo_rate=0.0)


def test_layout_with_metadata_is_the_papers():
    doc = format_repo("o/r", [("/a.py", "A"), ("/b.py", "B")], ALWAYS_META)
    (p1, c1), (p2, c2) = ([("a.py", "A"), ("b.py", "B")][c.index] for c in doc.chunks)
    expected = f"<repo_name>o/r<file_sep>{p1}\n{c1}<file_sep>{p2}\n{c2}<|endoftext|>"
    assert doc.text() == expected
    assert doc.metadata


def test_layout_without_metadata_has_no_name_and_no_paths():
    doc = format_repo("o/r", [("/a.py", "A"), ("/b.py", "B")], TokenizeConfig(metadata_rate=0.0, fim_repo_rate=0))
    assert doc.text() in ("<file_sep>A<file_sep>B<|endoftext|>", "<file_sep>B<file_sep>A<|endoftext|>")
    assert not doc.metadata and doc.header == ()


def test_psm_and_spm_layouts():
    files = [("/f.py", "0123456789")]
    for spm_rate, mode in ((0.0, PSM), (1.0, SPM)):
        cfg = TokenizeConfig(metadata_rate=0.0, fim_repo_rate=1.0, fim_file_rate=1.0, fim_spm_rate=spm_rate)
        (chunk,) = format_repo("o/r", files, cfg).chunks
        specials = [p.text for p in chunk.parts if p.special]
        assert chunk.fim == mode
        if mode == PSM:
            assert specials == [FILE_SEP, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE]
            _, _, pre, _, suf, _, mid = chunk.parts
            assert pre.text + mid.text + suf.text == "0123456789"
        else:
            assert [p.text for p in chunk.parts[:3]] == [FILE_SEP, FIM_PREFIX, FIM_SUFFIX]
            _, _, _, suf, _, pre, mid = chunk.parts
            assert pre.text + mid.text + suf.text == "0123456789"


def test_file_order_is_seeded_and_independent_of_input_order():
    files = [(f"/f{i}.py", f"x = {i}") for i in range(30)]
    a = format_repo("o/r", files, NO_FIM)
    b = format_repo("o/r", files[::-1], NO_FIM)
    assert a.text() == b.text()
    c = format_repo("o/r", files, TokenizeConfig(seed=1, fim_repo_rate=0.0))
    assert [files[ch.index] for ch in a.chunks] != [files[ch.index] for ch in c.chunks]
    assert [files[ch.index] for ch in a.chunks] != sorted(files)  # not the input order either


def test_rates_match_the_paper():
    cfg = TokenizeConfig()
    docs = [format_repo(f"owner/repo{i}", [(f"/f{j}.py", "pass\n") for j in range(4)], cfg) for i in range(2000)]
    meta = sum(d.metadata for d in docs) / len(docs)
    fim_repos = [d for d in docs if any(c.fim for c in d.chunks)]
    fim_files = Counter(c.fim for d in fim_repos for c in d.chunks)
    assert 0.46 < meta < 0.54
    # a candidate repository shows no FIM file with probability 1/16 when it has 4 files
    assert 0.5 * (1 - 1 / 16) - 0.04 < len(fim_repos) / len(docs) < 0.5 * (1 - 1 / 16) + 0.04
    assert set(fim_files) <= {None, PSM}  # default SPM rate 0
    assert 0.5 < fim_files[PSM] / sum(fim_files.values()) < 0.6  # 0.5 / (1 - 1/16) = 0.533


def test_a_repository_without_files_is_an_error():
    with pytest.raises(ValueError, match="no files"):
        format_repo("o/r", [], TokenizeConfig())


def test_fim_never_touches_the_repo_name():
    cfg = TokenizeConfig(metadata_rate=1.0, fim_repo_rate=1.0, fim_file_rate=1.0)
    for i in range(50):
        doc = format_repo(f"o/r{i}", [("/a.py", "abc"), ("/b.py", "def")], cfg)
        assert doc.header == (Part(REPO_NAME, True), Part(f"o/r{i}"))
        assert all(c.fim for c in doc.chunks)


paths = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), min_size=1, max_size=12)
contents = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.sampled_from([EOS, FILE_SEP, f"x{FIM_MIDDLE}y", ""]),
)
rates = st.sampled_from([0.0, 0.5, 1.0])


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(min_size=1, max_size=20),
    files=st.dictionaries(paths.map(lambda p: "/" + p), contents, min_size=1, max_size=6),
    seed=st.integers(0, 2**32),
    meta=rates, fim=rates, file_fim=rates, spm=rates,
)  # fmt: skip
def test_restore_inverts_format(name, files, seed, meta, fim, file_fim, spm):
    cfg = TokenizeConfig(seed=seed, metadata_rate=meta, fim_repo_rate=fim, fim_file_rate=file_fim, fim_spm_rate=spm)
    doc = format_repo(name, list(files.items()), cfg)
    back = restore(doc.parts())
    assert back == restore(merge_text(doc.parts()))  # the form decoded ids take
    assert back.repo_name == (name if doc.metadata else None)
    got = [(p, c) for p, c in back.files]
    order = [list(files.items())[c.index] for c in doc.chunks]
    if doc.metadata:
        assert got == [(display_path(p), c) for p, c in order]
    else:
        assert got == [(None, c) for _, c in order]
    assert sorted(c.index for c in doc.chunks) == list(range(len(files)))
