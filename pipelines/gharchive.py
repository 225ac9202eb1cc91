"""``stackv2 gharchive build``: the GitHub metadata table (``schema.GHARCHIVE_METADATA``) from GH Archive's hourly
``*.json.gz`` event files, by the rules of ``stackv2.gharchive`` (docs/gharchive.md).

One scan and one hash aggregation: each event line becomes the rows it contributes (its (id, name, type), its
file's bytes and, for a pull request or a fork, the repository object it carries, whole, as a key), and a single
``groupBy`` reduces them to partials: one row per (id, name, type), per file and per distinct repository object.
The table (a second, small reduction: counts per pair, the winning object per id) and the summary are read from the
partials; nothing per event reaches the driver.

Files are read as BigCode read them (Spark's reader with ``ignoreCorruptFiles``: a file cut short gives the lines
before the cut), then each is checked: the bytes of its lines must add up to the size its gzip trailer declares
(one 4-byte read per file, from the driver, through Spark's own file system), so an incomplete file is counted and
named instead of silently shortening the counts.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipelines._job import Output, write_output
from stackv2.atomic import write_json
from stackv2.gharchive import (
    EVENT,
    FORK_EVENT,
    GZIP_MIN_BYTES,
    METADATA_ORDER,
    METADATA_PAYLOADS,
    WATCH_EVENT,
    file_key,
    gzip_size,
    summarize,
)
from stackv2.schema import GHARCHIVE_METADATA
from udfs.arrow import conform, to_spark_schema

#: The kinds of partial rows: keyed by (repo.id, repo.name, type), by repository object (id and ``object``), by
#: file (in ``name``).
PAIR, OBJECT, FILE = 0, 1, 2
EVENT_FILES = "*.json.gz"
#: The build's summary, written beside the table's part files (Spark and pyarrow skip names starting with ``_``).
SUMMARY = "_summary.json"
KEY = ("full_name", "github_id")
#: Concurrent trailer reads (each one small ranged read; on S3 mostly waiting).
TRAILER_THREADS = 16
#: Longer lines are skipped, not held in memory (GH Archive's largest events are far smaller); their file then
#: fails the byte check and is reported incomplete.
MAX_LINE_BYTES = 64 * 2**20


def read_lines(spark: SparkSession, path: str, max_line_bytes: int = MAX_LINE_BYTES) -> DataFrame:
    """``(file, value)``: every line of every ``*.json.gz`` under ``path`` (nested folders too), corrupt files read up
    to the error and no further, as ``spark.sql.files.ignoreCorruptFiles`` does."""
    try:
        lines = (
            spark.read.option("recursiveFileLookup", "true")
            .option("pathGlobFilter", EVENT_FILES)
            .option("ignoreCorruptFiles", "true")
            .option("lineSep", "\n")
            .option("mapreduce.input.linerecordreader.line.maxlength", str(max_line_bytes))
            .text(path)
        )
    except AnalysisException as e:
        raise FileNotFoundError(f"GH Archive events {path}: {e.getMessage()}") from None
    if not lines.inputFiles():
        raise FileNotFoundError(f"GH Archive events {path}: no {EVENT_FILES} files")
    return lines.select(F.col("_metadata.file_path").alias("file"), "value")


def parse(lines: DataFrame) -> DataFrame:
    """Lines to events (``stackv2.gharchive.EVENT``; blank lines are no events, as for Spark's JSON reader), with
    ``file`` and ``line_bytes`` (the line's bytes and its newline) kept for the file check."""
    event = F.when(F.col("value").rlike(r"\S"), F.from_json("value", to_spark_schema(EVENT)))
    return lines.select("file", (F.octet_length("value") + 1).alias("line_bytes"), event.alias("e")).select(
        "file", "line_bytes", F.col("e").isNotNull().alias("is_event"), "e.*"
    )


def _repo_object() -> Column:
    """The repository object of a pull request or fork event (``METADATA_PAYLOADS``), else null."""
    obj = None
    for event_type, where in METADATA_PAYLOADS.items():
        is_type, value = F.col("type") == event_type, F.col(".".join(("payload", *where)))
        obj = F.when(is_type, value) if obj is None else obj.when(is_type, value)
    return obj


def partials(events: DataFrame) -> DataFrame:
    """The one aggregation: ``(kind, id, name, type, object) -> n, nbytes, latest_event_at``.

    Every key and value is hashable and every buffer fixed-width, so Spark aggregates in a hash table and combines
    before the shuffle (the latest object, a max over structs, would force a sort of every row). ``events`` has
    ``stackv2.gharchive.EVENT``'s columns; with ``file``, ``line_bytes`` and ``is_event`` (``parse``) it also
    yields one row per file."""
    with_files = "file" in events.columns
    if not with_files:
        events = events.select(
            "*",
            F.lit(None).cast("string").alias("file"),
            F.lit(None).cast("long").alias("line_bytes"),
            F.lit(True).alias("is_event"),
        )
    obj = _repo_object()
    candidate = {
        "event_created_at": F.col("created_at"),
        "event_id": F.when(F.col("id").rlike("^[0-9]{1,18}$"), F.col("id").cast("long")),
        "full_name": obj.getField("full_name"),
        "default_branch": obj.getField("default_branch"),
        "license_spdx_id": obj.getField("license").getField("spdx_id"),
        "created_at": obj.getField("created_at"),
        "language": obj.getField("language"),
    }
    # What the rows need, before they are multiplied: the payload's big structs are not copied per row.
    narrow = events.select(
        "file",
        "line_bytes",
        "is_event",
        "type",
        "created_at",
        F.col("repo.id").alias("repo_id"),
        F.col("repo.name").alias("repo_name"),
        obj.getField("id").alias("object_id"),
        F.when(obj.getField("id").isNotNull(), F.struct(*[candidate[k].alias(k) for k in METADATA_ORDER])).alias(
            "object"
        ),
    )
    kind = F.col("kind")
    files = [F.lit(FILE)] if with_files else []
    kinds = (
        F.when(~F.col("is_event"), F.array(*files))
        .when(F.col("object").isNull(), F.array(F.lit(PAIR), *files))
        .otherwise(F.array(F.lit(PAIR), F.lit(OBJECT), *files))
    )
    tagged = narrow.withColumn("kind", F.explode(kinds)).select(
        "kind",
        F.when(kind == PAIR, F.col("repo_id")).when(kind == OBJECT, F.col("object_id")).alias("id"),
        F.when(kind == PAIR, F.col("repo_name")).when(kind == FILE, F.col("file")).alias("name"),
        F.when(kind == PAIR, F.col("type")).alias("type"),
        F.when(kind == OBJECT, F.col("object")).alias("object"),
        F.when(kind == FILE, F.col("line_bytes")).alias("line_bytes"),
        F.when(kind == PAIR, F.col("created_at")).alias("at"),
    )
    return tagged.groupBy("kind", "id", "name", "type", "object").agg(
        F.count(F.lit(1)).alias("n"), F.sum("line_bytes").alias("nbytes"), F.max("at").alias("latest_event_at")
    )


def table(parts: DataFrame) -> DataFrame:
    """The metadata table from the partials: every (id, name) pair with its counts, left-joined to the winning
    repository object of its id where the object's ``full_name`` is the pair's name."""
    kind, n, event_type = F.col("kind"), F.col("n"), F.col("type")
    pairs = (
        parts.where((kind == PAIR) & F.col("id").isNotNull() & F.col("name").isNotNull())
        .groupBy(F.col("id").alias("github_id"), F.col("name").alias("full_name"))
        .agg(
            F.sum(F.when(event_type == WATCH_EVENT, n).otherwise(0)).alias("star_events_count"),
            F.sum(F.when(event_type == FORK_EVENT, n).otherwise(0)).alias("fork_events_count"),
            F.max("latest_event_at").alias("latest_event_at"),
        )
    )
    # A struct compares field by field (nulls lowest): its max is the winner of ``METADATA_ORDER``.
    objects = (
        parts.where(kind == OBJECT)
        .groupBy(F.col("id").alias("github_id"))
        .agg(F.max("object").alias("object"))
        .select("github_id", "object.*")
        .drop("event_id")
    )
    return conform(pairs.join(objects, ["github_id", "full_name"], "left"), GHARCHIVE_METADATA)


def transform(events: DataFrame) -> DataFrame:
    """GH Archive events (``stackv2.gharchive.EVENT``'s columns) -> the metadata table (``GHARCHIVE_METADATA``)."""
    return table(partials(events))


def _trailer_sizes(spark: SparkSession, files: list[str]) -> dict[str, int | None]:
    """Each file's gzip trailer size (``stackv2.gharchive.gzip_size``), read through Spark's Hadoop file system,
    so whatever Spark reads (a folder, ``s3a://``, ``hdfs://``) is checked with the same settings."""
    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()  # type: ignore[union-attr]

    def one(uri: str) -> int | None:
        path = jvm.org.apache.hadoop.fs.Path(uri)
        fs = path.getFileSystem(conf)
        length = fs.getFileStatus(path).getLen()
        if length < GZIP_MIN_BYTES:
            return None
        stream = fs.open(path)
        try:
            stream.seek(length - 4)
            return gzip_size((stream.readInt() & 0xFFFFFFFF).to_bytes(4, "big"))
        finally:
            stream.close()

    with ThreadPoolExecutor(TRAILER_THREADS) as pool:
        return dict(zip(files, pool.map(one, files), strict=True))


def build(spark: SparkSession, events_path: str, out_path: str, partitions: int = 8) -> dict[str, Any]:
    """Read the event files under ``events_path``, write the table to the folder ``out_path`` (atomically,
    ``partitions`` part files, byte-identical for the same files) with ``_summary.json`` beside it, and return the
    summary (``stackv2.gharchive.summarize``)."""
    if "://" in out_path:
        raise ValueError(f"--out {out_path}: the table is written to a local or shared folder, not a URL")
    parent = Path(out_path).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RuntimeError(f"--out {out_path}: {e.strerror or e}") from None
    if not os.access(parent, os.W_OK):
        raise RuntimeError(f"--out {out_path}: {parent} is not writable")
    t0 = time.monotonic()
    lines = read_lines(spark, events_path)
    files = lines.inputFiles()
    parts = partials(parse(lines)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rows, _ = write_output(Output(table(parts), KEY), Path(out_path), partitions)
        kind, name, is_pair = F.col("kind"), F.col("name"), F.col("kind") == PAIR
        dropped = is_pair & (F.col("id").isNull() | name.isNull())
        tally = (
            parts.groupBy("kind", F.when(kind == FILE, name).alias("file"), "type", dropped.alias("dropped"))
            .agg(F.sum("n").alias("n"), F.sum("nbytes").alias("nbytes"))
            .collect()
        )
        distinct = (
            parts.where(is_pair & ~dropped)
            .agg(F.count_distinct("id").alias("repos"), F.count_distinct("name").alias("names"))
            .first()
            .asDict()
        )
    finally:
        parts.unpersist()
    read_bytes = {file_key(r["file"]): r["nbytes"] for r in tally if r["kind"] == FILE}
    trailers = _trailer_sizes(spark, files)
    types: Counter[str | None] = Counter()
    for r in tally:
        if r["kind"] == PAIR:
            types[r["type"]] += r["n"]
    summary = summarize(
        types=types,
        dropped=sum(r["n"] for r in tally if r["kind"] == PAIR and r["dropped"]),
        files={f: (read_bytes.get(file_key(f), 0), trailers[f]) for f in files},
        metadata_objects=sum(r["n"] for r in tally if r["kind"] == OBJECT),
        table={"rows": rows, **distinct},
    )
    summary["seconds"] = round(time.monotonic() - t0, 1)
    write_json(Path(out_path) / SUMMARY, summary, indent=2)
    return summary


def is_table(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` holds a built table (Parquet files) rather than event files."""
    jvm = spark._jvm  # type: ignore[union-attr]
    root = jvm.org.apache.hadoop.fs.Path(path)
    fs = root.getFileSystem(spark._jsc.hadoopConfiguration())  # type: ignore[union-attr]
    if not fs.exists(root):
        raise FileNotFoundError(f"GitHub metadata {path}: no such file or folder")
    return any(s.getPath().getName().endswith(".parquet") for s in fs.listStatus(root))


def one_per_name(table: DataFrame) -> DataFrame:
    """One row per ``full_name``, for a reader that joins on the name alone: the id with the latest event under that
    name (the repository that holds it now), then the larger id (the newer repository); without ``latest_event_at``
    (a hand-made table), the larger id. BigCode kept every id of a name (docs/gharchive.md)."""
    order = [F.col("github_id").desc_nulls_last()]
    if "latest_event_at" in table.columns:
        order.insert(0, F.col("latest_event_at").desc_nulls_last())
    ranked = table.withColumn("_rank", F.row_number().over(Window.partitionBy("full_name").orderBy(*order)))
    return ranked.where(F.col("_rank") == 1).drop("_rank")


def read_github_metadata(spark: SparkSession, path: str) -> DataFrame:
    """The GitHub metadata table at ``path``: a built (or hand-made) Parquet table as it is, or GH Archive event
    files turned into the table here (kept in the session's cache: build it once with ``stackv2 gharchive build``
    when it serves more than one run)."""
    if is_table(spark, path):
        return spark.read.parquet(path)
    return transform(parse(read_lines(spark, path))).persist(StorageLevel.MEMORY_AND_DISK)
