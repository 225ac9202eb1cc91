"""The tiktoken engine gives the ids of ``tokenizers``, id for id, and refuses tokenizers it cannot reproduce;
in both, PII placeholders in text are their special ids and every other special string is plain text."""

from __future__ import annotations

import email
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from stackv2.pii.config import PLACEHOLDERS as PII_PLACEHOLDERS
from stackv2.pii.config import PiiConfig
from stackv2.tokenize import fast as fast_module
from stackv2.tokenize import tokenizer as tokenizer_module
from stackv2.tokenize.config import TIKTOKEN, TOKENIZERS, TokenizeConfig
from stackv2.tokenize.fast import (
    PROBE,
    EngineMismatch,
    TiktokenEncoder,
    UnsupportedTokenizer,
    byte_decoder,
    make_encoder,
    tiktoken_encoding,
)
from stackv2.tokenize.format import EOS, FILE_SEP, format_repo, restore
from stackv2.tokenize.tokenizer import PLACEHOLDERS, SPECIAL_TOKENS, DocumentEncoder, train_tokenizer

CORPUS = [p.read_text() for p in sorted(Path(email.__file__).parent.rglob("*.py"))]
EDGE = [
    "x = 12345 + 3.14e-10", "a  1", "a \t 2\n\n3", "   \n    return 0", "٣٤ ½ ² 十", "it's They'S we'll",
    "tab\there\r\nwindows", "emoji 🎉🎉 ok", "nbsp\u00a0\u00a0x", "\u2028line\u2029sep", "", " ", "9", " 9 ",
    "trailing spaces   ", "x" * 3000, "1" * 100, "é" * 50 + " " * 20 + "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def hf() -> Tokenizer:
    tok = train_tokenizer(CORPUS, 2000)
    tok.encode_special_tokens = True
    return tok


@pytest.fixture(scope="module")
def fast(hf) -> TiktokenEncoder:
    return TiktokenEncoder(hf, threads=2)


def hf_ids(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def test_same_ids_on_corpus_and_edge_cases(hf, fast):
    texts = CORPUS + EDGE
    assert fast.encode_plain(texts) == hf_ids(hf, texts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=80), min_size=1, max_size=8))
def test_same_ids_on_any_text(hf, fast, texts):
    assert fast.encode_plain(texts) == hf_ids(hf, texts)


