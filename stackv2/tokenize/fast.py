"""A faster engine: a tiktoken encoding built from the same vocabulary, merges and pre-tokenizer as the HF file.

It replaces only ``DocumentEncoder.encode_plain``: what is special in text (the PII placeholders) is decided
by the shared ``DocumentEncoder.encode_texts``, and both engines encode everything else as plain text (tiktoken's
``encode_ordinary``; ``tokenizers`` with special-token matching off), so sentinels and placeholders cannot make
the engines differ. What remains is plain BPE:

tiktoken applies the merge whose result has the lowest rank; a trained byte-level BPE numbers each merged
token after the merge that made it, so ranks = ids give the same merges (checked: ids must follow the merge
order, every multi-byte token must come from a merge, all 256 bytes must be tokens). The pre-tokenizer becomes
one regex: StarCoder2's "split every digit, then the GPT-2 regex on what is left" is the GPT-2 regex with
``\\p{N}`` taking one digit and a digit ending a whitespace run as the end of its piece did. Only tokenizers of
that shape are converted (anything else raises ``UnsupportedTokenizer``); the tests, the bench and a check of the
demo corpus compare the ids with ``tokenizers`` id for id, and ``TiktokenEncoder`` re-checks a probe text and the
first ``verify_bytes`` of every shard against ``tokenizers`` for tokenizer files the tests never saw.
"""

from __future__ import annotations

import json
import os
import warnings
from functools import cache
from itertools import pairwise

import tiktoken
from tokenizers import Tokenizer

from stackv2.tokenize.config import TIKTOKEN, TOKENIZERS
from stackv2.tokenize.tokenizer import PLACEHOLDERS, SPECIAL_TOKENS, DocumentEncoder

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
    vocab = {t: i for t, i in conf["model"]["vocab"].items() if t not in special}
    _check_merge_order(vocab, conf["model"]["merges"])
    decode = byte_decoder()
    try:
        ranks = {bytes(decode[c] for c in t): i for t, i in vocab.items()}
    except KeyError as e:
        raise UnsupportedTokenizer(f"vocabulary token with a non byte-level character {e}") from None
    return tiktoken.Encoding(
        name="stackv2", pat_str=split_pattern(conf["pre_tokenizer"]), mergeable_ranks=ranks, special_tokens={}
    )


def _check_merge_order(vocab: dict[str, int], merges: list) -> None:
    """tiktoken's ranks are the ids: they must order the tokens as the merges do, and tiktoken may only build
    tokens the merges build."""
    if not set(byte_decoder()) <= vocab.keys():
        raise UnsupportedTokenizer("the vocabulary lacks some of the 256 byte tokens")
    pairs = (m.split(" ") if isinstance(m, str) else m for m in merges)
    merged = [vocab.get("".join(pair)) for pair in pairs]
    if None in merged or any(a >= b for a, b in pairwise(merged)):
        raise UnsupportedTokenizer("token ids do not follow the merge order")
    if len(vocab) != 256 + len(merged):
        raise UnsupportedTokenizer("the vocabulary has tokens no merge builds")


#: Text every ``TiktokenEncoder`` checks against ``tokenizers`` first: the special strings whole, cut and glued,
#: digits, Unicode and whitespace runs (what the GPT-2 regex and the digit split disagree on most easily).
PROBE = (
    "".join(
        f"{t} x{t}y {t[:-1]} {t[1:]}<{t}>{t}{t} 12{t}3\n" for t in (*dict.fromkeys(SPECIAL_TOKENS + PLACEHOLDERS), "<")
    )
    + "٣٤½ 十 1234567 a  1\t \r\n\u00a0\u2028é🎉 it's   \n\n    return 0  "
)


class EngineMismatch(RuntimeError):
    """tiktoken and tokenizers gave different ids: the conversion does not hold for this tokenizer."""


class TiktokenEncoder(DocumentEncoder):
    """``DocumentEncoder`` whose plain text goes through the tiktoken encoding, on every core.

    ``PROBE`` and the first ``verify_bytes`` of plain text it sees are also encoded by ``tokenizers``; any
    difference raises ``EngineMismatch`` (for a shard: before a single token is written). The tests prove the
    conversion on the tokenizers they train; this guards a tokenizer file they never saw, at the cost of
    encoding ``verify_bytes`` twice per shard.
    """

    def __init__(self, tokenizer: Tokenizer, threads: int | None = None, verify_bytes: int = 0):
        super().__init__(tokenizer)
        self.encoding = tiktoken_encoding(tokenizer)
        self.threads = threads or os.cpu_count() or 1
        self.unverified = verify_bytes
        self._verify([PROBE], self.encoding.encode_ordinary_batch([PROBE]))

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        ids = self.encoding.encode_ordinary_batch(texts, num_threads=self.threads)
        if self.unverified > 0:
            n = 0
            while n < len(texts) and self.unverified > 0:
                self.unverified -= len(texts[n])
                n += 1
            self._verify(texts[:n], ids[:n])
        return ids

    def _verify(self, texts: list[str], ids: list[list[int]]) -> None:
        if ids != super().encode_plain(texts):
            raise EngineMismatch(
                f"tiktoken ids differ from tokenizers for this tokenizer: set tokenize.engine={TOKENIZERS}"
            )


def make_encoder(tokenizer: Tokenizer, engine: str, verify_bytes: int = 0) -> DocumentEncoder:
    """The document encoder of ``TokenizeConfig.engine``; ``tokenizers`` where tiktoken cannot reproduce it."""
    if engine == TIKTOKEN:
        try:
            return TiktokenEncoder(tokenizer, verify_bytes=verify_bytes)
        except (UnsupportedTokenizer, EngineMismatch) as e:
            warnings.warn(f"tokenize.engine={TIKTOKEN}: {e}; encoding with {TOKENIZERS}", stacklevel=2)
    return DocumentEncoder(tokenizer)
