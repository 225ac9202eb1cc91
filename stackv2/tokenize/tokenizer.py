"""Loading and training the tokenizer, and encoding repository documents into token ids (docs/spec.md §10.3).

Any HF ``tokenizer.json`` works (the real StarCoder2 one when the user has it) as long as it knows the
sentinels a repository document uses and the PII placeholders. ``train_tokenizer`` builds the StarCoder2 design
from text: byte-level BPE, digits split one by one before the GPT-2 regex, the StarCoder2 special tokens first in
the vocabulary in their published order (``<|endoftext|>`` = 0).

What is special in text (docs/tokenize.md): the PII placeholders (``<EMAIL>``...) become their special ids
wherever they appear, so a redacted span trains as one token; every other special string in content
(``<|endoftext|>``, ``<fim_prefix>``...) is plain byte-level BPE text. Structure tokens come from ``Part`` s,
never from text. The split at placeholders is done here, once, for every engine; an engine only encodes plain
text (``DocumentEncoder.encode_plain``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from stackv2.pii.config import PLACEHOLDERS as PII_PLACEHOLDERS
from stackv2.storage import Location, location
from stackv2.tokenize.format import EOS, NOTEBOOK_SENTINELS, SENTINELS, Document, Part

#: StarCoder2's special tokens in vocabulary order (docs/spec.md §10.3).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<repo_name>", "<file_sep>",
    "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>", "<jupyter_text>", "<jupyter_code>",
    "<jupyter_output>", "<jupyter_script>", "<empty_output>", "<code_to_intermediate>", "<intermediate_to_code>",
    "<pr>", "<pr_status>", "<pr_is_merged>", "<pr_base>", "<pr_file>", "<pr_base_code>", "<pr_diff>",
    "<pr_diff_hunk>", "<pr_comment>", "<pr_event_id>", "<pr_review>", "<pr_review_state>", "<pr_review_comment>",
    "<pr_in_reply_to_review_id>", "<pr_in_reply_to_comment_id>", "<pr_diff_hunk_comment_line>",
    "<NAME>", "<EMAIL>", "<KEY>", "<PASSWORD>",
)  # fmt: skip
#: What the PII stage writes for a redacted value: the only special tokens matched in text.
PLACEHOLDERS = tuple(PII_PLACEHOLDERS.values())
#: Splits text at placeholders, keeping them (odd items); longest first, as HF's added-token matching.
_PLACEHOLDER_SPLIT = re.compile("(" + "|".join(map(re.escape, sorted(PLACEHOLDERS, key=len, reverse=True))) + ")")


class TokenizerError(ValueError):
    """A tokenizer file that is missing or cannot encode repository documents."""


def token_ids(tok: Tokenizer, tokens: Iterable[str]) -> dict[str, int]:
    ids = {t: tok.token_to_id(t) for t in tokens}
    missing = [t for t, i in ids.items() if i is None]
    if missing:
        raise TokenizerError(f"the tokenizer lacks the sentinel or placeholder token(s) {missing}")
    return ids


def load_tokenizer(path: str | Path | Location) -> Tokenizer:
    """Load ``tokenizer.json`` (a local path or a URI) and check it has every sentinel and PII placeholder."""
    p = location(path)
    try:
        text = p.read_text()
    except (FileNotFoundError, IsADirectoryError):
        raise TokenizerError(
            f"tokenizer file {p} does not exist: train one with `stackv2 tokenizer train` or set tokenize.tokenizer"
        ) from None
    tok = Tokenizer.from_str(text)
    try:
        token_ids(tok, SENTINELS + PLACEHOLDERS)
    except TokenizerError as e:
        raise TokenizerError(f"{p}: {e}") from None
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE with StarCoder2's pre-tokenizer and special tokens, trained on ``texts`` (deterministic).

    A PII placeholder StarCoder2 did not have comes after its special tokens."""
    specials = list(dict.fromkeys(SPECIAL_TOKENS + PLACEHOLDERS))
    if vocab_size < len(specials) + 256:
        raise TokenizerError(f"vocab_size {vocab_size} < {len(specials)} special tokens + 256 bytes")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (Megatron and datatrove both read it), else int32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.int32)


@dataclass
class EncodedDocument:
    ids: np.ndarray
    #: Tokens per file chunk in document order; the header goes to the first file, ``<|endoftext|>`` to the
    #: last, so the counts add up to ``len(ids)``.
    file_tokens: list[int]


class DocumentEncoder:
    """Encodes repository documents: all their text parts in one batch, sentinels by id, placeholders by id.

    It switches the tokenizer's special-token matching off (``encode_special_tokens``): in text only the
    placeholders are special, and this class, not the engine, finds them.
    """

    def __init__(self, tokenizer: Tokenizer):
        tokenizer.encode_special_tokens = True
        self.tokenizer = tokenizer
        self.dtype = token_dtype(tokenizer.get_vocab_size())
        # Notebook sentinels only where the tokenizer has them: ``notebook_ids`` checks before notebooks are encoded.
        notebook = {t: i for t in NOTEBOOK_SENTINELS if (i := tokenizer.token_to_id(t)) is not None}
        self.special_ids = {**token_ids(tokenizer, SENTINELS), **notebook}
        self.placeholder_ids = token_ids(tokenizer, PLACEHOLDERS)

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        """Byte-level BPE of each text, special strings included as text: the one thing engines do differently."""
        return [e.ids for e in self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]

    def encode_texts(self, texts: list[str]) -> list[list[int]]:
        """Ids of each text: placeholders as their ids, the pieces around them through ``encode_plain``."""
        pieces = [_PLACEHOLDER_SPLIT.split(t) for t in texts]
        plain = iter(self.encode_plain([p for split in pieces for p in split[::2]]))
        out = []
        for split in pieces:
            ids = next(plain)
            for placeholder in split[1::2]:
                ids.append(self.placeholder_ids[placeholder])
                ids.extend(next(plain))
            out.append(ids)
        return out

    def encode(self, docs: Sequence[Document]) -> list[EncodedDocument]:
        texts = [p.text for d in docs for p in d.parts() if not p.special and p.text]
        encoded = iter(self.encode_texts(texts))
        out = []
        for d in docs:
            header = self._ids(d.header, encoded)
            chunks = [self._ids(c.parts, encoded) for c in d.chunks]
            chunks[0] = header + chunks[0]
            chunks[-1].append(self.special_ids[EOS])
            ids = np.array(list(chain.from_iterable(chunks)), dtype=self.dtype)
            out.append(EncodedDocument(ids, [len(c) for c in chunks]))
        return out

    def _ids(self, parts: Sequence[Part], encoded: Iterable[list[int]]) -> list[int]:
        ids: list[int] = []
        for p in parts:
            if p.special:
                ids.append(self.special_ids[p.text])
            elif p.text:
                ids.extend(next(encoded))
        return ids

    def decode_parts(self, ids: Sequence[int]) -> list[Part]:
        """Token ids back to parts: sentinel ids become sentinels, the runs between them (placeholders included)
        are decoded text."""
        by_id = {v: k for k, v in self.special_ids.items()}
        parts: list[Part] = []
        run: list[int] = []
        for i in map(int, ids):
            if i in by_id:
                if run:
                    parts.append(Part(self.tokenizer.decode(run, skip_special_tokens=False)))
                    run = []
                parts.append(Part(by_id[i], True))
            else:
                run.append(i)
        if run:
            parts.append(Part(self.tokenizer.decode(run, skip_special_tokens=False)))
        return parts
