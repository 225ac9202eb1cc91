"""Stage ``compose``: the training sets' composition (docs/spec.md §5.5), on the filtered, redacted rows.

Every row kept is in ``the-stack-v2-train-full``; ``train_smol`` says whether it is in ``-train-smol`` too (its
language is one of ``compose.smol_languages``). Languages over their cap (``compose.caps``) are subsampled by
(repository, language) group (``stackv2.release.compose``); the groups left out are rejected ``subsampled``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines._job import Output, Stage, StageContext, StageResult
from stackv2.release.compose import SUBSAMPLED, keep_rates
from stackv2.release.config import ComposeConfig
from stackv2.release.products import SMOL_COLUMN
from stackv2.schema import FILE_KEY

_UNIT = float(2**53)


def _draw(seed: int) -> F.Column:
    """A uniform number in [0, 1) per (repository, language), from a seeded hash: the same for every file."""
    return F.pmod(F.xxhash64(F.lit(seed), "repo_name", "language"), F.lit(2**53)) / F.lit(_UNIT)


def transform(rows: DataFrame, cfg: ComposeConfig) -> tuple[DataFrame, DataFrame, dict]:
    """(training rows with ``train_smol``, rows rejected ``subsampled``, the keep rates of the capped languages)."""
    totals = {
        r["language"]: r["bytes"] for r in rows.groupBy("language").agg(F.sum("length_bytes").alias("bytes")).collect()
    }
    rates = keep_rates(totals, cfg.caps)
    rate = F.lit(1.0)
    for lang, share in rates.items():
        rate = F.when(F.col("language") == lang, F.lit(share)).otherwise(rate)
    marked = rows.withColumn("reason", F.when(_draw(cfg.seed) >= rate, F.lit(SUBSAMPLED)))
    kept = (
        marked.where(F.col("reason").isNull())
        .drop("reason")
        .withColumn(SMOL_COLUMN, F.coalesce(F.col("language").isin(list(cfg.smol_languages)), F.lit(False)))
    )
    return kept, marked.where(F.col("reason").isNotNull()), {"keep_rates": rates}


def _stats(df: DataFrame) -> dict:
    by_language = df.groupBy("language").agg(
        F.count("*").alias("files"),
        F.sum("length_bytes").alias("bytes"),
        F.sum(F.col(SMOL_COLUMN).cast("long")).alias("smol_files"),
    )
    rows = by_language.collect()
    return {
        "languages": {r["language"] or "(none)": {"files": r["files"], "bytes": r["bytes"]} for r in rows},
        "smol_files": sum(r["smol_files"] for r in rows),
    }


def run(ctx: StageContext) -> StageResult:
    rows, aligned = ctx.partitioned_input(FILE_KEY)
    kept, rejected, extra = transform(rows, ctx.cfg.compose)
    return StageResult(
        data=Output(kept, FILE_KEY, aligned),
        rejected=Output(rejected, FILE_KEY, aligned),
        rows_in=rows.count(),
        extra=extra,
        extra_stats=_stats,
    )


STAGE = Stage("compose", run, config_keys=("compose",))
