"""Stage ``optout``: drop opted-out repositories from the file index, right after extract.

Placed before ``fetch`` so opted-out content is never downloaded, and before ``dedup`` so that a file someone
opted out of still survives through a copy held by another repository. Rows are tagged with the matching request
by ``stackv2.optout.registry.Matcher`` over Arrow batches (the registry is validated on the driver first: an invalid
registry stops the run before any row moves); tagged rows go to ``rejected`` with reason ``opted_out`` and the
request id, which is the build-time audit trail.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from pipelines._job import Output, Stage, StageContext, StageResult
from stackv2.optout.registry import (
    REASON_OPTED_OUT,
    REQUEST_COLUMN,
    Matcher,
    Registry,
    load_registry,
    registry_fingerprint,
)
from stackv2.schema import FILE_KEY


def _tagger(registry: Registry):
    def tag(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        matcher = Matcher(registry)  # once per partition
        for batch in batches:
            yield batch.append_column(REQUEST_COLUMN, matcher.match_table(batch))

    return tag


def transform(df: DataFrame, registry: Registry) -> tuple[DataFrame, DataFrame, dict[str | None, int]]:
    """(rows kept, rows rejected ``opted_out`` with their request id, rows per request id: None for kept rows)."""
    schema = StructType([*df.schema.fields, StructField(REQUEST_COLUMN, StringType())])
    tagged = df.mapInArrow(_tagger(registry), schema)
    kept = tagged.where(F.col(REQUEST_COLUMN).isNull()).drop(REQUEST_COLUMN)
    rejected = tagged.where(F.col(REQUEST_COLUMN).isNotNull()).select(
        *df.columns, F.lit(REASON_OPTED_OUT).alias("reason"), REQUEST_COLUMN
    )
    # One aggregation gives the rows in (all groups) and the files per request (the non-null groups).
    counts = {r[REQUEST_COLUMN]: r["n"] for r in tagged.groupBy(REQUEST_COLUMN).agg(F.count("*").alias("n")).collect()}
    return kept, rejected, counts


def run(ctx: StageContext) -> StageResult:
    df, aligned = ctx.partitioned_input(FILE_KEY)
    path = ctx.cfg.optout.registry
    registry = load_registry(path) if path else None
    if registry is None or not registry.requests:  # nothing can be opted out: every row passes, no rejected table
        return StageResult(
            data=Output(df, FILE_KEY, aligned),
            rows_in=df.count(),
            extra={"registry": path, "registry_sha256": registry and registry.sha256, "requests": 0},
        )
    kept, rejected, counts = transform(df, registry)
    dates = [r.date for r in registry.requests]
    extra = {
        "registry": path,
        "registry_sha256": registry.sha256,
        "requests": len(dates),
        # the dataset card states up to which date opt-outs are honoured
        "registry_date": max(dates).isoformat(),
        "files_per_request": {k: counts[k] for k in sorted(k for k in counts if k is not None)},
    }
    return StageResult(
        data=Output(kept, FILE_KEY, aligned),
        rejected=Output(rejected, FILE_KEY, aligned),
        rows_in=sum(counts.values()),
        extra=extra,
    )


STAGE = Stage("optout", run, config_keys=("optout",), fingerprint=lambda cfg: registry_fingerprint(cfg.optout))
