"""Settings of the tokenization stage and of ``stackv2 tokenizer train`` (docs/spec.md §10)."""

from __future__ import annotations

from dataclasses import dataclass

from stackv2.checks import fraction, non_negative, positive

GIB = 1024**3

#: Output formats the stage can write (``TokenizeConfig.formats``).
MEGATRON = "megatron"
DATATROVE = "datatrove"
FORMATS = (MEGATRON, DATATROVE)
#: Encoding engines: HF ``tokenizers`` (the reference) or a tiktoken encoding of the same tokenizer.
TOKENIZERS = "tokenizers"
TIKTOKEN = "tiktoken"
ENGINES = (TOKENIZERS, TIKTOKEN)


@dataclass(frozen=True)
class TokenizeConfig:
    #: Seeds file order, metadata and FIM draws, document order and the tokenizer-training sample.
    seed: int = 0
    #: P(a repository document carries ``<repo_name>`` and the file paths) (docs/spec.md §10.1).
    metadata_rate: float = 0.5
    #: P(a repository is a FIM candidate) (docs/spec.md §10.1).
    fim_repo_rate: float = 0.5
    #: P(a file of a FIM-candidate repository is FIM-transformed) (docs/spec.md §10.1).
    fim_file_rate: float = 0.5
    #: P(a FIM-transformed file uses SPM instead of PSM). The paper shows PSM and states no SPM rate.
    fim_spm_rate: float = 0.0
    #: The product whose rows become the token files (``stackv2.release.products``): StarCoder2 trained on
    #: ``the-stack-v2-train-full`` (15B) and ``-train-smol`` (3B, 7B).
    product: str = "the-stack-v2-train-full"
    #: Also the notebook products, in StarCoder2's forms (``jupyter-scripts``, ``jupyter-structured``: one document
    #: per notebook, in token shards of their own), when the ``notebooks`` stage ran.
    notebooks: bool = True
    #: An HF ``tokenizer.json``; empty means ``<work_dir>/tokenizer/tokenizer.json`` (``stackv2 tokenizer train``).
    tokenizer: str = ""
    #: Vocabulary size of a trained tokenizer, sentinels included (docs/spec.md §10.3).
    vocab_size: int = 49_152
    #: Bytes of file contents the tokenizer is trained on, a seeded sample of the release shards.
    train_sample_bytes: int = 1 * GIB
    #: Token-file formats to write, any of ``FORMATS``.
    formats: tuple[str, ...] = FORMATS
    #: ``tiktoken`` gives the ids of ``tokenizers`` several times faster (docs/tokenize.md); tokenizers it cannot
    #: reproduce fall back to ``tokenizers``, and each shard first checks ``verify_bytes`` of text (characters)
    #: on both.
    engine: str = TIKTOKEN
    verify_bytes: int = 1024 * 1024
    #: Text (characters) handed to one ``encode_batch`` call: bigger batches keep all cores busy.
    batch_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown or not self.formats:
            raise ValueError(f"tokenize.formats: unknown {unknown}; known: {list(FORMATS)}")
        if self.engine not in ENGINES:
            raise ValueError(f"tokenize.engine: {self.engine!r} is not one of {list(ENGINES)}")
        fraction(self, "tokenize", "metadata_rate", "fim_repo_rate", "fim_file_rate", "fim_spm_rate")
        positive(self, "tokenize", "vocab_size", "train_sample_bytes", "batch_bytes")
        non_negative(self, "tokenize", "verify_bytes")
