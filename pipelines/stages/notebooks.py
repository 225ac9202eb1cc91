"""Stage ``notebooks``: the Jupyter notebooks of ``the-stack-v2`` in StarCoder2's two training forms
(docs/spec.md §10.2, docs/notebooks.md): ``jupyter-scripts`` and ``jupyter-structured``.

Each notebook of ``the-stack-v2`` (language ``Jupyter Notebook``) is converted by ``stackv2.notebooks`` into its
script (jupytext, in the notebook's language) and its structured parts (text, code, output triplets), with PII
redacted in both. The scripts are near-deduplicated like source files (``near_dedup.transform``, same settings:
the paper near-deduplicated notebook scripts), and a notebook whose script is a near-duplicate is dropped in both
forms. Rejected: the conversion's reasons when a notebook has neither form (``stackv2.notebooks.convert``), and
``near_duplicate``. Kept rows hold the script as ``content`` (its language and extension as ``language`` and
``extension``; null when the notebook has no script), the parts as ``cells`` and, written out in the paper's
notation, as ``structured``.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pipelines._job import Output, Stage, StageContext, StageResult, value_counts
from pipelines.stages import near_dedup
from stackv2.config import RunConfig
from stackv2.schema import DEDUP_FIELDS, FILE_KEY
from udfs.arrow import to_spark_schema
from udfs.notebooks import FORM_FIELDS, convert_batches

#: go-enry's name of ``.ipynb`` files.
NOTEBOOK_LANGUAGE = "Jupyter Notebook"
HAS_SCRIPT = "has_script"
HAS_STRUCTURED = "has_structured"


def transform(stack: DataFrame, cfg: RunConfig) -> tuple[DataFrame, DataFrame, DataFrame, dict]:
    """(kept notebooks, rejected ones with ``reason``, the scripts' near-duplicate clusters, stats)."""
    notebooks = stack.where(F.col("language") == NOTEBOOK_LANGUAGE)
    schema = StructType([*notebooks.schema.fields, *to_spark_schema(pa.schema(FORM_FIELDS)).fields])
    converted = notebooks.mapInArrow(convert_batches(cfg.notebooks, cfg.pii), schema).localCheckpoint()
    failed = converted.where(F.col("reason").isNotNull()).drop(*(f.name for f in FORM_FIELDS if f.name != "reason"))
    forms = converted.where(F.col("reason").isNull()).drop("reason")
    scripts = forms.where(F.col("script").isNotNull()).withColumns(
        {"content": F.col("script"), "language": F.col("script_language"), "extension": F.col("script_extension")}
    )
    kept, dups, clusters, extra = near_dedup.transform(scripts, cfg.near_dedup, cfg.spark.shuffle_partitions)
    nulls = {
        f.name: F.lit(None).cast(t.dataType)
        for f, t in zip(DEDUP_FIELDS, to_spark_schema(pa.schema(DEDUP_FIELDS)).fields, strict=True)
    }
    no_script = (
        forms.where(F.col("script").isNull()).withColumn("content", F.lit(None).cast("string")).withColumns(nulls)
    )
    data = kept.unionByName(no_script).withColumns(
        {HAS_SCRIPT: F.col("script").isNotNull(), HAS_STRUCTURED: F.col("cells").isNotNull()}
    )
    rejected = failed.unionByName(
        dups.drop(*(f.name for f in FORM_FIELDS if f.name != "reason")), allowMissingColumns=True
    )
    return data, rejected, clusters, extra


def run(ctx: StageContext) -> StageResult:
    stack = ctx.read("exact_dedup")
    data, rejected, clusters, extra = transform(stack, ctx.cfg)
    return StageResult(
        data=Output(data, FILE_KEY),
        rejected=Output(rejected, FILE_KEY),
        tables={near_dedup.CLUSTERS: Output(clusters, near_dedup.CLUSTER_KEY)},
        rows_in=stack.where(F.col("language") == NOTEBOOK_LANGUAGE).count(),
        extra=extra,
        extra_stats=lambda df: {
            "scripts": df.where(F.col(HAS_SCRIPT)).count(),
            "structured": df.where(F.col(HAS_STRUCTURED)).count(),
            "script_languages": value_counts(df.where(F.col(HAS_SCRIPT)), "language"),
        },
    )


STAGE = Stage("notebooks", run, config_keys=("notebooks", "near_dedup", "pii"))
