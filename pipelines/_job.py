"""The stage contract: what a stage is, the order stages run in, and how every stage reads, writes, counts and
resumes.

A stage is a module of ``pipelines.stages`` named as the stage, holding ``STAGE = Stage(name, run, ...)``: ``run``
is a function ``StageContext -> StageResult`` that wires the stage's ``transform`` to its inputs and outputs.
``PIPELINE`` lists the stages in the order they run. This module does the rest, the same way for all:

1. each output (``data``, ``rejected``, and any extra table such as ``clusters``) is hash-partitioned on the
   stage's unique key into ``spark.shuffle_partitions`` files and sorted within each file (a repeated key fails the
   stage: rows are never merged or duplicated silently), each task attempt writing a hidden file of its own into the
   output's staging folder; the driver gives the accepted attempts' files their names ``part_NNNNN.parquet`` in the
   output folder (a rename on a local disk, a server-side copy on an object store): the same input and config give
   byte-identical files whatever the input partitioning or number of executors; the outputs' jobs run at once;
2. ``_stats.json`` is derived from what the writer tasks counted (rows, and rejected rows per reason) plus the
   stage's own ``extra_stats`` of the written data, and checked: rows in == rows out + rows rejected;
3. ``_SUCCESS`` is written last: the manifest (``stackv2.workdir``): the config hash, the stage read as input, and
   every committed file with its size, rows and sha256. It is the commit (one atomic write, no rename needed); the
   staging folders, with any failed or late attempt's file, are removed after it.

The work folder is a local folder or a URI (``s3://bucket/run``; ``stackv2.storage``). Readers read the files a
manifest lists (``StageContext.read``, ``read_parquet``: Spark's reader for local files, pyarrow inside the tasks
for an object store), never a folder listing. A rerun skips a stage only
when its manifest carries the same config hash and ``stage_problems`` finds nothing: each output folder holds
exactly the listed files, same sizes and sha256; ``_stats.json`` counts what the outputs hold; and its rows in are
what the stages before it wrote (``CHAIN``). Otherwise the stage is removed and redone, each problem said on one
line, and the runner redoes every stage after it.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import LongType

from stackv2.config import RunConfig
from stackv2.release.card import ReleaseSummary
from stackv2.release.layout import verify_release
from stackv2.release.products import PRODUCTS
from stackv2.schema import RELEASE
from stackv2.stats import StageStats
from stackv2.storage import Location, location, parquet_file
from stackv2.workdir import (
    DATA,
    REJECTED,
    STATS,
    SUCCESS,
    FileEntry,
    Manifest,
    ManifestError,
    committed_files,
    output_problems,
    read_manifest,
    release_dir,
    staging_dir,
    write_manifest,
)
from udfs.parquet_reader import URI, as_spark_reads, read_files
from udfs.parquet_writer import RESULT_SCHEMA, empty_part, part_name, partition_of, write_partitions

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
    "malware",
    "compose",
    "notebooks",
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


class StageOutputError(RuntimeError):
    """A completed stage's folder does not match its manifest."""


def read_parquet(spark: SparkSession, files: Sequence[str | Path | Location]) -> DataFrame:
    """The rows of the given Parquet files (a manifest's list): Spark's own reader when they are local (or on a
    mounted folder), else pyarrow inside the tasks, one task per file (``udfs.parquet_reader``: no Hadoop connector
    needed), with the schema and types Spark's reader would give."""
    locs = [location(f) for f in files]
    if not locs or all(f.is_local for f in locs):
        return spark.read.parquet(*(f.path for f in locs))
    schema = from_arrow_schema(as_spark_reads(parquet_file(locs[0]).schema_arrow), prefer_timestamp_ntz=True)
    batch_rows = int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", "10000"))
    uris = spark.sparkContext.parallelize([(f.uri,) for f in locs], len(locs))
    reader = read_files(to_arrow_schema(schema), batch_rows)
    return spark.createDataFrame(uris, f"{URI} string").mapInArrow(reader, schema)


