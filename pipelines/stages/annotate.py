"""Stage ``annotate``: add language, vendor/generated flags, extension, licenses, natural language and line
statistics to every fetched row (docs/spec.md §3, §4). Rows are never dropped: ``rows_in == rows_out``, no rejects.

1. per unique ``blob_id`` (its content once, in the row of the smallest file key holding it, with its sorted
   distinct base names): go-enry, fastText on prose, line statistics (``udfs.annotate.annotate_blobs``);
2. apart, per blob known under a license-like name (a few percent of the blobs): ScanCode
   (``udfs.annotate.blob_licenses``), in as many tasks as ``LicenseJobConfig.files_per_task`` asks, in workers of
   their own that share one index through their daemon when the job has ``shared_index_min_tasks`` tasks or more
   (``stackv2.preload``), and go away with the stage; joined to step 1 by ``blob_id``;
3. per repository (``directory_id``, small columns only: each path with its blob's annotations): licenses found
   in license files spread to the paths under their folder, then the paper's decision with ``gha_license_id``;
   the per-blob annotations pass through (``udfs.annotate.repo_annotations``);
4. that joined back to the rows on ``(directory_id, path)``, both sides first hash-partitioned as the stage's
   output is written (``pipelines.frames.attach_partitioned``), so the write moves nothing again. A left join: no
   row can vanish; one with a null in its key (no extract output has one) is kept, without annotations.

Only the license files' content moves (into their groups): the other contents are annotated where they are and
only names, keys and annotations are grouped and joined, when the input is read as the partitions it was written in
(``StageContext.partitioned_input``; else the rows move once, into those partitions). Only the license job needs
ScanCode's index (~1.4 GB per process that loads it): no other worker of the pipeline ever holds it
(docs/scaling.md, "Memory"). bench/annotate/previous.py keeps the earlier plan (three content shuffles and a
checkpoint) for comparison.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType

from pipelines._job import Output, Stage, StageContext, StageResult, value_counts
from pipelines._session import preloading
from pipelines.frames import attach, attach_partitioned
from stackv2.detect.config import LICENSE_JOB_OPTIONS, AnnotateConfig, LicenseJobConfig
from stackv2.detect.license import is_license_file
from stackv2.preload import for_licenses
from stackv2.schema import ANNOTATED, FILE_KEY
from udfs.annotate import (
    BLOB_ANNOTATIONS,
    BLOB_LICENSES,
    REPO_ANNOTATIONS,
    REPO_INPUT,
    annotate_blobs,
    blob_licenses,
    repo_annotations,
)
from udfs.arrow import conform, to_spark_schema

SUMMARY_TOP = 12
#: Whether a base name makes its blob a license file (a blob is one if any of its names is).
LICENSE_NAME = F.udf(is_license_file, BooleanType(), useArrow=True)


def basename() -> Column:
    return F.element_at(F.split("path", "/"), -1)


def unique_blobs(rows: DataFrame, partitions: int, partitioned: bool = False) -> DataFrame:
    """One row per ``blob_id``: its content once, with the sorted distinct base names it appears under. The content
    is that of the blob's row with the smallest file key (one blob_id, one content), taken where the row is: only
    the names and keys are grouped, and with ``partitioned`` rows (``attach_partitioned``) no content moves. Grouping
    the contents themselves shuffled them all (7 GB at 1M files; docs/scaling.md, "Contents annotated in place").
    A row with a null in its key represents no blob (no extract output has one; such a row gets no annotations)."""
    keyed = reduce(lambda a, b: a & b, [F.col(k).isNotNull() for k in FILE_KEY])
    names = rows.groupBy("blob_id").agg(
        F.array_sort(F.collect_set(basename())).alias("filenames"),
        F.min(F.when(keyed, F.struct(*FILE_KEY))).alias("_first"),
    )
    first = names.select("blob_id", "filenames", *(F.col(f"_first.{k}").alias(k) for k in FILE_KEY))
    if not partitioned:
        rows = rows.repartition(partitions, *FILE_KEY)
    chosen = rows.select(*FILE_KEY, "content", "src_encoding").join(
        first.repartition(partitions, *FILE_KEY), list(FILE_KEY)
    )
    return chosen.select("blob_id", "filenames", "content", "src_encoding")


def license_blobs(rows: DataFrame) -> DataFrame:
    """One row per ``blob_id`` known under at least one license-like base name: its content once. Only the base
    names cross to Python; only these rows' content is shuffled."""
    name = F.coalesce(basename(), F.lit(""))  # a null path is no name (nor is "", a name this UDF can take)
    named = rows.select("blob_id", "content", name.alias("name")).filter(LICENSE_NAME("name"))
    return named.groupBy("blob_id").agg(F.first("content").alias("content"))


