"""Stage ``shards``: write the run's products (``stackv2.release.products``: ``the-stack-v2``, ``-dedup``,
``-train-full``, ``-train-smol``) to ``<work_dir>/shards/release/<product>/``, each in the Hugging Face layout with
its manifest and dataset card (docs/spec.md §2.2, §2.3; layout in ``stackv2.release``).

Per product, one aggregation gives files and bytes per (language, license type, length bin): the card's tables and
the report's histograms. Shards are filled with whole repositories in key order (``_assign``: a running sum of
bytes per folder), Spark puts each shard in one partition, sorted, and ``write_shards`` writes it with pyarrow
(exact ``schema.RELEASE``/``RELEASE_REPOS`` types, row groups cut from the rows alone), so the bytes do not depend
on the input partitioning. File-level products have one folder per language, repository-level ones one folder.
The writer tasks write their files into the stage's staging folder (``<work>/shards/.release.tmp``, each attempt a
file of its own); the driver gives the accepted ones their release names under ``release/`` (a rename locally, a
server-side copy on an object store), then writes each product's manifest and card; the stage's ``_SUCCESS``
commits the whole release, whose products ``stage_problems`` checks against their manifests.

The stage's ``data`` output indexes every released file of every product: ``schema.RELEASE`` without ``content``,
+ ``product`` + ``shard`` (the file holding the row) + ``swhid`` (the file's full SWHID with its origin, snapshot,
revision and path), for lookups and opt-out. The contents are in the shards alone (``tokenize`` reads them there):
a second copy of every product's contents, shuffled and written once more, was half of the stage's work at 1M
files (docs/scaling.md, "The row table without contents"). No row is rejected: rows in (the products' rows) = rows
out, and the rows in the written shards are counted against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import reduce

import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType

from pipelines._job import PIPELINE, Output, Stage, StageContext, StageResult
from stackv2.release.card import (
    ReleaseSummary,
    dataset_card,
    malware_note,
    registry_date,
    release_index,
    release_summary,
)
from stackv2.release.config import ShardsConfig
from stackv2.release.layout import (
    CARD,
    DATA_DIR,
    DIR_COL,
    NBYTES_COL,
    REPO_SORT_KEY,
    ROW_OVERHEAD_BYTES,
    SHARD_COL,
    SORT_KEY,
    WRITTEN,
    ShardEntry,
    ShardStarts,
    final_paths,
    language_dir,
    shard_count,
    write_manifest,
    write_shards,
)
from stackv2.release.products import PRODUCTS, Product
from stackv2.schema import RELEASE, RELEASE_REPOS, REPO_FIELDS, REPO_FILE
from stackv2.stats import AccountingError
from stackv2.storage import Location, location
from stackv2.workdir import release_dir, staging_dir
from udfs.arrow import conform, to_spark_schema
from udfs.provenance import SWHID_COLUMN, file_swhids

SHARD_PATH = "shard"
#: The release's columns the ``data`` output repeats: all but the contents.
INDEXED = tuple(name for name in RELEASE.names if name != "content")
#: The shards table's column naming the product a row was released in.
PRODUCT_COL = "product"
REPO_COL = "_repo"
_REPO_FILE_FIELDS = list(REPO_FILE)
#: What the stage reads from its input: the release columns, plus what the repo-grouped rows need.
INPUT = pa.schema(
    [
        *RELEASE,
        *(f for f in REPO_FIELDS if f.name not in RELEASE.names),
        *(f for f in _REPO_FILE_FIELDS if f.name not in RELEASE.names),
    ]
)


def _length_bin() -> F.Column:
    """floor(log2(length_bytes)), -1 for empty files. log2(n + 0.5) keeps powers of two off float rounding."""
    return F.when(F.col("length_bytes") > 0, F.floor(F.log2(F.col("length_bytes") + 0.5))).otherwise(-1).cast("int")


def _shard_writer(
    root: str, schema: pa.Schema, cfg: ShardsConfig
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``write_shards`` as a ``mapInArrow`` function, each task attempt writing files of its own."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        yield from write_shards(batches, root, schema, cfg, tag=str(TaskContext.get().taskAttemptId()))

    return run


def _write(
    df: DataFrame, staging: Location, schema: pa.Schema, sort_key: tuple[str, ...], partitions: int, cfg: ShardsConfig
) -> list[dict]:
    """Each shard in one partition, sorted, written by ``write_shards`` under ``staging``; returns the ``WRITTEN``
    rows."""
    writer = _shard_writer(staging.uri, schema, cfg)
    out = (
        df.repartition(max(1, partitions), DIR_COL, SHARD_COL)
        .sortWithinPartitions(DIR_COL, SHARD_COL, *sort_key)
        .mapInArrow(writer, to_spark_schema(WRITTEN))
    )
    return [r.asDict() for r in out.collect()]


def _repo_key() -> F.Column:
    """Orders like (repo_name, snapshot_id); one string so it joins without null trouble."""
    return F.concat_ws("\u0000", F.coalesce("repo_name", F.lit("")), F.coalesce("snapshot_id", F.lit("")))


def _assign(repos: DataFrame, target: int) -> DataFrame:
    """Shard of each (folder, repository): floor(bytes of the folder's repositories before it / target).

    Repositories in key order fill shard after shard, so a shard holds at most ``target`` bytes plus its last
    repository. Deterministic: a running sum over a total order. The window holds one folder's repositories (one
    row each) in one task; fine for millions of repositories per language.
    """
    before = Window.partitionBy(DIR_COL).orderBy(REPO_COL).rowsBetween(Window.unboundedPreceding, -1)
    start = F.coalesce(F.sum(NBYTES_COL).over(before), F.lit(0))
    return repos.withColumn(SHARD_COL, F.floor(start / F.lit(target)).cast("long"))


def _repo_rows(rows: DataFrame) -> DataFrame:
    """One row per repository and shard: repo fields, ``files`` sorted by path, ``num_files``."""
    files_type = to_spark_schema(pa.schema(_REPO_FILE_FIELDS))
    file_struct = F.struct(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in files_type.fields])
    by_path = F.array_sort(
        F.collect_list(file_struct),
        lambda a, b: F.when(a["path"] < b["path"], -1).when(a["path"] > b["path"], 1).otherwise(0),
    )
    return rows.groupBy(DIR_COL, SHARD_COL, *[f.name for f in REPO_FIELDS]).agg(
        by_path.alias("files"), F.count("*").alias("num_files"), F.sum(NBYTES_COL).alias(NBYTES_COL)
    )


def transform(
    rows: DataFrame, repo_level: bool, root: Location, cfg: ShardsConfig, staging: Location | None = None
) -> tuple[DataFrame, ReleaseSummary, list[ShardEntry]]:
    """Write one product's ``rows`` (``INPUT``) under ``root`` (a new folder; the tasks write under ``staging``,
    default ``root``'s staging folder): (the released rows with the ``shard`` holding each, the summary, one entry
    per shard written)."""
    spark = rows.sparkSession
    root, staging = location(root), location(staging) if staging is not None else staging_dir(root)
    root.mkdir()  # an empty product still has its folder, manifest and card
    groups = [
        r.asDict()
        for r in rows.groupBy("language", "license_type", _length_bin().alias("length_bin"))
        .agg(F.count("*").alias("files"), F.sum("length_bytes").alias("bytes"))
        .collect()
    ]
    summary = release_summary(groups)
    rows_in = summary.files

    # Language -> folder (several languages could share one); the folder's bytes give the expected shard count.
    folders = {
        g["language"] or "": DATA_DIR if repo_level else f"{DATA_DIR}/{language_dir(g['language'])}" for g in groups
    }
    folder_bytes: dict[str, int] = {}
    for g in groups:
        d = folders[g["language"] or ""]
        folder_bytes[d] = folder_bytes.get(d, 0) + g["bytes"] + g["files"] * ROW_OVERHEAD_BYTES
    expected = sum(shard_count(b, cfg.target_shard_bytes) for b in folder_bytes.values())
    plan = spark.createDataFrame(sorted(folders.items()), f"_lang string, {DIR_COL} string")
    rows = (
        rows.withColumn("_lang", F.coalesce("language", F.lit("")))
        .join(F.broadcast(plan), "_lang")
        .withColumn(REPO_COL, _repo_key())
        .withColumn(NBYTES_COL, F.col("length_bytes") + ROW_OVERHEAD_BYTES)
    )
    repo_bytes = rows.groupBy(DIR_COL, REPO_COL).agg(F.sum(NBYTES_COL).alias(NBYTES_COL)).localCheckpoint()
    # Each row finds its shard from where the shards start (one row per shard, broadcast), not by a join with one
    # row per repository, which would shuffle the contents once more; ``data`` reads the input's other columns again.
    first_repo = F.min(REPO_COL).alias(REPO_COL)
    starts = _assign(repo_bytes, cfg.target_shard_bytes).groupBy(DIR_COL, SHARD_COL).agg(first_repo).collect()
    placed = spark.sparkContext.broadcast(ShardStarts((r[DIR_COL], r[SHARD_COL], r[REPO_COL]) for r in starts))
    shard_of = F.udf(lambda folder, key: placed.value.shard_of(folder, key), LongType(), useArrow=True)
    shard = shard_of(DIR_COL, REPO_COL).alias(SHARD_COL)
    unplaced, rows = rows, rows.select("*", shard)
    if repo_level:
        written = _write(_repo_rows(rows), staging, RELEASE_REPOS, REPO_SORT_KEY, expected, cfg)
    else:
        payload = rows.select(DIR_COL, SHARD_COL, NBYTES_COL, *RELEASE.names)
        written = _write(payload, staging, RELEASE, SORT_KEY, expected, cfg)

    names = final_paths(written)
    entries = []
    for w in written:
        rel = names[w["path"]]
        staged = location(w["path"])
        if staged.size() != w["bytes"]:
            raise RuntimeError(f"{staged}: {staged.size()} bytes, its task wrote {w['bytes']}")
        staged.move_or_copy(root / rel)
        entries.append(ShardEntry(rel, w["rows"], w["bytes"], w["sha256"]))
    if sum(w["files"] for w in written) != rows_in:
        raise AccountingError(f"stage 'shards': {rows_in} rows in, {sum(w['files'] for w in written)} in the shards")
    summary.shards = len(entries)
    summary.repo_shards = len(entries) if repo_level else 0
    summary.repos = repo_bytes.select(REPO_COL).distinct().count()
    summary.shard_bytes = sum(e.bytes for e in entries)

    located = spark.createDataFrame(
        [(w["dir"], w["shard"], names[w["path"]]) for w in written],
        f"{DIR_COL} string, {SHARD_COL} long, {SHARD_PATH} string",
    )
    # The shard and the SWHID in one projection, evaluated by one Python worker per task; a left join, as an inner
    # one would have Spark filter on the shard first, a second evaluation. Every row's shard was written.
    swhid = file_swhids("content_id", "repo_url", "snapshot_id", "revision_id", "path")
    in_shard = F.col(SHARD_PATH)
    data = (
        unplaced.select("*", shard, swhid)
        .join(F.broadcast(located), [DIR_COL, SHARD_COL], "left")
        .select(
            *INDEXED,
            F.when(in_shard.isNull(), F.raise_error(F.lit("a released row in no written shard")))
            .otherwise(in_shard)
            .alias(SHARD_PATH),
            SWHID_COLUMN,
        )
    )
    return data, summary, entries


def _product_rows(ctx: StageContext, product: Product) -> DataFrame:
    rows = ctx.read(product.stage)
    if product.only:
        rows = rows.where(F.col(product.only))
    if product.content != "content":
        rows = rows.withColumns({"content": F.col(product.content), "length_bytes": F.octet_length(product.content)})
    return conform(rows, INPUT)


def run(ctx: StageContext) -> StageResult:
    release = release_dir(ctx.work_dir)
    staging = staging_dir(release)  # removed with the stage's other staging folders once it has committed
    done = [p for p in PRODUCTS if ctx.stats_of(p.stage) is not None]
    summaries: dict[str, ReleaseSummary] = {}
    data: list[DataFrame] = []
    for product in done:
        root = release / product.name
        rows, summary, entries = transform(
            _product_rows(ctx, product), product.repo_level, root, ctx.cfg.shards, staging / product.name
        )
        write_manifest(root, entries, config_hash=ctx.config_hash, created_from=product.stage)
        upstream = PIPELINE[: PIPELINE.index(product.stage) + 1]
        card = dataset_card(
            summary,
            [s for s in map(ctx.stats_of, upstream) if s is not None],
            config_hash=ctx.config_hash,
            registry=registry_date(ctx.stats_of("optout")),
            product=product,
            malware=malware_note(ctx.stats_of("malware")) if "malware" in upstream else "",
        )
        (root / CARD).write_text(card)
        summaries[product.name] = summary
        data.append(rows.withColumn(PRODUCT_COL, F.lit(product.name)))
    (release / CARD).write_text(release_index([(p, summaries[p.name]) for p in done]))
    files = sum(s.files for s in summaries.values())
    return StageResult(
        data=Output(reduce(DataFrame.unionByName, data), (PRODUCT_COL, *SORT_KEY)),
        rows_in=files,
        extra={
            "products": {name: s.to_dict() for name, s in summaries.items()},
            "products_missing": [p.name for p in PRODUCTS if p not in done],
            "release_dir": str(release),
        },
    )


STAGE = Stage("shards", run, config_keys=("shards",))
