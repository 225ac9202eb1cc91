"""The products of a run, named as BigCode published them, and the stage whose output each one is (docs/spec.md §2).

* ``the-stack-v2``: one copy per blob, permissive or unlicensed, with a language (stage ``exact_dedup``);
* ``the-stack-v2-dedup``: that, near-deduplicated per language (stage ``near_dedup``);
* ``the-stack-v2-train-full`` and ``-train-smol``: after the training heuristics, decontamination, PII redaction
  and the composition rules, grouped by repository (stage ``compose``; smol is its ``train_smol`` rows);
* ``jupyter-scripts`` and ``jupyter-structured``: the notebooks of ``the-stack-v2`` as scripts and as
  text/code/output triplets (stage ``notebooks``), one row per notebook.

The first two are file-level (``schema.RELEASE``, one row per file); the training sets are repository-level
(``schema.RELEASE_REPOS``, one row per repository with its ``files``), as the ``-ids`` tables were published.
"""

from __future__ import annotations

from dataclasses import dataclass

THE_STACK_V2 = "the-stack-v2"
THE_STACK_V2_DEDUP = "the-stack-v2-dedup"
TRAIN_FULL = "the-stack-v2-train-full"
TRAIN_SMOL = "the-stack-v2-train-smol"
JUPYTER_SCRIPTS = "jupyter-scripts"
JUPYTER_STRUCTURED = "jupyter-structured"

#: ``compose``'s column saying a training row is in ``-train-smol`` too.
SMOL_COLUMN = "train_smol"


@dataclass(frozen=True)
class Product:
    name: str
    #: The stage whose ``data`` output holds the product's rows.
    stage: str
    #: True: one row per repository (``schema.RELEASE_REPOS``); False: one row per file (``schema.RELEASE``).
    repo_level: bool
    #: A boolean column the stage's rows must have true to be in the product (None: every row).
    only: str | None = None
    description: str = ""
    #: The stage's column released as ``content`` (its UTF-8 length becomes ``length_bytes``).
    content: str = "content"
    #: Whether its contents went through PII redaction (the training data did; the-stack-v2's contents did not).
    redacted: bool = False
    #: The Hugging Face dataset BigCode published it as.
    published: str = ""


_EXTRAS = "bigcode/starcoder2data-extras"
PRODUCTS: tuple[Product, ...] = (
    Product(
        THE_STACK_V2,
        "exact_dedup",
        False,
        description="one copy of each file, permissive or unlicensed",
        published="bigcode/the-stack-v2",
    ),
    Product(
        THE_STACK_V2_DEDUP,
        "near_dedup",
        False,
        description="the-stack-v2, near-deduplicated per language",
        published="bigcode/the-stack-v2-dedup",
    ),
    Product(
        TRAIN_FULL,
        "compose",
        True,
        description="filtered, decontaminated, redacted, grouped by repository",
        redacted=True,
        published="bigcode/the-stack-v2-train-full-ids",
    ),
    Product(
        TRAIN_SMOL,
        "compose",
        True,
        only=SMOL_COLUMN,
        description="train-full's smol languages",
        redacted=True,
        published="bigcode/the-stack-v2-train-smol-ids",
    ),
    Product(
        JUPYTER_SCRIPTS,
        "notebooks",
        False,
        only="has_script",
        description="the-stack-v2's notebooks as scripts",
        redacted=True,
        published=_EXTRAS,
    ),
    Product(
        JUPYTER_STRUCTURED,
        "notebooks",
        False,
        only="has_structured",
        description="the-stack-v2's notebooks as text, code and output triplets",
        content="structured",
        redacted=True,
        published=_EXTRAS,
    ),
)


def product(name: str) -> Product:
    for p in PRODUCTS:
        if p.name == name:
            return p
    raise ValueError(f"unknown product {name!r}; products: {[p.name for p in PRODUCTS]}")
