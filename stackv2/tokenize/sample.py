"""The seeded sample of the release that ``stackv2 tokenizer train`` learns the vocabulary from, and the training.

The sample is drawn from one product's released shards (``<work>/shards/release/<product>``, as its manifest lists
them). Unique blobs are ranked by a seeded hash of ``blob_id`` and taken in that order until the byte budget is spent:
the sample depends on the seed and the release contents, not on shard layout or file order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from stackv2.release.layout import file_columns, shard_files
from stackv2.storage import Location, location
from stackv2.tokenize.config import TokenizeConfig
from stackv2.tokenize.tokenizer import train_tokenizer


def sample_release(product: str | Path | Location, budget_bytes: int, seed: int) -> list[str]:
    """File contents of the sample of the product released in the folder ``product``, in hash order."""
    shards = shard_files(product)
    length: dict[str, int] = {}
    for shard in shards:
        for t in file_columns(shard, ["blob_id", "length_bytes"]):
            length.update(zip(t["blob_id"].to_pylist(), t["length_bytes"].to_pylist(), strict=True))
    chosen, total = [], 0
    for blob in sorted(length, key=lambda b: (xxhash.xxh64_intdigest(b, seed=seed), b)):
        if chosen and total + length[blob] > budget_bytes:
            break
        chosen.append(blob)
        total += length[blob]
    chosen_ids = pa.array(chosen, pa.string())
    content: dict[str, str] = {}
    for shard in shards:
        for t in file_columns(shard, ["blob_id", "content"]):
            t = t.filter(pc.is_in(t["blob_id"], value_set=chosen_ids))
            for blob, text in zip(t["blob_id"].to_pylist(), t["content"].to_pylist(), strict=True):
                if text is not None:
                    content.setdefault(blob, text)
    return [content[b] for b in chosen if b in content]


def train_on_release(
    release: str | Path | Location, cfg: TokenizeConfig, target: str | Path | Location
) -> dict[str, Any]:
    """``stackv2 tokenizer train``: learn the vocabulary from a seeded sample of ``tokenize.product`` as released in
    ``release`` (``tokenize.train_sample_bytes``, ``tokenize.seed``) and save it to ``target`` (a path or URI)."""
    texts = sample_release(location(release) / cfg.product, cfg.train_sample_bytes, cfg.seed)
    tok = train_tokenizer(texts, cfg.vocab_size)
    target = location(target)
    target.write_text(tok.to_str(pretty=True))  # what ``Tokenizer.save`` writes
    return {
        "tokenizer": target.uri,
        "vocab_size": tok.get_vocab_size(),
        "sample_files": len(texts),
        "sample_bytes": sum(len(t.encode()) for t in texts),
    }
