"""The stage contract: what a stage is, the order stages run in, and how every stage reads, writes, counts and
resumes.

A stage is a module of ``pipelines.stages`` named as the stage, holding ``STAGE = Stage(name, run, ...)``: ``run``
is a function ``StageContext -> StageResult`` that wires the stage's ``transform`` to its inputs and outputs.
``PIPELINE`` lists the stages in the order they run. This module does the rest, the same way for all:

1. each output (``data``, ``rejected``, and any extra table such as ``clusters``) is hash-partitioned on the
   stage's unique key into ``spark.shuffle_partitions`` files, sorted within each file, written to a temporary
   folder, its part files renamed ``part-NNNNN.parquet``, then moved into place: the same input and config give
   byte-identical files whatever the input partitioning or number of executors; the outputs' jobs run at once;
2. ``_stats.json`` is derived from what the writer tasks counted (rows, and rejected rows per reason) plus the
   stage's own ``extra_stats`` of the written data, and checked: rows in == rows out + rows rejected;
3. ``_SUCCESS`` is written last, holding the stage's config hash. A rerun skips a stage whose marker carries
   the same hash, and recomputes (after removing the partial folder) a stage without one.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import LongType

from stackv2.atomic import atomic_dir, write_json
from stackv2.config import RunConfig
from stackv2.schema import RELEASE
from stackv2.stats import StageStats
from stackv2.workdir import DATA, REJECTED, STATS, SUCCESS
from udfs.parquet_writer import RESULT_SCHEMA, write_partitions

#: Every stage, in pipeline order; stage ``name`` is the module ``pipelines.stages.<name>``.
PIPELINE: tuple[str, ...] = (
    "extract",
    "optout",
    "fetch",
    "annotate",
    "exact_dedup",
    "near_dedup",
    "filter",
    "pii",
    "compose",
    "shards",
    "tokenize",
)


def nanos_to_timestamps(df: DataFrame) -> DataFrame:
    """Turn the release's nanosecond timestamp columns (read as longs, see ``_session``) back into timestamps."""
    ts_cols = {f.name for f in RELEASE if pa.types.is_timestamp(f.type)}
    for f in df.schema.fields:
        if f.name in ts_cols and isinstance(f.dataType, LongType):
            df = df.withColumn(f.name, F.timestamp_micros(F.floor(F.col(f.name) / 1000)))
    return df


@dataclass
class StageContext:
    spark: SparkSession
    cfg: RunConfig
    work_dir: Path
    #: The stage run just before this one in the pipeline (None for the first).
    previous: str | None
    #: Config hash of this stage (inputs and settings).
    config_hash: str

    def path(self, stage: str, output: str = DATA) -> Path:
        return self.work_dir / stage / output

    def read(self, stage: str, output: str = DATA) -> DataFrame:
        p = self.path(stage, output)
        if not (self.work_dir / stage / SUCCESS).exists():
            raise FileNotFoundError(f"stage {stage!r} has not completed in {self.work_dir} (no {SUCCESS})")
        return self.spark.read.parquet(str(p))

    def input(self) -> DataFrame:
        """The previous stage's data, or for the first stage of a run the configured ``input`` dataset."""
        if self.previous is not None:
            return self.read(self.previous)
        if not self.cfg.input:
            raise ValueError("this stage reads the output of an earlier stage: run it after one, or set `input`")
        p = Path(self.cfg.input)
        if (p / DATA).is_dir():
            p = p / DATA
        if "://" not in self.cfg.input and not p.exists():
            raise FileNotFoundError(f"input dataset {p} does not exist")
        return nanos_to_timestamps(self.spark.read.parquet(str(p)))

    def stats_of(self, stage: str) -> StageStats | None:
        p = self.work_dir / stage / STATS
        return StageStats.load(p) if p.exists() else None


@dataclass(frozen=True)
class Stage:
    name: str
    #: Wires the stage's transform to its inputs and outputs.
    run: Callable[[StageContext], StageResult]
    #: ``RunConfig`` attributes whose values change this stage's output (its config hash covers them).
    config_keys: tuple[str, ...] = ()
    #: Bump when the stage's logic changes output, so old markers stop matching.
    version: int = 1
    #: Hash of inputs the config only names (e.g. the contents of benchmark files), covered by the config hash.
    fingerprint: Callable[[RunConfig], str] | None = None


@dataclass
class Output:
    df: DataFrame
    #: Columns that identify a row uniquely: partitioning and sort order of the written files.
    key: tuple[str, ...]


