"""Stage ``tokenize``: the training product as repository documents with FIM, in token files (docs/spec.md §10).

Reads the released files of ``tokenize.product`` (``the-stack-v2-train-full`` by default) from its shards in the
release (the default tokenizer is trained on a sample of the same files), hash-partitions them on ``repo_name`` into
``spark.shuffle_partitions`` partitions, orders each partition by a seeded hash of the repository name (the document
shuffle), and turns each partition into one token shard (``udfs.tokenize``):
``<work_dir>/tokenize/tokens/megatron/part-NNNNN.{bin,idx}`` and ``.../tokens/datatrove/part-NNNNN.ds*``.
``tokens/manifest.json`` lists the shards; ``tokens/tokenizer.json`` is the tokenizer they were made with.

The ``data`` output has one row per release file (``schema.TOKENIZED_FILES``): where it went and how many
tokens it took, so the stats give tokens per language. Rejected: ``missing_content``.

The token files are written by the executors straight into the work folder (local, mounted, or an object store:
each file is uploaded whole, ``stackv2.tokenize.stream.TokenSink``); the driver then reads their indexes for the
manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines._job import Output, Stage, StageContext, StageResult, read_parquet
from pipelines.stages.notebooks import HAS_SCRIPT, HAS_STRUCTURED
from stackv2.config import RunConfig, to_dict
from stackv2.release.layout import shard_files
from stackv2.release.products import JUPYTER_SCRIPTS, JUPYTER_STRUCTURED
from stackv2.schema import TOKENIZED_FILES
from stackv2.storage import Location, location
from stackv2.tokenize.config import DATATROVE, MEGATRON, TokenizeConfig
from stackv2.tokenize.format import NOTEBOOK_SENTINELS
from stackv2.tokenize.megatron import read_index
from stackv2.tokenize.sample import train_on_release
from stackv2.tokenize.stream import MISSING_CONTENT, FileRow
from stackv2.tokenize.tokenizer import load_tokenizer, token_ids
from stackv2.workdir import release_dir, tokens_dir, trained_tokenizer
from udfs.arrow import to_spark_schema
from udfs.tokenize import tokenize_notebook_partitions, tokenize_partitions

KEY = ("repo_name", "path")
MANIFEST = "manifest.json"


def tokenizer_path(cfg: RunConfig) -> Location:
    """``tokenize.tokenizer``, else where ``stackv2 tokenizer train`` puts it (a local path resolved)."""
    where = cfg.tokenize.tokenizer or trained_tokenizer(cfg.work_dir)
    p = location(where)
    return location(Path(p.path).resolve()) if p.is_local else p


def _listed(folder: Location, suffix: str) -> list[Location]:
    return [f for f in folder.files(recursive=False) if f.name.endswith(suffix) and not f.name.startswith(".")]


def shard_totals(out: str | Path | Location, formats: tuple[str, ...]) -> list[dict[str, Any]]:
    """Documents and tokens of every shard, read from the files written (index files only)."""
    out = location(out)
    if MEGATRON in formats:
        totals = []
        for p in _listed(out / MEGATRON, ".idx"):
            _, lengths, _, _ = read_index(p.read_bytes(), p.uri)
            totals.append(
                {"name": p.name.removesuffix(".idx"), "documents": len(lengths), "tokens": int(lengths.sum())}
            )
        return totals
    totals = []
    for p in _listed(out / DATATROVE, ".ds.index"):
        ends = np.frombuffer(p.read_bytes(), dtype="<u8")
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


def transform(rows: DataFrame, cfg: TokenizeConfig, tokenizer: Location, out: Location, partitions: int) -> DataFrame:
    """Tokenize the released ``rows`` (with content) into ``partitions`` token shards under ``out``; returns the
    per-file table (``schema.TOKENIZED_FILES``)."""
    ordered = rows.repartition(partitions, "repo_name").sortWithinPartitions(
        F.xxhash64(F.lit(cfg.seed), "repo_name"), "repo_name", "path"
    )
    files = ordered.mapInArrow(tokenize_partitions(cfg, tokenizer.uri, out.uri), to_spark_schema(TOKENIZED_FILES))
    return files.localCheckpoint()  # tokenize once; a recomputation would rewrite the same bytes


def released_files(spark: SparkSession, product: Location) -> DataFrame:
    """``FileRow``'s columns of every file of the product released in the folder ``product``, read from its shards
    as its manifest lists them (a repository-level product's ``files`` exploded): the release as it is now, after
    any opt-out applied to it."""
    shards = shard_files(product)
    if not shards:
        return spark.createDataFrame([], ", ".join(f"{name} string" for name in FileRow._fields))
    rows = read_parquet(spark, shards)
    if "files" in rows.columns:
        rows = rows.select("repo_name", F.explode("files").alias("file")).select("repo_name", "file.*")
    return rows.select(*FileRow._fields)


def notebook_documents(
    notebooks: DataFrame, cfg: TokenizeConfig, tokenizer: Location, out: Location, partitions: int
) -> DataFrame:
    """The notebooks stage's rows as documents of both notebook products, in token shards named after the product;
    returns their per-file rows (one per notebook and form)."""
    forms = []
    for product, has in ((JUPYTER_SCRIPTS, HAS_SCRIPT), (JUPYTER_STRUCTURED, HAS_STRUCTURED)):
        rows = notebooks.where(F.col(has)).select(*FileRow._fields, "cells").repartition(partitions, "blob_id")
        ordered = rows.sortWithinPartitions(F.xxhash64(F.lit(cfg.seed), "blob_id"), "blob_id", "repo_name", "path")
        writer = tokenize_notebook_partitions(cfg, tokenizer.uri, out.uri, product)
        forms.append(ordered.mapInArrow(writer, to_spark_schema(TOKENIZED_FILES)))
    return forms[0].unionByName(forms[1]).localCheckpoint()


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg.tokenize
    ctx.files("shards")  # the shards stage has completed and its outputs are what its manifest lists
    tok_path = tokenizer_path(ctx.cfg)
    trained = None
    if not cfg.tokenizer and not tok_path.exists():  # no tokenizer given: train the default one on the release
        trained = train_on_release(release_dir(ctx.work_dir), cfg, tok_path)
    load_tokenizer(tok_path)  # fail here, with a clear message, rather than in every task
    out = tokens_dir(ctx.work_dir)
    out.delete_tree()
    out.mkdir()

    rows = released_files(ctx.spark, release_dir(ctx.work_dir) / cfg.product)
    rows_in = rows.count()
    rejected = rows.where(F.col("content").isNull()).drop("content").withColumn("reason", F.lit(MISSING_CONTENT))
    partitions = ctx.cfg.spark.shuffle_partitions
    files = transform(rows.where(F.col("content").isNotNull()), cfg, tok_path, out, partitions)
    if cfg.notebooks and ctx.stats_of("notebooks") is not None:
        token_ids(load_tokenizer(tok_path), NOTEBOOK_SENTINELS)  # a clear error before any task, if one is missing
        notebooks = notebook_documents(ctx.read("notebooks"), cfg, tok_path, out, partitions)
        rows_in += notebooks.count()
        files = files.unionByName(notebooks)
    tok_path.copy_to(out / "tokenizer.json")
    manifest = {
        "shards": shard_totals(out, cfg.formats),
        "formats": list(cfg.formats),
        "tokenize": to_dict(cfg),
        "config_hash": ctx.config_hash,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return StageResult(
        data=Output(files, ("shard", "document", "position")),
        rejected=Output(rejected, KEY),
        rows_in=rows_in,
        extra={
            "tokens_dir": out.uri,
            "shards": len(manifest["shards"]),
            "tokenizer": tok_path.uri,
            "tokenizer_trained": trained,
        },
        extra_stats=token_stats(manifest),
    )


def _tokenizer_fingerprint(cfg: RunConfig) -> str:
    """A given tokenizer file's contents are part of the stage's config hash (retraining in place reruns it)."""
    p = location(cfg.tokenize.tokenizer) if cfg.tokenize.tokenizer else None
    return hashlib.sha256(p.read_bytes()).hexdigest() if p and p.is_file() else ""


STAGE = Stage("tokenize", run, config_keys=("tokenize",), fingerprint=_tokenizer_fingerprint)
