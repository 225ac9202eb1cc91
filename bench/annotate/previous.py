"""The ``annotate`` plan before the single-shuffle rewrite (as of commit 27a2ca6), kept to compare against.

``bench/annotate/throughput.py --previous`` times it beside the current plan, and
``tests/test_annotate_spark.py`` checks that both give every row the same annotations. Same detectors and adapters
for propagation; only the plan differs: unique blobs grouped with their content (a content shuffle), all detectors
per blob (licenses from the current stage's license job), ``localCheckpoint``, then two joins back to the rows (by
``blob_id``, then by ``(directory_id, path)``).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.frames import attach
from pipelines.stages.annotate import basename, blob_annotations
from stackv2.detect.config import AnnotateConfig
from stackv2.schema import ANNOTATED, FILE_KEY
from udfs.annotate import LICENSES_FIELD, repo_license_columns
from udfs.arrow import conform, to_spark_schema

REPO_INPUT = pa.schema([ANNOTATED.field(c) for c in ("directory_id", "path", "gha_license_id")] + [LICENSES_FIELD])
REPO_LICENSES = pa.schema(
    [ANNOTATED.field(c) for c in ("directory_id", "path", "extension", "detected_licenses", "license_type")]
)


def repo_licenses(cfg: AnnotateConfig) -> Callable[[pa.Table], pa.Table]:
    def run(table: pa.Table) -> pa.Table:
        computed = repo_license_columns(table, cfg)
        return pa.Table.from_arrays(
            [table.column("directory_id"), table.column("path"), *(computed[c] for c in REPO_LICENSES.names[2:])],
            schema=REPO_LICENSES,
        )

    return run


def grouped_blobs(rows: DataFrame) -> DataFrame:
    """The unique blobs as that plan grouped them: with their contents (``annotate.unique_blobs`` now leaves the
    contents where they are)."""
    return rows.groupBy("blob_id").agg(
        F.array_sort(F.collect_set(basename())).alias("filenames"),
        F.first("content").alias("content"),
        F.first("src_encoding").alias("src_encoding"),
    )


def previous_transform(rows: DataFrame, cfg: AnnotateConfig) -> DataFrame:
    per_blob = blob_annotations(grouped_blobs(rows), rows, cfg).localCheckpoint()
    per_path = (
        attach(
            rows.select("directory_id", "path", "gha_license_id", "blob_id"),
            per_blob.select("blob_id", "licenses"),
            ("blob_id",),
        )
        .select(*REPO_INPUT.names)
        .groupBy("directory_id")
        .applyInArrow(repo_licenses(cfg), to_spark_schema(REPO_LICENSES))
    )
    out = attach(attach(rows, per_blob.drop("licenses"), ("blob_id",)), per_path, FILE_KEY)
    return conform(out, ANNOTATED)
