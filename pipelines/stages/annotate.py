"""Stage ``annotate``: add language, vendor/generated flags, extension, licenses, natural language and line
statistics to every fetched row (docs/spec.md §3, §4). Rows are never dropped: ``rows_in == rows_out``, no rejects.

1. per unique ``blob_id`` (its content once, with its sorted distinct base names): go-enry, ScanCode on license
   files, fastText on prose, line statistics (``udfs.annotate.annotate_blobs``);
2. per repository (``directory_id``, small columns only: each path with its blob's annotations): licenses found
   in license files spread to the paths under their folder, then the paper's decision with ``gha_license_id``;
   the per-blob annotations pass through (``udfs.annotate.repo_annotations``);
3. that joined back to the rows on ``(directory_id, path)`` (null-safe, so no row can vanish in a join).

Content moves twice: into the per-blob groups, and in the one join back. Each step's output is read once, so
nothing is computed twice and nothing is checkpointed. The per-blob step's workers share one ScanCode index and
fastText model per executor, loaded by their daemon (``stackv2.preload``).
bench/annotate/previous.py keeps the earlier plan (three content shuffles and a checkpoint) for comparison.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines._job import Output, Stage, StageContext, StageResult, value_counts
from pipelines._session import preloading
from pipelines.frames import attach
from stackv2.detect.config import AnnotateConfig
from stackv2.preload import for_annotate
from stackv2.schema import ANNOTATED, FILE_KEY
from udfs.annotate import BLOB_ANNOTATIONS, REPO_ANNOTATIONS, REPO_INPUT, annotate_blobs, repo_annotations
from udfs.arrow import conform, to_spark_schema

SUMMARY_TOP = 12


def unique_blobs(rows: DataFrame) -> DataFrame:
    """One row per ``blob_id``: its content once, with the sorted distinct base names it appears under."""
    basename = F.element_at(F.split("path", "/"), -1)
    return rows.groupBy("blob_id").agg(
        F.array_sort(F.collect_set(basename)).alias("filenames"),
        F.first("content").alias("content"),  # one blob_id, one content
        F.first("src_encoding").alias("src_encoding"),
    )


def transform(rows: DataFrame, cfg: AnnotateConfig) -> DataFrame:
    with preloading(rows.sparkSession, for_annotate(cfg)):  # one ScanCode index and fastText model per executor
        per_blob = unique_blobs(rows).mapInArrow(annotate_blobs(cfg), to_spark_schema(BLOB_ANNOTATIONS))
    per_path = (
        attach(rows.select("directory_id", "path", "gha_license_id", "blob_id"), per_blob, ("blob_id",))
        .select(*REPO_INPUT.names)
        .groupBy("directory_id")
        .applyInArrow(repo_annotations(cfg), to_spark_schema(REPO_ANNOTATIONS))
    )
    return conform(attach(rows, per_path, FILE_KEY), ANNOTATED)


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
    rows = ctx.input()
    return StageResult(
        data=Output(transform(rows, ctx.cfg.annotate), FILE_KEY), rows_in=rows.count(), extra_stats=stats
    )


STAGE = Stage("annotate", run, config_keys=("annotate",))