def read_partitioned(
    spark: SparkSession, files: Sequence[str | Path | Location], key: tuple[str, ...]
) -> DataFrame | None:
    """The committed files of one output as a table Spark knows is hash-partitioned on ``key``, file ``i`` holding
    partition ``i`` of ``len(files)``, and sorted on ``key`` (``write_committed`` wrote them so), so a join on ``key``
    in as many partitions shuffles and sorts only its other side (``frames.attach_partitioned``): at 200k files,
    exact_dedup's contents no longer cross a shuffle (docs/scaling.md, "Inputs read as the partitions they are"), nor
    a sort ("Inputs known sorted"). Spark reads a table's folder, not a list, so the folder must hold exactly
    ``files``. None where Spark cannot be told: files not local, names that are not ``part_name(0 .. n-1)`` (an
    older work folder), anything else in the folder, or a catalog other than Spark's in-memory one (the table, an
    entry naming the folder, would outlive the run there)."""
    locs = [location(f) for f in files]
    if not locs or not all(f.is_local for f in locs) or [partition_of(f.name) for f in locs] != list(range(len(locs))):
        return None
    if spark.conf.get("spark.sql.catalogImplementation", "in-memory") != "in-memory":
        return None
    folder = locs[0].parent
    if sorted(f.name for f in folder.files(recursive=False) if _visible(f, folder)) != [f.name for f in locs]:
        return None
    ddl = read_parquet(spark, locs)._jdf.schema().toDDL()
    table = f"stackv2_input_{secrets.token_hex(6)}"
    bucket_columns = ", ".join(f"`{k}`" for k in key)
    where = folder.path.replace("\\", "\\\\").replace("'", "\\'")
    spark.sql(
        f"CREATE TABLE {table} ({ddl}) USING parquet CLUSTERED BY ({bucket_columns}) SORTED BY ({bucket_columns}) "
        f"INTO {len(locs)} BUCKETS "
        f"LOCATION '{where}'"
    )
    return spark.table(table)


def _check_outputs(stage_dir: Location) -> None:
    """Raise unless ``stage_dir`` has completed and its output folders hold what its manifest lists."""
    manifest = read_manifest(stage_dir)
    if manifest is None:
        raise FileNotFoundError(f"stage {stage_dir.name!r} has not completed in {stage_dir.parent} (no {SUCCESS})")
    problems = output_problems(stage_dir, manifest)
    if problems:
        raise StageOutputError(
            f"{stage_dir}: {problems[0]} ({len(problems)} problems in all): run stage {stage_dir.name!r} again"
        )


@dataclass
class StageContext:
    spark: SparkSession
    cfg: RunConfig
    #: A local folder or a URI (a path given is taken as its ``Location``).
    work_dir: Location
    #: The stage run just before this one in the pipeline (None for the first).
    previous: str | None
    #: Config hash of this stage (inputs and settings).
    config_hash: str
    #: Stages checked or written in this run (shared by its contexts): read without checking them again.
    trusted: set[str] = field(default_factory=set)
    #: The stage whose data ``input()`` read (the manifest's ``previous``: the rows this stage received).
    input_stage: str | None = None

    def __post_init__(self) -> None:
        self.work_dir = location(self.work_dir)

    def path(self, stage: str, output: str = DATA) -> Location:
        return self.work_dir / stage / output

    def files(self, stage: str, output: str = DATA) -> list[Location]:
        """The committed files of a stage's output; those of a stage not yet trusted in this run are checked against
        its manifest first."""
        if stage not in self.trusted:
            _check_outputs(self.work_dir / stage)
            self.trusted.add(stage)
        return committed_files(self.path(stage, output))

    def read(self, stage: str, output: str = DATA) -> DataFrame:
        return read_parquet(self.spark, self.files(stage, output))

    def input(self) -> DataFrame:
        """The previous stage's data, or for the first stage of a run the configured ``input`` dataset (a stage
        output of another work folder is read through its manifest; on an object store, any other dataset is its
        non-hidden ``.parquet`` files)."""
        if self.previous is not None:
            self.input_stage = self.previous
            return self.read(self.previous)
        if not self.cfg.input:
            raise ValueError("this stage reads the output of an earlier stage: run it after one, or set `input`")
        p = location(self.cfg.input)
        if (p / DATA).is_dir():
            p = p / DATA
        if not p.exists():
            raise FileNotFoundError(f"input dataset {p} does not exist")
        if (p.parent / SUCCESS).exists():  # a stage output of a work folder
            _check_outputs(p.parent)
            return nanos_to_timestamps(read_parquet(self.spark, committed_files(p)))
        if p.is_local:
            return nanos_to_timestamps(self.spark.read.parquet(p.path))
        files = [p] if p.is_file() else [f for f in p.files() if f.suffix == ".parquet" and _visible(f, p)]
        return nanos_to_timestamps(read_parquet(self.spark, files))

    def partitioned_input(self, key: tuple[str, ...]) -> tuple[DataFrame, bool]:
        """(``input()``, whether Spark knows it is hash-partitioned on ``key`` into ``spark.shuffle_partitions``:
        ``read_partitioned``, for the previous stage's data written with that key and that many partitions)."""
        if self.previous is not None:
            files = self.files(self.previous)
            if len(files) == self.cfg.spark.shuffle_partitions:
                table = read_partitioned(self.spark, files, key)
                if table is not None:
                    self.input_stage = self.previous
                    return table, True
        return self.input(), False

    def stats_of(self, stage: str) -> StageStats | None:
        try:
            return StageStats.load(self.work_dir / stage / STATS)
        except FileNotFoundError:
            return None


