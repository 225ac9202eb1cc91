"""The tiktoken engine gives the ids of ``tokenizers``, id for id, and refuses tokenizers it cannot reproduce."""

from __future__ import annotations

import email
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from stackv2.tokenize.config import TIKTOKEN, TOKENIZERS, TokenizeConfig
from stackv2.tokenize.fast import (
    EngineMismatch,
    TiktokenEncoder,
    UnsupportedTokenizer,
    byte_decoder,
    make_encoder,
    tiktoken_encoding,
)
from stackv2.tokenize.format import format_repo
from stackv2.tokenize.tokenizer import DocumentEncoder, train_tokenizer

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
    assert fast.encode_texts(texts) == hf_ids(hf, texts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=80), min_size=1, max_size=8))
def test_same_ids_on_any_text(hf, fast, texts):
    assert fast.encode_texts(texts) == hf_ids(hf, texts)


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
    other = train_tokenizer(CORPUS[:5], 1000)
    broken = TiktokenEncoder(hf, verify_bytes=100)
    broken.encoding = tiktoken_encoding(other)  # right shape, wrong merges: ids differ
    with pytest.raises(EngineMismatch):
        broken.encode_texts(CORPUS[:3])
    unchecked = TiktokenEncoder(hf, verify_bytes=100)
    unchecked.encode_texts(CORPUS[:1])  # spends the budget on a good conversion
    unchecked.encoding = tiktoken_encoding(other)
    assert unchecked.encode_texts(CORPUS[:3]) != hf_ids(hf, CORPUS[:3])  # past the budget nothing is checked
