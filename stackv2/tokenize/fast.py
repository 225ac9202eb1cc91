"""A faster engine: a tiktoken encoding built from the same vocabulary, merges and pre-tokenizer as the HF file.

tiktoken applies the merge whose result has the lowest rank; a trained byte-level BPE numbers each merged
token after the merge that made it, so ranks = ids give the same merges. The pre-tokenizer becomes one regex:
StarCoder2's "split every digit, then the GPT-2 regex on what is left" is the GPT-2 regex with ``\\p{N}``
taking one digit and a digit ending a whitespace run as the end of its piece did. Only tokenizers of that
shape are converted (anything else raises ``UnsupportedTokenizer``), and the bench and tests check the ids
against ``tokenizers`` id for id.
"""

from __future__ import annotations

import json
import os
import warnings
from functools import cache

import tiktoken
from tokenizers import Tokenizer

from stackv2.tokenize.config import TIKTOKEN, TOKENIZERS
from stackv2.tokenize.tokenizer import DocumentEncoder

GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
DIGITS_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""

_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
_DIGITS = {"type": "Digits", "individual_digits": True}
_PLAIN_BPE = {
    "type": "BPE",
    "dropout": None,
    "continuing_subword_prefix": None,
    "end_of_word_suffix": None,
    "byte_fallback": False,
    "ignore_merges": False,
}


class UnsupportedTokenizer(ValueError):
    """The tokenizer is not a plain byte-level BPE that tiktoken reproduces exactly."""


@cache
def byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in for each byte, reversed (the alphabet of byte-level BPE vocabularies)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(others)}


def _matches(conf: dict | None, expected: dict) -> bool:
    return conf is not None and all(conf.get(k) == v for k, v in expected.items())


def split_pattern(pre_tokenizer: dict | None) -> str:
    if _matches(pre_tokenizer, _BYTE_LEVEL):
        return GPT2_SPLIT
    steps = (pre_tokenizer or {}).get("pretokenizers", [])
    if len(steps) == 2 and _matches(steps[0], _DIGITS) and _matches(steps[1], _BYTE_LEVEL):
        return DIGITS_SPLIT
    raise UnsupportedTokenizer(f"pre-tokenizer {pre_tokenizer} is not ByteLevel or Digits + ByteLevel")


def tiktoken_encoding(tok: Tokenizer) -> tiktoken.Encoding:
    conf = json.loads(tok.to_str())
    if conf.get("normalizer") is not None or not _matches(conf["model"], _PLAIN_BPE):
        raise UnsupportedTokenizer("only byte-level BPE without normalizer, dropout or affixes converts")
    added = conf.get("added_tokens", [])
    if any(not t["special"] for t in added):
        raise UnsupportedTokenizer("non-special added tokens are matched in text by tokenizers, not by tiktoken")
    special = {t["content"] for t in added}
    decode = byte_decoder()
    try:
        ranks = {bytes(decode[c] for c in t): i for t, i in conf["model"]["vocab"].items() if t not in special}
    except KeyError as e:
        raise UnsupportedTokenizer(f"vocabulary token with a non byte-level character {e}") from None
    return tiktoken.Encoding(
        name="stackv2", pat_str=split_pattern(conf["pre_tokenizer"]), mergeable_ranks=ranks, special_tokens={}
    )


class EngineMismatch(RuntimeError):
    """tiktoken and tokenizers gave different ids: the conversion does not hold for this tokenizer."""


class TiktokenEncoder(DocumentEncoder):
    """``DocumentEncoder`` whose text parts go through the tiktoken encoding, on every core.

    The first ``verify_bytes`` of text it sees are also encoded by ``tokenizers``; any difference raises
    ``EngineMismatch`` before a single token is written.
    """

    def __init__(self, tokenizer: Tokenizer, threads: int | None = None, verify_bytes: int = 0):
        super().__init__(tokenizer)
        self.encoding = tiktoken_encoding(tokenizer)
        self.threads = threads or os.cpu_count() or 1
        self.unverified = verify_bytes

    def encode_texts(self, texts: list[str]) -> list[list[int]]:
        ids = self.encoding.encode_ordinary_batch(texts, num_threads=self.threads)
        if self.unverified > 0:
            n = 0
            while n < len(texts) and self.unverified > 0:
                self.unverified -= len(texts[n])
                n += 1
            if ids[:n] != super().encode_texts(texts[:n]):
                raise EngineMismatch(
                    f"tiktoken ids differ from tokenizers for this tokenizer: set tokenize.engine={TOKENIZERS}"
                )
        return ids


def make_encoder(tokenizer: Tokenizer, engine: str, verify_bytes: int = 0) -> DocumentEncoder:
    """The document encoder of ``TokenizeConfig.engine``; ``tokenizers`` where tiktoken cannot reproduce it."""
    if engine == TIKTOKEN:
        try:
            return TiktokenEncoder(tokenizer, verify_bytes=verify_bytes)
        except UnsupportedTokenizer as e:
            warnings.warn(f"tokenize.engine={TIKTOKEN}: {e}; encoding with {TOKENIZERS}", stacklevel=2)
    return DocumentEncoder(tokenizer)