def licenses_found(rows: DataFrame, cfg: AnnotateConfig) -> DataFrame:
    """``BLOB_LICENSES`` of the license blobs, in one task per ``files_per_task`` of them (counted first, over the
    names alone), in workers of their own: they share a preloaded index from ``shared_index_min_tasks`` tasks on,
    and load their own below that (``LicenseJobConfig``, from the Spark options)."""
    spark = rows.sparkSession
    options = {key: v for key in LICENSE_JOB_OPTIONS.values() if (v := spark.conf.get(key, None)) is not None}
    job = LicenseJobConfig.from_options(options)
    blobs = license_blobs(rows)
    tasks = max(1, -(-blobs.select("blob_id").count() // job.files_per_task))
    with preloading(spark, for_licenses(shared=tasks >= job.shared_index_min_tasks)):
        return blobs.repartition(tasks).mapInArrow(blob_licenses(cfg), to_spark_schema(BLOB_LICENSES))


def blob_annotations(blobs: DataFrame, rows: DataFrame, cfg: AnnotateConfig) -> DataFrame:
    """``BLOB_ANNOTATIONS`` of the unique blobs of ``rows`` (``blobs``, as ``unique_blobs`` gives them), with the
    ``licenses`` found in each (empty for the blobs that are no license file)."""
    per_blob = blobs.mapInArrow(annotate_blobs(cfg), to_spark_schema(BLOB_ANNOTATIONS))
    found = licenses_found(rows, cfg).withColumnRenamed("blob_id", "_found_blob_id")
    joined = per_blob.join(found, per_blob["blob_id"].eqNullSafe(found["_found_blob_id"]), "left")
    none = F.array().cast(joined.schema["licenses"].dataType)
    return joined.select(*per_blob.columns, F.coalesce("licenses", none).alias("licenses"))


def transform(rows: DataFrame, cfg: AnnotateConfig, partitions: int, partitioned: bool = False) -> DataFrame:
    """``ANNOTATED`` rows, in ``partitions`` partitions of the output's key (``attach_partitioned``: the stage's
    write moves no content; with ``partitioned``, Spark knows ``rows`` are already so partitioned, and the join back
    moves none either)."""
    per_path = (
        attach(
            rows.select("directory_id", "path", "gha_license_id", "blob_id"),
            blob_annotations(unique_blobs(rows, partitions, partitioned), rows, cfg),
            ("blob_id",),
        )
        .select(*REPO_INPUT.names)
        .groupBy("directory_id")
        .applyInArrow(repo_annotations(cfg), to_spark_schema(REPO_ANNOTATIONS))
    )
    return conform(attach_partitioned(rows, per_path, FILE_KEY, partitions, partitioned), ANNOTATED)


def _top(counts: dict[str, int]) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}" for k, v in ranked[:SUMMARY_TOP]) + (" ..." if len(ranked) > SUMMARY_TOP else "")


def stats(df: DataFrame) -> dict:
    languages, licenses = value_counts(df, "language"), value_counts(df, "license_type")
    natural = value_counts(df, "natural_language")
    flags = df.agg(
        F.sum(F.col("is_vendor").cast("int")).alias("vendor"),
        F.sum(F.col("is_generated").cast("int")).alias("generated"),
        F.sum((F.size("detected_licenses") > 0).cast("int")).alias("with_licenses"),
    ).first()
    return {
        "languages": languages,
        "license_types": licenses,
        "natural_languages": natural,
        "vendor": flags["vendor"] or 0,
        "generated": flags["generated"] or 0,
        "with_detected_licenses": flags["with_licenses"] or 0,
        "summary_languages": _top(languages),
        "summary_license_types": _top(licenses),
        "summary_natural_languages": _top(natural),
    }


def run(ctx: StageContext) -> StageResult:
    rows, partitioned = ctx.partitioned_input(FILE_KEY)
    return StageResult(
        data=Output(transform(rows, ctx.cfg.annotate, ctx.cfg.spark.shuffle_partitions, partitioned), FILE_KEY),
        rows_in=rows.count(),
        extra_stats=stats,
    )


STAGE = Stage("annotate", run, config_keys=("annotate",))