def _visible(f: Location, folder: Location) -> bool:
    """Whether a file below ``folder`` is data to Spark's reader (no hidden or ``_`` name on its way)."""
    return not any(part.startswith((".", "_")) for part in f.relative_to(folder).split("/"))


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
    #: The rows are already in the partitions and order the write would give them: read as the partitions they are
    #: (``StageContext.partitioned_input``) and kept in place by every step since (filters, columns added, Python
    #: maps that keep each batch's rows in order). The write then checks that instead of shuffling and sorting.
    aligned: bool = False


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


@dataclass(frozen=True)
class Written:
    """One committed output folder: its rows, the rows per value of the counted column, and its files."""

    rows: int
    counts: dict[str, int]
    files: list[FileEntry]


def write_committed(
    out: Output, target: str | Path | Location, partitions: int, count_by: str | None = None, unique: bool = False
) -> Written:
    """Write one output deterministically and say what it holds; with ``unique``, a key shared by two rows fails the
    write (``udfs.parquet_writer.DuplicateKeyError``).

    Rows are hash-partitioned and sorted on the output's unique key (an ``aligned`` output is checked to be so
    instead), then each partition is written by pyarrow (``udfs.parquet_writer``) to a hidden file of its task attempt
    in the output's staging folder: the same rows give the same bytes whatever the input partitioning or executors.
    The driver checks each accepted attempt's file against what its task reported and gives it its name in ``target``
    (``Location.move_or_copy``). The staging folder, holding any other attempt's file, is left for the caller to
    remove once it has committed (a manifest, ``run_stage``); on an error it and ``target`` are removed here.
    """
    target = location(target)
    staging = staging_dir(target)
    df = placed(out, partitions)
    schema = to_arrow_schema(df.schema)
    staging.delete_tree()
    try:
        writer = write_partitions(
            staging.uri,
            schema,
            count_by=count_by,
            key=out.key,
            unique=unique,
            ascending=out.aligned,
            tag=secrets.token_hex(4),
        )
        written = df.mapInArrow(writer, RESULT_SCHEMA).collect()
        target.delete_tree()
        target.mkdir()
        files = {}
        for r in written:
            name = part_name(r["partition"])
            if name in files:
                raise RuntimeError(f"{target}: two accepted results for partition {r['partition']}")
            staged = staging / r["file"]
            size = staged.size()
            if size != r["bytes"]:
                raise RuntimeError(f"{target}: {r['file']} is {size} bytes, its task wrote {r['bytes']}")
            staged.move_or_copy(target / name)
            files[name] = FileEntry(name, r["bytes"], r["rows"], r["sha256"])
        # Spark skips the tasks of an empty input: still write every part, so the layout never depends on the data.
        missing = sorted({part_name(i) for i in range(partitions)} - files.keys())
        if missing:
            data = empty_part(schema)
            for name in missing:
                (target / name).write_bytes(data)
                files[name] = FileEntry(name, len(data), 0, hashlib.sha256(data).hexdigest())
    except BaseException:
        staging.delete_tree()
        target.delete_tree()
        raise
    counts: Counter[str] = Counter()
    for r in written:
        counts.update(r["counts"] or {})
    return Written(sum(r["rows"] for r in written), dict(counts), [files[n] for n in sorted(files)])


def placed(out: Output, partitions: int) -> DataFrame:
    """``out``'s rows in the partitions and order of its files: hash-partitioned and sorted on its key, or, for an
    ``aligned`` output, left where they are and checked (a row out of place fails the write; the writer checks the
    order: ``write_partitions(ascending=True)``)."""
    if out.aligned:
        return out.df.where(_in_its_partition(out.key, partitions))
    return out.df.repartition(partitions, *out.key).sortWithinPartitions(*out.key)


def _in_its_partition(key: tuple[str, ...], partitions: int) -> Column:
    """True where a row is in the partition ``repartition(partitions, *key)`` would put it (Spark's hash partitioning:
    Murmur3 with seed 42, as ``hash`` computes it); a row anywhere else fails its task."""
    home = F.pmod(F.hash(*key), F.lit(partitions))
    return F.when(home == F.spark_partition_id(), F.lit(True)).otherwise(
        F.raise_error(F.lit(f"a row of an aligned output is not in its partition of {partitions} on {key}"))
    )


