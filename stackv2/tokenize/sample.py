"""The seeded sample of the release that ``stackv2 tokenizer train`` learns the vocabulary from, and the training.

The sample is drawn from the ``shards`` stage's row table (every released file of every product, one row per file,
``product`` naming its product), restricted to one product. Unique blobs are ranked by a seeded hash of ``blob_id`` and
taken in that order until the byte budget is spent: the sample depends on the seed and the release contents, not on
shard layout or file order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from stackv2.storage import Location, dataset, location
from stackv2.tokenize.config import TokenizeConfig
from stackv2.tokenize.tokenizer import train_tokenizer
from stackv2.workdir import committed_files


def release_files(data_dir: str | Path | Location) -> list[Path] | list[Location]:
    """The files of the ``shards`` stage's row table, as its manifest lists them."""
    try:
        return committed_files(data_dir)
    except FileNotFoundError:
        raise FileNotFoundError(f"no released rows in {data_dir}: run the shards stage first") from None


def sample_release(data_dir: str | Path | Location, budget_bytes: int, seed: int, product: str) -> list[str]:
    """File contents of the sample of ``product``'s rows in ``data_dir``, in hash order."""
    rows = dataset(release_files(data_dir))
    mine = pc.field("product") == product
    sizes = rows.to_table(columns=["blob_id", "length_bytes"], filter=mine).to_pydict()
    length = dict(zip(sizes["blob_id"], sizes["length_bytes"], strict=True))
    chosen, total = [], 0
    for blob in sorted(length, key=lambda b: (xxhash.xxh64_intdigest(b, seed=seed), b)):
        if chosen and total + length[blob] > budget_bytes:
            break
        chosen.append(blob)
        total += length[blob]
    chosen_ids = pa.array(chosen, pa.string())
    table = rows.to_table(columns=["blob_id", "content"], filter=mine & pc.field("blob_id").isin(chosen_ids))
    content: dict[str, str] = {}
    for blob, text in zip(table["blob_id"].to_pylist(), table["content"].to_pylist(), strict=True):
        if text is not None:
            content.setdefault(blob, text)
    return [content[b] for b in chosen if b in content]


def train_on_release(
    data_dir: str | Path | Location, cfg: TokenizeConfig, target: str | Path | Location
) -> dict[str, Any]:
    """``stackv2 tokenizer train``: learn the vocabulary from a seeded sample of ``tokenize.product``'s rows in
    ``data_dir`` (``tokenize.train_sample_bytes``, ``tokenize.seed``) and save it to ``target`` (a path or URI)."""
    texts = sample_release(data_dir, cfg.train_sample_bytes, cfg.seed, cfg.product)
    tok = train_tokenizer(texts, cfg.vocab_size)
    target = location(target)
    target.write_text(tok.to_str(pretty=True))  # what ``Tokenizer.save`` writes
    return {
        "tokenizer": target.uri,
        "vocab_size": tok.get_vocab_size(),
        "sample_files": len(texts),
        "sample_bytes": sum(len(t.encode()) for t in texts),
    }