@dataclass
class StageResult:
    data: Output
    #: Rows not passed on, with a ``reason`` column.
    rejected: Output | None = None
    #: Other tables the stage keeps (e.g. dedup's ``clusters``), written beside ``data``.
    tables: dict[str, Output] = field(default_factory=dict)
    #: Rows the stage received; None when in/out are not the same unit (then no accounting check).
    rows_in: int | None = None
    #: Extra stats derived from the *written* data (one aggregation), e.g. per-language counts.
    extra_stats: Callable[[DataFrame], dict[str, Any]] | None = None
    #: Stats computed by the stage itself (e.g. origins selected); merged into ``extra``.
    extra: dict[str, Any] = field(default_factory=dict)


def write_output(
    out: Output, target: Path, partitions: int, count_by: str | None = None
) -> tuple[int, dict[str, int]]:
    """Write one output deterministically and atomically (temp folder, stable names, then rename); returns the
    rows written and, with ``count_by``, the rows per value of that column.

    Rows are hash-partitioned and sorted on the output's unique key, then each partition is written by pyarrow
    (``udfs.parquet_writer``): the same rows give the same bytes whatever the input partitioning or executors.
    """
    df = out.df.repartition(partitions, *out.key).sortWithinPartitions(*out.key)
    schema = to_arrow_schema(df.schema)
    with atomic_dir(target) as tmp:
        written = df.mapInArrow(write_partitions(str(tmp), schema, count_by=count_by), RESULT_SCHEMA).collect()
        # Spark skips the tasks of an empty input: still write every part, so the layout never depends on the data.
        for pid in set(range(partitions)) - {r["partition"] for r in written}:
            pq.write_table(schema.empty_table(), tmp / f"part-{pid:05d}.parquet", compression="zstd")
    counts: Counter[str] = Counter()
    for r in written:
        counts.update(r["counts"] or {})
    return sum(r["rows"] for r in written), dict(counts)


def value_counts(df: DataFrame, column: str) -> dict[str, int]:
    """Rows per value of ``column`` in one aggregation, for a stage's stats (null counted as ``"(none)"``)."""
    return {
        "(none)" if r[column] is None else str(r[column]): r["count"] for r in df.groupBy(column).count().collect()
    }


def marker(stage_dir: Path) -> dict[str, Any] | None:
    p = stage_dir / SUCCESS
    return json.loads(p.read_text()) if p.exists() else None


def run_stage(ctx: StageContext, name: str, build: Callable[[StageContext], StageResult]) -> tuple[StageStats, bool]:
    """Run one stage unless its output for this config hash is complete. Returns (stats, skipped)."""
    stage_dir = ctx.work_dir / name
    done = marker(stage_dir)
    if done is not None and done.get("config_hash") == ctx.config_hash:
        return StageStats.load(stage_dir / STATS), True
    shutil.rmtree(stage_dir, ignore_errors=True)
    stage_dir.mkdir(parents=True)
    t0 = time.monotonic()
    result = build(ctx)
    partitions = ctx.cfg.spark.shuffle_partitions
    outputs = {DATA: result.data, **result.tables}
    if result.rejected is not None:
        outputs[REJECTED] = result.rejected
    # The outputs are independent jobs: submitted together, one's tasks fill the cores while another's driver
    # plans or waits between stages.
    with ThreadPoolExecutor(len(outputs), thread_name_prefix=f"write-{name}") as pool:
        futures = {
            out_name: pool.submit(
                write_output, out, stage_dir / out_name, partitions, "reason" if out_name == REJECTED else None
            )
            for out_name, out in outputs.items()
        }
    counts = {out_name: future.result() for out_name, future in futures.items()}  # raises the first failure

    stats = StageStats(stage=name, config_hash=ctx.config_hash, extra=dict(result.extra))
    stats.rows_out = counts[DATA][0]
    if REJECTED in counts:
        stats.rejected = counts[REJECTED][1]
    if result.extra_stats is not None:
        stats.extra.update(result.extra_stats(ctx.spark.read.parquet(str(stage_dir / DATA))))
    stats.seconds = round(time.monotonic() - t0, 2)
    if result.rows_in is not None:
        stats.rows_in = result.rows_in
        stats.check()
    else:
        stats.rows_in = stats.rows_out + stats.rows_rejected
    stats.save(stage_dir / STATS)
    # What the stage cached (e.g. dedup's exact-dedup rows and sketches) is read by no later stage: stages pass
    # data through their written outputs only.
    ctx.spark.catalog.clearCache()
    write_json(stage_dir / SUCCESS, {"stage": name, "config_hash": ctx.config_hash})
    return stats, False