def write_output(
    out: Output, target: str | Path | Location, partitions: int, count_by: str | None = None
) -> tuple[int, dict[str, int]]:
    """``write_committed`` for a job outside the stage contract: (rows written, rows per value of ``count_by``).
    With no manifest to commit them, the files take their names one after another."""
    written = write_committed(out, target, partitions, count_by)
    staging_dir(target).delete_tree()
    return written.rows, written.counts


def value_counts(df: DataFrame, column: str) -> dict[str, int]:
    """Rows per value of ``column`` in one aggregation, for a stage's stats (null counted as ``"(none)"``)."""
    return {
        "(none)" if r[column] is None else str(r[column]): r["count"] for r in df.groupBy(column).count().collect()
    }


# --- checks -----------------------------------------------------------------------------------------------------

StatsOf = Callable[[str], StageStats | None]


def as_written(stats: StageStats) -> tuple[int, int]:
    """(rows in, rows out) as the stage wrote them. ``stackv2 optout apply`` later purges rows from the work tables,
    recounting ``_stats.json`` and recording the rows purged per table in ``extra["optout_purged"]``."""
    purged = stats.extra.get("optout_purged") or {}
    return (
        stats.rows_in + purged.get(DATA, 0) + purged.get(REJECTED, 0),
        stats.rows_out + purged.get(DATA, 0),
    )


def _previous_rows(stats: StageStats, previous: str | None, stats_of: StatsOf) -> list[str]:
    """The default chain: a stage that read its input (``StageContext.input``) from the stage run before it received
    every row that stage passed on."""
    if previous is None:  # it read the graph, the configured input, or other stages by name
        return []
    before = stats_of(previous)
    if before is None:
        return [f"it read stage {previous}, which has no {STATS}"]
    rows_in, sent = as_written(stats)[0], as_written(before)[1]
    return [] if rows_in == sent else [f"{rows_in} rows in, but {previous} passed on {sent}"]


def _product_sources(stats: StageStats, previous: str | None, stats_of: StatsOf) -> list[str]:
    """``shards``: each product holds every row its stage passed on, or with ``only`` some of them."""
    problems = []
    for product in PRODUCTS:
        summary = stats.extra.get("products", {}).get(product.name)
        if summary is None:
            continue
        source = stats_of(product.stage)
        if source is None:
            problems.append(f"{product.name} came from stage {product.stage}, which has no {STATS}")
            continue
        held, sent = ReleaseSummary.from_dict(summary).files, as_written(source)[1]
        if held > sent or (product.only is None and held != sent):
            problems.append(f"{product.name} holds {held} rows, {product.stage} passed on {sent}")
    return problems


#: What a stage's rows in must equal: the rows the stages it read passed on. A stage not named here that read its
#: input from the stage run before it (its manifest's ``previous``) received every row that stage passed on
#: (``_previous_rows``); one that read the graph, a configured input or stages by name has no chain.
CHAIN: dict[str, Callable[[StageStats, str | None, StatsOf], list[str]]] = {
    "shards": _product_sources,
}


def _load_stats(stage_dir: Location) -> StageStats | None:
    try:
        return StageStats.load(stage_dir / STATS)
    except (OSError, ValueError, TypeError):
        return None


def stage_problems(
    work: str | Path | Location, name: str, manifest: Manifest | None = None, deep: bool = True
) -> list[str]:
    """What does not hold in the completed stage ``name`` of ``work``, one line each (empty: it can be trusted).

    Its outputs against its manifest (``stackv2.workdir.output_problems``: exact file set, sizes, and sha256 when
    ``deep``, else footer row counts); its ``_stats.json`` against its outputs and its own balance; its rows in
    against the stages it read (``CHAIN``); for ``shards``, the release against its manifests."""
    work = location(work)
    stage_dir = work / name
    if manifest is None:
        try:
            manifest = read_manifest(stage_dir)
        except ManifestError as e:
            return [f"stage {name}: {e}"]
        if manifest is None:
            return [f"stage {name}: not complete (no {SUCCESS})"]
    problems = output_problems(stage_dir, manifest, deep)
    stats = _load_stats(stage_dir)
    if stats is None:
        problems.append(f"{STATS} is missing or unreadable")
    else:
        held = {out: manifest.rows(out) for out in (DATA, REJECTED) if out in manifest.outputs}
        counted = {DATA: stats.rows_out, REJECTED: stats.rows_rejected}
        problems += [
            f"{STATS} counts {counted[o]} rows in {o}/, which holds {n}" for o, n in held.items() if counted[o] != n
        ]
        if stats.rows_in != stats.rows_out + stats.rows_rejected:
            problems.append(f"{STATS}: {stats.rows_in} in != {stats.rows_out} out + {stats.rows_rejected} rejected")
        chain = CHAIN.get(name, _previous_rows)
        problems += chain(stats, manifest.previous, lambda s: _load_stats(work / s))
        if name == "shards":
            for product in stats.extra.get("products", {}):
                folder = release_dir(work) / product
                try:
                    problems += [f"release/{product}/{p}" for p in verify_release(folder)]
                except (OSError, ValueError) as e:
                    problems.append(f"release/{product}: no readable manifest ({type(e).__name__})")
    return [f"stage {name}: {p}" for p in problems]


