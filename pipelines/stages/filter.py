"""Stage ``filter``: turn annotate's columns into keep/reject decisions (docs/spec.md §5, §9.1).

Rows pass unchanged; a rejected row keeps every column plus the ``reason`` of the first check it fails (the order
and the reasons are documented in ``stackv2.filters``). Benchmark files for decontamination are read once on the
driver; their pattern count and fingerprint go into ``_stats.json``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from pipelines._job import Output, Stage, StageContext, StageResult, value_counts
from pipelines.frames import computed_once
from stackv2.config import stable_hash
from stackv2.filters import COLUMNS, FilterConfig, benchmark_patterns
from stackv2.schema import FILE_KEY
from udfs.filter import mark_batches


def transform(df: DataFrame, cfg: FilterConfig, patterns: list[str]) -> DataFrame:
    """``df`` plus ``reason`` (null: kept), computed over Arrow batches."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"filter input lacks the annotated column(s) {missing}: expected annotate's output")
    schema = StructType([*df.schema.fields, StructField("reason", StringType())])
    return df.mapInArrow(mark_batches(cfg, patterns), schema)


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg.filter
    patterns = benchmark_patterns(cfg)
    annotated, aligned = ctx.partitioned_input(FILE_KEY)
    marked = computed_once(transform(annotated, cfg, patterns))  # decided once: both outputs below read this
    return StageResult(
        data=Output(marked.where(F.col("reason").isNull()).drop("reason"), FILE_KEY, aligned),
        rejected=Output(marked.where(F.col("reason").isNotNull()), FILE_KEY, aligned),
        rows_in=annotated.count(),
        extra={"benchmark_patterns": len(patterns), "benchmark_hash": stable_hash(patterns)},
        extra_stats=lambda df: {
            "languages": value_counts(df, "language"),
        },
    )


STAGE = Stage("filter", run, config_keys=("filter",))
