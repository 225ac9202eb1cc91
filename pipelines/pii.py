"""Stage ``pii``: redact e-mails, IP addresses, keys and passwords in every row's ``content`` (spec §7).

No row is dropped (rows in == rows out). Adds one int32 count column per redacted type (``schema.PII_COUNT_FIELDS``)
and, unless ``pii.write_spans`` is off, a ``spans`` table (``schema.PII_SPANS``): offsets and types of every
redaction, never the values, for audit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pipelines._job import Output, StageContext, StageResult
from pipelines.runner import Stage
from stackv2.config import load_config
from stackv2.pii.config import PiiConfig, model_fingerprint
from stackv2.schema import PII_COUNT_FIELDS, PII_SPANS
from udfs.arrow import conform, to_spark_schema
from udfs.pii import OUTPUT_FIELDS, SPANS_COLUMN, redact_batches

KEY = ("directory_id", "path")
SPANS = "spans"
SPANS_KEY = ("directory_id", "path", "start")


def transform(rows: DataFrame, cfg: PiiConfig) -> DataFrame:
    """Rows with ``content`` redacted, the count columns and a ``pii_spans`` list column."""
    out_schema = StructType(rows.schema.fields + to_spark_schema(pa.schema(OUTPUT_FIELDS)).fields)
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


def build(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg.pii
    rows = ctx.input()
    # Checkpointed: redaction runs once although both the rows and the spans table read it.
    redacted = transform(rows, cfg).localCheckpoint()
    tables = {SPANS: Output(spans_table(redacted), SPANS_KEY)} if cfg.write_spans else {}
    return StageResult(
        data=Output(redacted.drop(SPANS_COLUMN), KEY), tables=tables, rows_in=rows.count(), extra_stats=stats
    )


STAGE = Stage("pii", build, config_keys=("pii",), fingerprint=lambda cfg: model_fingerprint(cfg.pii))


def _cmd_pii(args: argparse.Namespace) -> int:
    from stackv2.pii import redact

    cfg = load_config(args.config, args.overrides).pii
    for name in args.files:
        r = redact(Path(name).read_text(encoding="utf-8", errors="surrogateescape"), cfg)
        if args.counts:
            spans = [[s.start, s.end, s.entity] for s in r.spans]
            print(json.dumps({"file": name, "counts": r.counts, "spans": spans}))
        else:
            sys.stdout.write(r.text)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pii`` to the ``stackv2`` command: redact files outside Spark, to check what the stage would do."""
    p = subparsers.add_parser("pii", help="print files with PII redacted (or, with --counts, what was found)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--counts", action="store_true", help="one JSON line per file: counts and spans, no values")
    p.add_argument("--config", default=None, help="run config (its pii: section)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="pii.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set pii.window_chars=4096",
    )
    p.set_defaults(func=_cmd_pii)
