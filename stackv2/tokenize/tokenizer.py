"""Loading and training the tokenizer, and encoding repository documents into token ids (docs/spec.md §10.3).

Any HF ``tokenizer.json`` works (the real StarCoder2 one when the user has it) as long as it knows the
sentinels a repository document uses. ``train_tokenizer`` builds the StarCoder2 design from text: byte-level
BPE, digits split one by one before the GPT-2 regex, the StarCoder2 special tokens first in the vocabulary in
their published order (``<|endoftext|>`` = 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from stackv2.tokenize.format import EOS, SENTINELS, Document, Part

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


class TokenizerError(ValueError):
    """A tokenizer file that is missing or cannot encode repository documents."""


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load ``tokenizer.json`` with special-token matching off for text, and check it has every sentinel."""
    p = Path(path)
    if not p.is_file():
        raise TokenizerError(
            f"tokenizer file {p} does not exist: train one with `stackv2 tokenizer train` or set tokenize.tokenizer"
        )
    tok = Tokenizer.from_file(str(p))
    missing = [t for t in SENTINELS if tok.token_to_id(t) is None]
    if missing:
        raise TokenizerError(f"tokenizer {p} lacks the sentinel token(s) {missing}")
    # Content is text even where it spells "<|endoftext|>": sentinels are placed by id, never matched in text.
    tok.encode_special_tokens = True
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE with StarCoder2's pre-tokenizer and special tokens, trained on ``texts`` (deterministic)."""
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise TokenizerError(f"vocab_size {vocab_size} < {len(SPECIAL_TOKENS)} special tokens + 256 bytes")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
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
    """Encodes repository documents: all their text parts in one ``encode_batch`` call, sentinels by id."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.dtype = token_dtype(tokenizer.get_vocab_size())
        self.special_ids = {t: tokenizer.token_to_id(t) for t in SENTINELS}

    def encode_texts(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]

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
        """Token ids back to parts: sentinel ids become sentinels, the runs between them are decoded text."""
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