def resume_state(work: str | Path | Location, name: str, config_hash: str) -> tuple[bool, list[str]]:
    """(whether stage ``name`` is complete for ``config_hash`` and can be skipped; if it completed but cannot, why,
    one line each). A stage never completed, or completed with another config, is simply run."""
    work = location(work)
    try:
        manifest = read_manifest(work / name)
    except ManifestError as e:
        return False, [f"stage {name}: {e}"]
    if manifest is None or manifest.config_hash != config_hash:
        return False, []
    problems = stage_problems(work, name, manifest)
    return not problems, problems


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_stage(
    ctx: StageContext,
    name: str,
    build: Callable[[StageContext], StageResult],
    *,
    redo: str | None = None,
    log: Callable[[str], None] = _log,
) -> tuple[StageStats, bool]:
    """Run one stage unless it is complete for this config hash and checks (``resume_state``); with ``redo`` (why),
    run it whatever its state. Returns (stats, skipped)."""
    stage_dir = ctx.work_dir / name
    if redo is None:
        complete, problems = resume_state(ctx.work_dir, name, ctx.config_hash)
        if complete:
            ctx.trusted.add(name)
            _remove_staging(stage_dir)  # left by a run that stopped right after committing
            return StageStats.load(stage_dir / STATS), True
        for p in problems:
            log(f"[stackv2] {p}")
        if problems:
            log(f"[stackv2] stage {name}: redoing it")
    elif (stage_dir / SUCCESS).exists():
        log(f"[stackv2] stage {name}: redoing it ({redo})")
    ctx.trusted.discard(name)
    stage_dir.delete_tree()
    stage_dir.mkdir()
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
                write_committed,
                out,
                stage_dir / out_name,
                partitions,
                count_by="reason" if out_name == REJECTED else None,
                unique=out_name == DATA,
            )
            for out_name, out in outputs.items()
        }
    written = {out_name: future.result() for out_name, future in futures.items()}  # raises the first failure

    stats = StageStats(stage=name, config_hash=ctx.config_hash, extra=dict(result.extra))
    stats.rows_out = written[DATA].rows
    if REJECTED in written:
        stats.rejected = written[REJECTED].counts
    if result.extra_stats is not None:
        data_files = [stage_dir / DATA / f.name for f in written[DATA].files]
        stats.extra.update(result.extra_stats(read_parquet(ctx.spark, data_files)))
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
    outputs_written = {out_name: w.files for out_name, w in written.items()}
    write_manifest(stage_dir, Manifest(name, ctx.config_hash, ctx.input_stage, outputs_written))
    _remove_staging(stage_dir)
    ctx.trusted.add(name)
    return stats, False


def _remove_staging(stage_dir: Location) -> None:
    """Remove the staging folders of a committed stage (``stackv2.workdir.staging_dir``: attempts' leftovers)."""
    for p in stage_dir.list():
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            p.delete_tree()


def check_work(work: str | Path | Location, deep: bool = True) -> tuple[list[str], dict[str, Any]]:
    """``stackv2 check``: the problems of every stage folder of ``work`` (``stage_problems``, in pipeline order)
    without running anything, and what was checked (stages, files, bytes)."""
    work = location(work)
    problems: list[str] = []
    checked: dict[str, Any] = {"stages": [], "files": 0, "bytes": 0}
    for name in PIPELINE:
        if not (work / name).is_dir():
            continue
        checked["stages"].append(name)
        problems += stage_problems(work, name, deep=deep)
        try:
            manifest = read_manifest(work / name)
        except ManifestError:
            continue
        for files in manifest.outputs.values() if manifest else ():
            checked["files"] += len(files)
            checked["bytes"] += sum(f.bytes for f in files)
    return problems, checked
