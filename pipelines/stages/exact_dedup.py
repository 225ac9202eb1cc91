"""Stage ``exact_dedup``: one copy of each blob, and the license decision: ``the-stack-v2`` (docs/spec.md §3.4, §6.1).

Rows whose ``license_type`` is ``non_permissive`` are rejected ``non_permissive``, rows without a language
``no_language``; of the copies of each ``blob_id`` one is kept, the first by ``rank.EXACT_ORDER`` (a copy in a
repository with a permissive GitHub license first, then stars, forks, dates), the others are rejected
``exact_duplicate``.

The order of the two decisions is ``exact_dedup.license_first``. BigCode chose the copy first, over every copy
whatever its license or language, and then dropped it if it was ``non_permissive`` or had no language: a blob
whose chosen copy is in a copyleft repository leaves the release although an unlicensed repository holds it too
(``license_first = False``, reference mode). By default the decisions come first and the copy is chosen among the
eligible ones, so such a blob survives through its eligible copy (docs/fidelity.md).
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines._job import Output, Stage, StageContext, StageResult, value_counts
from pipelines.frames import attached_for_two_outputs, sort_order
from stackv2.dedup import EXACT_DUPLICATE, NO_LANGUAGE, NON_PERMISSIVE
from stackv2.dedup.config import ExactDedupConfig
from stackv2.dedup.rank import EXACT_ORDER, GH_PERMISSIVE, NOASSERTION
from stackv2.detect.license import PERMISSIVE
from stackv2.schema import FILE_KEY


def _ineligible() -> Column:
    """The reason a row may not be released whatever its copies (null: eligible)."""
    language = F.col("language")
    return F.when(F.col("license_type") == NON_PERMISSIVE, F.lit(NON_PERMISSIVE)).when(
        language.isNull() | (language == ""), F.lit(NO_LANGUAGE)
    )


def copy_ranks(df: DataFrame) -> DataFrame:
    """(file key, ``_n``): each row's place among the copies of its ``blob_id`` by ``rank.EXACT_ORDER`` (1: the copy
    kept), over the key and ranking columns alone: the contents stay where they are."""
    gha = F.col("gha_license_id")
    gh_permissive = F.when(gha.isNotNull(), (F.col("license_type") == PERMISSIVE) & (gha != NOASSERTION))
    first = Window.partitionBy("blob_id").orderBy(*sort_order(EXACT_ORDER))
    ranking = [c for c, _ in EXACT_ORDER if c != GH_PERMISSIVE]
    keyed = reduce(lambda a, b: a & b, [F.col(k).isNotNull() for k in FILE_KEY])
    narrow = df.where(keyed).select(*dict.fromkeys([*FILE_KEY, "blob_id", "license_type", "gha_license_id", *ranking]))
    return narrow.withColumn(GH_PERMISSIVE, gh_permissive).select(*FILE_KEY, F.row_number().over(first).alias("_n"))


def transform(
    annotated: DataFrame, cfg: ExactDedupConfig, partitions: int, partitioned: bool = False
) -> tuple[DataFrame, DataFrame]:
    """(the rows of ``the-stack-v2``, the rejected rows with ``reason``), both in ``partitions`` partitions of the
    file key, as the stage writes them: the contents move once, when the copies' ranks are joined to the rows
    (``frames.attached_for_two_outputs``). A row with a null in its key (no extract output has one) takes no part in
    the choice: it is kept unless ineligible. ``partitioned``: Spark knows ``annotated`` is already so partitioned,
    and the contents do not move at all (each output reads them)."""
    ineligible = _ineligible()
    if cfg.license_first:
        ranks = copy_ranks(annotated.where(ineligible.isNull()))
        reason = F.coalesce(ineligible, F.when(F.col("_n") > 1, F.lit(EXACT_DUPLICATE)))
    else:
        ranks = copy_ranks(annotated)
        reason = F.when(F.col("_n") > 1, F.lit(EXACT_DUPLICATE)).otherwise(ineligible)
    decided = attached_for_two_outputs(annotated, ranks, FILE_KEY, partitions, partitioned)
    decided = decided.withColumn("reason", reason)
    kept = decided.where(F.col("reason").isNull()).select(*annotated.columns)
    return kept, decided.where(F.col("reason").isNotNull()).select(*annotated.columns, "reason")


def run(ctx: StageContext) -> StageResult:
    annotated, partitioned = ctx.partitioned_input(FILE_KEY)
    kept, rejected = transform(annotated, ctx.cfg.exact_dedup, ctx.cfg.spark.shuffle_partitions, partitioned)
    return StageResult(
        data=Output(kept, FILE_KEY),
        rejected=Output(rejected, FILE_KEY),
        rows_in=annotated.count(),
        extra_stats=lambda df: {
            "languages": value_counts(df, "language"),
            "license_types": value_counts(df, "license_type"),
        },
    )


STAGE = Stage("exact_dedup", run, config_keys=("exact_dedup",))
