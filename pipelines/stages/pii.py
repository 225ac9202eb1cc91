"""Stage ``pii``: redact e-mails, IP addresses, keys and passwords in every row's ``content`` (docs/spec.md §7).

No row is dropped (rows in == rows out). Adds one int32 count column per redacted type (``schema.PII_COUNT_FIELDS``)
and, unless ``pii.write_spans`` is off, a ``spans`` table (``schema.PII_SPANS``): offsets and types of every
redaction, never the values, for audit.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pipelines._job import Output, Stage, StageContext, StageResult
from pipelines._session import preloading
from pipelines.frames import computed_once
from stackv2.pii.config import PiiConfig, model_fingerprint
from stackv2.preload import for_pii
from stackv2.schema import FILE_KEY, PII_COUNT_FIELDS, PII_SPANS
from udfs.arrow import conform, to_spark_schema
from udfs.pii import OUTPUT_FIELDS, SPANS_COLUMN, redact_batches

SPANS = "spans"
SPANS_KEY = ("directory_id", "path", "start")


def transform(rows: DataFrame, cfg: PiiConfig) -> DataFrame:
    """Rows with ``content`` redacted, the count columns and a ``pii_spans`` list column."""
    out_schema = StructType(rows.schema.fields + to_spark_schema(pa.schema(OUTPUT_FIELDS)).fields)
    with preloading(rows.sparkSession, for_pii(cfg)):  # one presidio engine per executor
        return rows.mapInArrow(redact_batches(cfg), out_schema)


def spans_table(redacted: DataFrame) -> DataFrame:
    exploded = redacted.select("directory_id", "path", "blob_id", F.explode(SPANS_COLUMN).alias("s"))
    return conform(exploded.select("directory_id", "path", "blob_id", "s.*"), PII_SPANS)


def stats(df: DataFrame) -> dict:
    names = [f.name for f in PII_COUNT_FIELDS]
    row = df.agg(
        *(F.sum(n).alias(n) for n in names),
        F.count(F.when(sum(F.col(n) for n in names) > 0, 1)).alias("files_with_pii"),
    ).first()
    return {
        "redactions": {n.removeprefix("pii_"): int(row[n] or 0) for n in names},
        "files_with_pii": int(row["files_with_pii"]),
    }


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg.pii
    rows, aligned = ctx.partitioned_input(FILE_KEY)
    redacted = computed_once(transform(rows, cfg))  # redacted once: the rows and the spans table both read it
    tables = {SPANS: Output(spans_table(redacted), SPANS_KEY)} if cfg.write_spans else {}
    return StageResult(
        data=Output(redacted.drop(SPANS_COLUMN), FILE_KEY, aligned),
        tables=tables,
        rows_in=rows.count(),
        extra_stats=stats,
    )


STAGE = Stage("pii", run, config_keys=("pii",), fingerprint=lambda cfg: model_fingerprint(cfg.pii))