def test_same_ids_without_digit_splitting():
    """Plain GPT-2 style byte-level BPE (no Digits step) converts with the GPT-2 regex."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        special_tokens=["<|endoftext|>"],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS[:20], trainer=trainer)
    texts = CORPUS[:20] + EDGE
    assert tiktoken_encoding(tok).encode_ordinary_batch(texts) == hf_ids(tok, texts)


def test_documents_encode_the_same(hf, fast):
    cfg = TokenizeConfig(fim_repo_rate=1.0)
    docs = [
        format_repo(f"o/r{i}", [(f"/f{j}.py", CORPUS[(i + j) % len(CORPUS)]) for j in range(3)], cfg)
        for i in range(10)
    ]
    for a, b in zip(DocumentEncoder(hf).encode(docs), fast.encode(docs), strict=True):
        assert a.ids.tolist() == b.ids.tolist() and a.file_tokens == b.file_tokens


def test_byte_decoder_covers_every_byte():
    assert sorted(byte_decoder().values()) == list(range(256))
    assert set(byte_decoder()) == set(pre_tokenizers.ByteLevel.alphabet())


def test_refuses_what_it_cannot_reproduce(hf):
    prefixed = Tokenizer.from_str(hf.to_str())
    prefixed.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    with pytest.raises(UnsupportedTokenizer, match="pre-tokenizer"):
        tiktoken_encoding(prefixed)
    whitespace = Tokenizer.from_str(hf.to_str())
    whitespace.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(UnsupportedTokenizer):
        tiktoken_encoding(whitespace)
    added = Tokenizer.from_str(hf.to_str())
    added.add_tokens(["hello world"])
    with pytest.raises(UnsupportedTokenizer, match="added tokens"):
        tiktoken_encoding(added)


def test_make_encoder_falls_back_to_tokenizers_when_it_cannot_convert(hf):
    prefixed = Tokenizer.from_str(hf.to_str())
    prefixed.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    with pytest.warns(UserWarning, match="encoding with tokenizers"):
        enc = make_encoder(prefixed, TIKTOKEN)
    assert type(enc) is DocumentEncoder
    assert type(make_encoder(hf, TIKTOKEN)) is TiktokenEncoder
    assert type(make_encoder(hf, TOKENIZERS)) is DocumentEncoder


def test_start_up_check_catches_a_wrong_conversion(hf):
    """The shard check (first ``verify_bytes``) and the probe at construction both compare with tokenizers."""
    other = train_tokenizer(CORPUS[:5], 1000)
    broken = TiktokenEncoder(hf, verify_bytes=100)
    broken.encoding = tiktoken_encoding(other)  # right shape, wrong merges: ids differ
    with pytest.raises(EngineMismatch):
        broken.encode_texts(CORPUS[:3])
    unchecked = TiktokenEncoder(hf, verify_bytes=100)
    unchecked.encode_texts(CORPUS[:1])  # spends the budget on a good conversion
    unchecked.encoding = tiktoken_encoding(other)
    assert unchecked.encode_texts(CORPUS[:3]) != hf_ids(hf, CORPUS[:3])  # past the budget nothing is checked


def test_probe_catches_a_wrong_conversion_at_start_and_make_encoder_falls_back(hf, monkeypatch):
    assert all(t in PROBE for t in SPECIAL_TOKENS) and "<fim_prefix" in PROBE
    other = tiktoken_encoding(train_tokenizer(CORPUS[:5], 1000))
    monkeypatch.setattr(fast_module, "tiktoken_encoding", lambda tok: other)
    with pytest.raises(EngineMismatch):
        TiktokenEncoder(hf)
    with pytest.warns(UserWarning, match="encoding with tokenizers"):
        assert type(make_encoder(hf, TIKTOKEN)) is DocumentEncoder


def test_refuses_ids_that_do_not_follow_the_merges(hf):
    conf = json.loads(hf.to_str())
    vocab = conf["model"]["vocab"]
    a, b = ("".join(m) for m in conf["model"]["merges"][-2:])
    vocab[a], vocab[b] = vocab[b], vocab[a]  # the last two merges' tokens swap ids
    with pytest.raises(UnsupportedTokenizer, match="merge order"):
        tiktoken_encoding(Tokenizer.from_str(json.dumps(conf)))
    conf = json.loads(hf.to_str())
    conf["model"]["vocab"]["ĠÃ©Ã©Ã©"] = len(conf["model"]["vocab"])  # a token that no merge builds
    with pytest.raises(UnsupportedTokenizer, match="no merge builds"):
        tiktoken_encoding(Tokenizer.from_str(json.dumps(conf)))


# --- What is special in text: PII placeholders only, in both engines ---------------------------------------------

OTHER_SPECIALS = [t for t in SPECIAL_TOKENS if t not in PLACEHOLDERS]


@pytest.fixture(scope="module")
def engines(hf) -> dict[str, DocumentEncoder]:
    """Both engines, built from a tokenizer fresh from its file: special-token matching on, as HF loads it."""
    return {
        TOKENIZERS: DocumentEncoder(Tokenizer.from_str(hf.to_str())),
        TIKTOKEN: TiktokenEncoder(Tokenizer.from_str(hf.to_str()), threads=2),
    }


@pytest.fixture(scope="module")
def placeholders_only(hf) -> Tokenizer:
    """An independent reference: HF's own added-token matching, with the placeholders as its only added tokens."""
    conf = json.loads(hf.to_str())
    conf["added_tokens"] = [t for t in conf["added_tokens"] if t["content"] in PLACEHOLDERS]
    return Tokenizer.from_str(json.dumps(conf))


@pytest.mark.parametrize("engine", [TOKENIZERS, TIKTOKEN])
def test_what_the_pii_stage_writes_is_one_id_per_redacted_value(hf, engines, engine):
    from stackv2.pii import redact

    text = 'contact: john.doe@gmail.com\naws = "AKIAZ3MSJV4WJXHQ7P5K"\npassword = "Tr0ub4dor&3xq"\n'
    redacted = redact(text, PiiConfig(key_rules=False))
    assert sorted(redacted.counts) == ["EMAIL", "KEY", "PASSWORD"]
    ids = engines[engine].encode_texts([redacted.text])[0]
    for entity in redacted.counts:
        assert ids.count(hf.token_to_id(PII_PLACEHOLDERS[entity])) == 1


def test_a_new_placeholder_is_trained_after_starcoder2s_specials(monkeypatch):
    monkeypatch.setattr(tokenizer_module, "PLACEHOLDERS", (*PLACEHOLDERS, "<PHONE>"))
    tok = train_tokenizer(CORPUS[:3], 600)
    assert [tok.id_to_token(i) for i in range(len(SPECIAL_TOKENS) + 1)] == [*SPECIAL_TOKENS, "<PHONE>"]


