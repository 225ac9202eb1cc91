"""Stage ``fetch``: read each unique blob of the file index from the content store and decode it (spec §1.6, §4).

Each ``blob_id`` is fetched once however many rows share it (``udfs.fetch``), inflated with a bounded buffer,
verified against ``blob_id``/``content_id``, rejected if binary, decoded (UTF-8, else cchardet's guess).
Rows whose index ``length`` is already over the cap are rejected ``too_large`` without a request.

The input may also be a published id table of The Stack v2 (``bigcode/the-stack-v2``: no ``length``, but a
``src_encoding``): then every row is requested and decoded with its published encoding, as released.
``s3://`` stores are read with the lean reader (``stackv2.swh.s3fetch``).

Rejected: ``too_large``, ``missing_object``, ``fetch_error``, ``corrupt_object``, ``hash_mismatch``, ``binary``,
``undecodable`` (constants in ``stackv2.text.decode``), each with the input row and a ``detail``.
"""

from __future__ import annotations

from pyspark.sql import functions as F

from pipelines._job import Output, StageContext, StageResult
from pipelines.runner import Stage
from stackv2.schema import BLOB_RESULT, CONTENT_FIELDS, FETCHED, FILE_INDEX, with_reason
from stackv2.text.decode import TOO_LARGE
from udfs.arrow import conform, to_spark_schema
from udfs.fetch import fetch_blobs

KEY = ("directory_id", "path")


def build(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg
    if not cfg.content_store:
        raise ValueError("no content store given: set `content_store` (a folder or s3://bucket[/prefix])")
    index = ctx.input().localCheckpoint()
    rows_in = index.count()
    rejected_schema = with_reason(FILE_INDEX).append(BLOB_RESULT.field("detail"))
    if "length" in index.columns:
        oversized = conform(
            index.where(F.col("length") >= cfg.fetch.max_length)
            .withColumn("reason", F.lit(TOO_LARGE))
            .withColumn("detail", F.concat(F.lit("index length "), F.col("length").cast("string"))),
            rejected_schema,
        )
        wanted = index.where(F.col("length").isNull() | (F.col("length") < cfg.fetch.max_length))
    else:  # a published id table: sizes are known only once fetched
        oversized, wanted = None, index
    aggs = [F.min("content_id").alias("content_id")]
    if "src_encoding" in index.columns:
        aggs.append(F.min("src_encoding").alias("src_encoding"))
    blobs = wanted.groupBy("blob_id").agg(*aggs)
    results = blobs.mapInArrow(fetch_blobs(cfg.content_store, cfg.fetch), to_spark_schema(BLOB_RESULT))
    results = results.localCheckpoint()  # fetch once: both outputs below read this
    joined = wanted.drop(*(c.name for c in CONTENT_FIELDS)).join(results, "blob_id")
    data = conform(joined.where(F.col("reason").isNull()), FETCHED)
    rejected = conform(joined.where(F.col("reason").isNotNull()), rejected_schema)
    if oversized is not None:
        rejected = rejected.unionByName(oversized)
    return StageResult(
        data=Output(data, KEY),
        rejected=Output(rejected, KEY),
        rows_in=rows_in,
        extra={"unique_blobs": blobs.count()},
        extra_stats=lambda df: {
            "bytes": df.agg(F.sum("length_bytes")).first()[0] or 0,
            "encodings": {r["src_encoding"]: r["count"] for r in df.groupBy("src_encoding").count().collect()},
        },
    )


STAGE = Stage("fetch", build, config_keys=("content_store", "fetch"))
