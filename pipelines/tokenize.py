"""Stage ``tokenize``: the release shards as repository-context documents with FIM, in token files (spec §10).

Reads the released rows (``shards``' row table; the tokenizer is trained on ``<work_dir>/release/data``),
hash-partitions them on ``repo_name`` into ``spark.shuffle_partitions`` partitions, orders each partition by a
seeded hash of the repository name (the document shuffle), and turns each partition into one token shard
(``udfs.tokenize``):
``<work_dir>/tokens/megatron/part-NNNNN.{bin,idx}`` and ``<work_dir>/tokens/datatrove/part-NNNNN.ds*``.
``tokens/manifest.json`` lists the shards; ``tokens/tokenizer.json`` is the tokenizer they were made with.

The ``data`` output has one row per release file (``schema.TOKENIZED_FILES``): where it went and how many
tokens it took, so the stats give tokens per language. Rejected: ``missing_content``.

The token files are written by the executors straight into the work folder, so on a cluster ``work_dir`` must be
a file system every node sees (a shared mount).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines._job import Output, StageContext, StageResult
from pipelines.runner import Stage
from stackv2.config import RunConfig, load_config, to_dict
from stackv2.schema import TOKENIZED_FILES
from stackv2.tokenize.config import DATATROVE, MEGATRON
from stackv2.tokenize.megatron import MegatronReader
from stackv2.tokenize.sample import sample_release
from stackv2.tokenize.stream import MISSING_CONTENT, FileRow
from stackv2.tokenize.tokenizer import load_tokenizer, train_tokenizer
from udfs.arrow import to_spark_schema
from udfs.tokenize import tokenize_partitions

KEY = ("repo_name", "path")
TOKENS_DIR = "tokens"
MANIFEST = "manifest.json"


def release_data(work_dir: Path) -> Path:
    return work_dir / "release" / "data"


def tokenizer_path(cfg: RunConfig) -> Path:
    """``tokenize.tokenizer``, else where ``stackv2 tokenizer train`` puts it."""
    if cfg.tokenize.tokenizer:
        return Path(cfg.tokenize.tokenizer)
    return Path(cfg.work_dir) / "tokenizer" / "tokenizer.json"


def shard_totals(out: Path, formats: tuple[str, ...]) -> list[dict[str, Any]]:
    """Documents and tokens of every shard, read from the files on disk (index files only)."""
    if MEGATRON in formats:
        readers = {p.stem: MegatronReader(p.with_suffix("")) for p in sorted((out / MEGATRON).glob("*.idx"))}
        return [{"name": k, "documents": len(r), "tokens": r.num_tokens} for k, r in readers.items()]
    totals = []
    for p in sorted((out / DATATROVE).glob("*.ds.index")):
        ends = np.fromfile(p, dtype="<u8")
        totals.append(
            {
                "name": p.name.removesuffix(".ds.index"),
                "documents": len(ends),
                "tokens": int(ends[-1]) if len(ends) else 0,
            }
        )
    return totals


def token_stats(manifest: dict[str, Any]) -> Callable[[DataFrame], dict[str, Any]]:
    """Tokens per language, documents, FIM and metadata counts from the written per-file table (one pass),
    checked against the token files: the row table and the files must describe the same tokens."""

    def stats(files: DataFrame) -> dict[str, Any]:
        first = F.col("position") == 0
        rows = (
            files.groupBy("language")
            .agg(
                F.sum("tokens").alias("tokens"),
                F.sum(F.col("fim").isNotNull().cast("long")).alias("fim_files"),
                F.sum(first.cast("long")).alias("documents"),
                F.sum((first & F.col("metadata")).cast("long")).alias("with_metadata"),
            )
            .collect()
        )
        out = {k: sum(r[k] for r in rows) for k in ("tokens", "documents", "fim_files")}
        on_disk = {k: sum(s[k] for s in manifest["shards"]) for k in ("tokens", "documents")}
        if on_disk != {k: out[k] for k in on_disk}:
            raise RuntimeError(f"token files hold {on_disk}, the per-file table says {out}")
        out["documents_with_metadata"] = sum(r["with_metadata"] for r in rows)
        out["tokens_by_language"] = {r["language"] or "unknown": r["tokens"] for r in rows}
        return out

    return stats


def build(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg.tokenize
    tok_path = tokenizer_path(ctx.cfg).resolve()
    trained = None
    if not cfg.tokenizer and not tok_path.exists():  # no tokenizer given: train the default one on the release
        trained = train_command(ctx.cfg, tok_path)
    load_tokenizer(tok_path)  # fail here, with a clear message, rather than in every task
    out = ctx.work_dir / TOKENS_DIR
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    rows = ctx.read("shards").select(*FileRow._fields)  # the released rows (Spark cannot read the shards' ns times)
    shards_stats = ctx.stats_of("shards")
    rows_in = shards_stats.rows_out if shards_stats is not None else rows.count()
    rejected = rows.where(F.col("content").isNull()).drop("content").withColumn("reason", F.lit(MISSING_CONTENT))
    ordered = (
        rows.where(F.col("content").isNotNull())
        .repartition(ctx.cfg.spark.shuffle_partitions, "repo_name")
        .sortWithinPartitions(F.xxhash64(F.lit(cfg.seed), "repo_name"), "repo_name", "path")
    )
    files = ordered.mapInArrow(tokenize_partitions(cfg, str(tok_path), str(out)), to_spark_schema(TOKENIZED_FILES))
    files = files.localCheckpoint()  # tokenize once; a recomputation would rewrite the same bytes
    shutil.copyfile(tok_path, out / "tokenizer.json")
    manifest = {
        "shards": shard_totals(out, cfg.formats),
        "formats": list(cfg.formats),
        "tokenize": to_dict(cfg),
        "config_hash": ctx.config_hash,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return StageResult(
        data=Output(files, KEY),
        rejected=Output(rejected, KEY),
        rows_in=rows_in,
        extra={
            "tokens_dir": str(out),
            "shards": len(manifest["shards"]),
            "tokenizer": str(tok_path),
            "tokenizer_trained": trained,
        },
        extra_stats=token_stats(manifest),
    )


def train_command(cfg: RunConfig, output: str | Path | None = None) -> dict[str, Any]:
    """``stackv2 tokenizer train``: learn the vocabulary from a seeded sample of the release shards."""
    target = Path(output) if output else tokenizer_path(cfg)
    texts = sample_release(release_data(Path(cfg.work_dir)), cfg.tokenize.train_sample_bytes, cfg.tokenize.seed)
    tok = train_tokenizer(texts, cfg.tokenize.vocab_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(target))
    return {
        "tokenizer": str(target),
        "vocab_size": tok.get_vocab_size(),
        "sample_files": len(texts),
        "sample_bytes": sum(len(t.encode()) for t in texts),
    }


def _cmd_train(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    if args.work:
        cfg = dataclasses.replace(cfg, work_dir=args.work)
    t0 = time.monotonic()
    info = train_command(cfg, args.out)
    print(json.dumps({**info, "seconds": round(time.monotonic() - t0, 1)}, indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``stackv2 tokenizer train``."""
    tok = sub.add_parser("tokenizer", help="the tokenizer of the tokenize stage")
    p = tok.add_subparsers(dest="action", required=True).add_parser(
        "train", help="train the byte-level BPE on a sample of the release shards",
        description="Byte-level BPE with StarCoder2's special tokens and digit splitting (spec §10.3), trained on "
                    "a seeded sample (tokenize.train_sample_bytes) of WORK/release/data.")  # fmt: skip
    p.add_argument("--work", default=None, help="work folder holding release/ (default: the config's work_dir)")
    p.add_argument("--out", default=None, help="tokenizer.json to write (default: WORK/tokenizer/tokenizer.json)")
    p.add_argument("--config", default=None, help="YAML run config (tokenize.vocab_size, seed ...)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set tokenize.vocab_size=32768",
    )
    p.set_defaults(func=_cmd_train)


def _tokenizer_fingerprint(cfg: RunConfig) -> str:
    """A given tokenizer file's contents are part of the stage's config hash (retraining in place reruns it)."""
    p = Path(cfg.tokenize.tokenizer) if cfg.tokenize.tokenizer else None
    return hashlib.sha256(p.read_bytes()).hexdigest() if p and p.is_file() else ""


STAGE = Stage("tokenize", build, config_keys=("tokenize",), fingerprint=_tokenizer_fingerprint)