@pytest.mark.parametrize("engine", [TOKENIZERS, TIKTOKEN])
def test_placeholder_in_content_is_one_special_id(hf, engines, engine):
    enc = engines[engine]
    email_id = hf.token_to_id("<EMAIL>")
    ids = enc.encode_texts(["to: <EMAIL>, cc:<EMAIL>;"])[0]
    assert ids.count(email_id) == 2
    assert enc.encode_texts(["<EMAIL>"]) == [[email_id]]
    for p in PLACEHOLDERS:
        assert enc.encode_texts([p]) == [[hf.token_to_id(p)]]
        assert enc.encode_texts([f"x={p}\n"])[0] == [*hf_ids(hf, ["x="])[0], hf.token_to_id(p), *hf_ids(hf, ["\n"])[0]]
    assert hf.decode(ids, skip_special_tokens=False) == "to: <EMAIL>, cc:<EMAIL>;"


@pytest.mark.parametrize("engine", [TOKENIZERS, TIKTOKEN])
def test_other_special_strings_in_content_are_text(hf, engines, engine):
    enc = engines[engine]
    eos_id = hf.token_to_id(EOS)
    ids = enc.encode_texts([f"s = '{EOS}'"])[0]
    assert eos_id not in ids and len(ids) > 3
    assert hf.decode(ids, skip_special_tokens=False) == f"s = '{EOS}'"
    special_ids = {hf.token_to_id(t) for t in OTHER_SPECIALS}
    for t in OTHER_SPECIALS:
        ids = enc.encode_texts([t])[0]
        assert not special_ids & set(ids) and len(ids) > 1


@pytest.mark.parametrize("engine", [TOKENIZERS, TIKTOKEN])
def test_content_sentinels_cannot_end_a_document(hf, engines, engine):
    files = [("/a.py", f"x = '{EOS}{FILE_SEP}<fim_prefix>' # <KEY>"), ("/b.py", "<PASSWORD>")]
    doc = format_repo("o/r", files, TokenizeConfig(metadata_rate=1.0, fim_repo_rate=0.0))
    (enc,) = engines[engine].encode([doc])
    ids = enc.ids.tolist()
    assert ids.count(hf.token_to_id(EOS)) == 1 and ids[-1] == hf.token_to_id(EOS)
    assert ids.count(hf.token_to_id(FILE_SEP)) == 2
    assert ids.count(hf.token_to_id("<KEY>")) == 1 and ids.count(hf.token_to_id("<PASSWORD>")) == 1
    assert sorted(restore(engines[engine].decode_parts(ids)).files) == [(p[1:], c) for p, c in files]


def _cuts(token: str) -> st.SearchStrategy[str]:
    return st.integers(1, len(token) - 1).flatmap(lambda k: st.sampled_from([token[:k], token[k:]]))


SPECIAL_STRINGS = st.sampled_from(SPECIAL_TOKENS)
MIXED_TEXT = st.lists(
    st.one_of(
        SPECIAL_STRINGS,
        st.sampled_from(PLACEHOLDERS),
        SPECIAL_STRINGS.flatmap(_cuts),  # "<fim_pre", "EMAIL>", "|endoftext|>"
        st.sampled_from(["<", ">", "<<", ">>", "|", "_", " ", "  ", "\n", "\t", "0", "12", "\u00a0", "é", "🎉"]),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(MIXED_TEXT, min_size=1, max_size=6))
def test_engines_agree_on_text_mixing_specials_placeholders_and_cuts(hf, engines, placeholders_only, texts):
    slow, fast = engines[TOKENIZERS].encode_texts(texts), engines[TIKTOKEN].encode_texts(texts)
    assert fast == slow
    # HF's own matching of the placeholders (and nothing else) gives the same ids: the rule, independently
    assert slow == hf_ids(placeholders_only, texts)
    placeholder_ids = {hf.token_to_id(p) for p in PLACEHOLDERS}
    other_ids = {hf.token_to_id(t) for t in OTHER_SPECIALS}
    pattern = re.compile("|".join(map(re.escape, PLACEHOLDERS)))
    for text, ids in zip(texts, slow, strict=True):
        assert sum(i in placeholder_ids for i in ids) == len(pattern.findall(text))
        assert not other_ids & set(ids)
        assert hf.decode(ids, skip_special_tokens=False) == text


@settings(max_examples=60, deadline=None)
@given(st.lists(MIXED_TEXT, min_size=1, max_size=4), st.integers(0, 2**32))
def test_engines_agree_on_documents(hf, engines, contents, seed):
    cfg = TokenizeConfig(seed=seed, fim_repo_rate=1.0, fim_spm_rate=0.5)
    doc = format_repo("o/r", [(f"/f{i}", c) for i, c in enumerate(contents)], cfg)
    (slow,), (fast,) = engines[TOKENIZERS].encode([doc]), engines[TIKTOKEN].encode([doc])
    assert slow.ids.tolist() == fast.ids.tolist() and slow.file_tokens == fast.file_tokens
    assert slow.ids.tolist().count(hf.token_to_id(EOS)) == 1
