"""Stage ``fetch``: read each unique blob of the file index from the content store and decode it.

Rules: docs/spec.md §1.6, §4.

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

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines._job import Output, Stage, StageContext, StageResult, value_counts
from pipelines.frames import computed_once
from stackv2.schema import BLOB_RESULT, CONTENT_FIELDS, FETCHED, FILE_INDEX, FILE_KEY, with_reason
from stackv2.swh.config import FetchConfig
from stackv2.text.decode import TOO_LARGE
from udfs.arrow import conform, to_spark_schema
from udfs.fetch import fetch_blobs

#: The column of each blob's rows (all their columns but the blob's own) while it is fetched.
_ROWS = "_rows"


def transform(index: DataFrame, store_url: str, cfg: FetchConfig) -> tuple[DataFrame, DataFrame, int]:
    """(fetched rows, rejected rows, unique blobs requested) of a file index."""
    rejected_schema = with_reason(FILE_INDEX).append(BLOB_RESULT.field("detail"))
    if "length" in index.columns:
        oversized = conform(
            index.where(F.col("length") >= cfg.max_length)
            .withColumn("reason", F.lit(TOO_LARGE))
            .withColumn("detail", F.concat(F.lit("index length "), F.col("length").cast("string"))),
            rejected_schema,
        )
        wanted = index.where(F.col("length").isNull() | (F.col("length") < cfg.max_length))
    else:  # a published id table: sizes are known only once fetched
        oversized, wanted = None, index
    # Each blob is requested once, its rows carried through the request (``fetch_blobs`` passes them on) and given
    # their contents where it returns: no join of the contents back to the rows by blob_id, which shuffled and
    # sorted them all once more before the write (docs/scaling.md, "Contents given to their rows where fetched").
    row_columns = [c for c in wanted.columns if c != "blob_id" and c not in {f.name for f in CONTENT_FIELDS}]
    aggs = [F.min("content_id").alias("content_id")]
    if "src_encoding" in index.columns:
        aggs.append(F.min("src_encoding").alias("src_encoding"))
    aggs.append(F.collect_list(F.struct(*row_columns)).alias(_ROWS))
    blobs = wanted.groupBy("blob_id").agg(*aggs)
    result_schema = to_spark_schema(BLOB_RESULT).add(blobs.schema[_ROWS])
    results = blobs.mapInArrow(fetch_blobs(store_url, cfg), result_schema)
    per_row = results.select(*BLOB_RESULT.names, F.explode(_ROWS).alias(_ROWS)).select(
        "blob_id", f"{_ROWS}.*", *(c for c in BLOB_RESULT.names if c != "blob_id")
    )
    per_row = computed_once(per_row)  # fetched once: both outputs below read this
    data = conform(per_row.where(F.col("reason").isNull()), FETCHED)
    rejected = conform(per_row.where(F.col("reason").isNotNull()), rejected_schema)
    if oversized is not None:
        rejected = rejected.unionByName(oversized)
    return data, rejected, blobs.count()


def run(ctx: StageContext) -> StageResult:
    if not ctx.cfg.content_store:
        raise ValueError("no content store given: set `content_store` (a folder or s3://bucket[/prefix])")
    index = ctx.input().localCheckpoint()
    data, rejected, unique_blobs = transform(index, ctx.cfg.content_store, ctx.cfg.fetch)
    return StageResult(
        data=Output(data, FILE_KEY),
        rejected=Output(rejected, FILE_KEY),
        rows_in=index.count(),
        extra={"unique_blobs": unique_blobs},
        extra_stats=lambda df: {
            "bytes": df.agg(F.sum("length_bytes")).first()[0] or 0,
            "encodings": value_counts(df, "src_encoding"),
        },
    )


STAGE = Stage("fetch", run, config_keys=("content_store", "fetch"))
