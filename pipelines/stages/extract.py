"""Stage ``extract``: from the SWH graph export to a file index (docs/spec.md §1.3–§1.5).

Repository selection: latest ``full`` visit per origin (origin URL filtered by ``extract.origin_pattern``) ->
its snapshot's default branch (GitHub metadata's ``default_branch`` when known, else the first of
``extract.fallback_branches`` present; aliases are not followed, as in the reference) -> head revision ->
one repository per revision (latest revision date, then branch name) -> one per root directory, by the spec's
priority (GitHub license, stars, forks, earlier revision, older GitHub id, earlier visit). Or, with ``swhids``,
the given snp/rel/rev/dir SWHIDs as roots.

Tree traversal: iterative joins on ``directory_entry`` (``extract.max_depth`` levels); on a wide level, the rows
reaching one directory are merged into one, so a subtree that many forks share is expanded once per depth
(``list_files``). Paths are joined as bytes with a leading ``/``, the listing is joined to ``content`` for
``blob_id`` (sha1), ``content_id`` (sha1_git) and ``length``, then spelled out per root and decoded once per file
(strict UTF-8). Names are never decoded to compare them: branches are matched as bytes, and the entries of a
directory are unique by name (bytes) before any path is built, so no two rows share a (directory_id, path) and no
two files are merged into one.

Rejected (repository-level rows have a null ``path``): ``no_full_visit``, ``no_default_branch``,
``missing_revision``, ``duplicate_revision``, ``duplicate_directory``, ``unresolved_swhid``; entry-level:
``submodule``, ``symlink``, ``duplicate_name``, ``undecodable_name`` (its path shown with U+FFFD),
``skipped_content`` (SWH did not archive the bytes), ``missing_content``, ``too_deep``, ``skew_guard``.
"""

from __future__ import annotations

from functools import reduce
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType

from pipelines._job import Output, Stage, StageContext, StageResult
from pipelines.frames import sort_order
from pipelines.gharchive import one_per_name, read_github_metadata
from stackv2.config import RunConfig
from stackv2.extract import (
    DUPLICATE_DIRECTORY,
    DUPLICATE_NAME,
    DUPLICATE_REVISION,
    MISSING_CONTENT,
    MISSING_REVISION,
    NO_DEFAULT_BRANCH,
    NO_FULL_VISIT,
    ROOT_NULLS_FIRST,
    ROOT_ORDER,
    SKEW_GUARD,
    SKIPPED_CONTENT,
    SUBMODULE,
    SYMLINK,
    TOO_DEEP,
    UNDECODABLE_NAME,
    UNRESOLVED_SWHID,
)
from stackv2.schema import EXTRACT_REJECTED, FILE_INDEX, FILE_KEY, GITHUB_METADATA, GRAPH_TABLES
from stackv2.swh.archive.graph import LINK_PERMS
from stackv2.swh.config import ExtractConfig
from stackv2.swh.swhid import read_roots
from udfs.arrow import conform


class GraphError(ValueError):
    """The graph folder does not hold the export's tables."""


def read_graph_table(spark: SparkSession, graph: str, table: str) -> DataFrame:
    path = f"{graph.rstrip('/')}/{table}"
    if "://" not in graph:
        folder = Path(path)
        if not folder.is_dir() or not any(folder.glob("*.orc")):
            raise GraphError(
                f"graph {graph}: table {table!r} is missing (expected ORC files in {path}/); "
                f"an SWH graph export has one folder per table: {', '.join(GRAPH_TABLES)}"
            )
    return spark.read.orc(path)


def _repo_name(origin: F.Column) -> F.Column:
    """``owner/name`` for GitHub URLs: their first two path segments, verbatim, as BigCode's
    ``regexp_extract(origin, "https://github\\.com/([^/]+/[^/]+)")`` (docs/spec.md §1.3); else the URL without its
    scheme."""
    gh = F.regexp_extract(origin, r"^https://github\.com/([^/]+/[^/]+?)(?:/|$)", 1)
    other = F.regexp_extract(origin, r"^[a-zA-Z+.-]+://(.*?)/?$", 1)
    return F.when(gh != "", gh).otherwise(F.when(other != "", other).otherwise(origin))


def _github(spark: SparkSession, cfg: RunConfig) -> DataFrame:
    """The GitHub metadata (a built table, or GH Archive event files turned into one: ``pipelines.gharchive``) as
    extract joins it; one row per repository name unless ``extract.all_github_rows``."""
    if cfg.github_metadata:
        gh = read_github_metadata(spark, cfg.github_metadata)
        missing = set(GITHUB_METADATA.names) - set(gh.columns)
        if missing:
            raise GraphError(f"GitHub metadata {cfg.github_metadata} lacks columns {sorted(missing)}")
        if not cfg.extract.all_github_rows:
            gh = one_per_name(gh)
    else:
        gh = spark.createDataFrame([], conform(spark.range(0), GITHUB_METADATA).schema)
    return gh.select(
        F.col("full_name").alias("repo_name"),
        "github_id",
        "default_branch",
        F.col("license_spdx_id").alias("gha_license_id"),
        "star_events_count",
        "fork_events_count",
        F.col("created_at").alias("gha_created_at"),
        F.col("event_created_at").alias("gha_event_created_at"),
        F.col("language").alias("gha_language"),
    )


def _rejected(df: DataFrame, reason: str | Column) -> DataFrame:
    if "path" in df.columns and isinstance(df.schema["path"].dataType, BinaryType):
        df = df.withColumn("path", _shown(F.col("path")))
    return conform(df.withColumn("reason", F.lit(reason)), EXTRACT_REJECTED)


def _shown(path: F.Column) -> F.Column:
    """A path of bytes as text: strict UTF-8, each invalid sequence as U+FFFD (as Spark 3's ``decode`` did)."""
    return F.make_valid_utf8(path.cast("string"))


def _bytes(text: str) -> F.Column:
    return F.lit(bytearray(text.encode()))


def _shared(frame: DataFrame) -> DataFrame:
    """``frame`` kept on local disk once a query has computed it. The selection's frames feed both the selected
    repositories (checkpointed first) and the rejected rows, written later: without this, the rejected rows' write
    scanned ``origin_visit_status`` five times, ``snapshot_branch`` four and ``revision`` three more (tables of
    billions of rows in a full export). Dropped after the stage (``pipelines._session.release_unreferenced``)."""
    return frame.persist(StorageLevel.DISK_ONLY)


def _pick_branch(candidates: DataFrame, ecfg: ExtractConfig) -> tuple[DataFrame, DataFrame]:
    """One branch per origin: the GitHub default branch, else the first fallback name present (with
    ``all_fallback_branches``, every fallback name present). Branch names are bytes (``branch``): compared with the
    names sought, encoded, so a name that is not UTF-8 is never chosen."""
    fallback = F.array_position(F.array(*[_bytes(b) for b in ecfg.fallback_branches]), F.col("branch"))
    default = F.encode(F.concat(F.lit("refs/heads/"), "default_branch"), "UTF-8")
    wanted = F.when(F.col("default_branch").isNotNull(), F.when(F.col("branch") == default, 1))
    candidates = candidates.withColumn(
        "branch_rank", F.coalesce(wanted, F.when(F.col("default_branch").isNull() & (fallback > 0), fallback))
    )
    w = Window.partitionBy("origin").orderBy(F.col("branch_rank").asc_nulls_last())
    ranked = _shared(candidates.withColumn("rn", F.row_number().over(w)))
    kept = F.col("rn") == 1
    if ecfg.all_fallback_branches:
        kept = kept | F.col("default_branch").isNull()
    chosen = ranked.where(kept & F.col("branch_rank").isNotNull()).drop("rn", "branch_rank")
    # A chosen name equals a UTF-8 name sought: it decodes.
    chosen = chosen.withColumn("branch_name", F.decode("branch", "UTF-8")).drop("branch")
    none = ranked.where(F.col("rn") == 1).where(F.col("branch_rank").isNull()).drop("branch")
    return chosen, none


def _origins(spark: SparkSession, cfg: RunConfig) -> tuple[DataFrame, list[DataFrame], int]:
    """Latest full visit of each matching origin: (origin, visit_date, snapshot_id), rejects, origins seen."""
    pattern = cfg.extract.origin_pattern
    urls = _shared(
        read_graph_table(spark, cfg.graph, "origin")
        .select(F.col("url").alias("origin"))
        .where(F.col("origin").rlike(pattern))
        .distinct()
    )
    ovs = read_graph_table(spark, cfg.graph, "origin_visit_status").where(
        (F.col("status") == "full") & F.col("origin").rlike(pattern) & F.col("snapshot").isNotNull()
    )
    w = Window.partitionBy("origin").orderBy(F.col("visit").desc(), F.col("date").desc())
    latest = _shared(
        ovs.withColumn("rn", F.row_number().over(w))
        .where("rn = 1")
        .select("origin", F.col("date").alias("visit_date"), F.col("snapshot").alias("snapshot_id"))
    )
    no_visit = urls.join(latest, "origin", "left_anti")
    return latest, [_rejected(no_visit, NO_FULL_VISIT)], urls.count()


def _snapshot_roots(
    spark: SparkSession, cfg: RunConfig, visits: DataFrame, gh: DataFrame
) -> tuple[DataFrame, list[DataFrame]]:
    """(origin, visit_date, snapshot_id) -> one (…, branch_name, revision_id) per origin, + rejects."""
    branches = (
        read_graph_table(spark, cfg.graph, "snapshot_branch")
        .where(F.col("target_type") == "revision")
        .select("snapshot_id", F.col("name").alias("branch"), F.col("target").alias("revision_id"))
    )
    visits = visits.withColumn("repo_name", _repo_name(F.col("origin")))
    candidates = visits.join(branches, "snapshot_id", "left").join(
        gh.select("repo_name", "default_branch"), "repo_name", "left"
    )
    chosen, none = _pick_branch(candidates, cfg.extract)
    return chosen.drop("default_branch"), [_rejected(none, NO_DEFAULT_BRANCH)]


def _swhid_roots(
    spark: SparkSession, cfg: RunConfig, gh: DataFrame
) -> tuple[DataFrame, list[DataFrame], int, DataFrame]:
    """SWHIDs as roots: snapshots pick their default branch, releases resolve to revisions."""
    roots = read_roots(cfg.swhids or "")
    schema = "swhid string, kind string, object_id string, origin string"
    df = spark.createDataFrame([(r.swhid, r.kind, r.object_id, r.origin) for r in roots], schema)
    df = df.withColumn("origin", F.coalesce("origin", "swhid"))
    snp = df.where(F.col("kind") == "snapshot").select(
        "origin", F.lit(None).cast("timestamp").alias("visit_date"), F.col("object_id").alias("snapshot_id")
    )
    from_snp, rejects = _snapshot_roots(spark, cfg, snp, gh)
    rel = (
        read_graph_table(spark, cfg.graph, "release")
        .where(F.col("target_type") == "revision")
        .select(F.col("id").alias("object_id"), F.col("target").alias("revision_id"))
    )
    releases = _shared(df.where(F.col("kind") == "release").join(rel, "object_id", "left"))
    rejects.append(_rejected(releases.where(F.col("revision_id").isNull()), UNRESOLVED_SWHID))
    revs = df.where(F.col("kind") == "revision").withColumn("revision_id", F.col("object_id"))
    direct = releases.where(F.col("revision_id").isNotNull()).unionByName(revs)
    heads = from_snp.unionByName(
        direct.select(
            "origin",
            F.lit(None).cast("timestamp").alias("visit_date"),
            F.lit(None).cast("string").alias("snapshot_id"),
            _repo_name(F.col("origin")).alias("repo_name"),
            F.lit(None).cast("string").alias("branch_name"),
            "revision_id",
        ),
        allowMissingColumns=False,
    )
    dirs = df.where(F.col("kind") == "directory").select(
        "origin", _repo_name(F.col("origin")).alias("repo_name"), F.col("object_id").alias("directory_id")
    )
    known = read_graph_table(spark, cfg.graph, "directory").select(
        F.col("id").alias("directory_id"), F.lit(True).alias("known")
    )
    looked_up = _shared(dirs.join(known, "directory_id", "left"))  # ids are unique in ``directory``
    rejects.append(_rejected(looked_up.where(F.col("known").isNull()), UNRESOLVED_SWHID))
    return heads, rejects, len(roots), looked_up.where(F.col("known")).select(*dirs.columns)


def select_repositories(spark: SparkSession, cfg: RunConfig) -> tuple[DataFrame, list[DataFrame], int]:
    """One row per selected repository (``schema.REPO_FIELDS``), the rejected rows, and the roots considered."""
    gh = _github(spark, cfg)
    revisions = (
        read_graph_table(spark, cfg.graph, "revision")
        .where(F.col("type") == "git")
        .select(
            F.col("id").alias("revision_id"),
            F.col("date").alias("revision_date"),
            "committer_date",
            F.col("directory").alias("directory_id"),
        )
    )
    if cfg.swhids:
        heads, rejects, n_roots, dir_roots = _swhid_roots(spark, cfg, gh)
    else:
        visits, rejects, n_roots = _origins(spark, cfg)
        heads, more = _snapshot_roots(spark, cfg, visits, gh)
        rejects += more
        dir_roots = None
    with_rev = _shared(heads.join(revisions, "revision_id", "left"))
    rejects.append(_rejected(with_rev.where(F.col("directory_id").isNull()), MISSING_REVISION))
    with_rev = with_rev.where(F.col("directory_id").isNotNull())
    w = Window.partitionBy("revision_id").orderBy(
        F.col("revision_date").desc_nulls_last(), F.col("branch_name").desc_nulls_last(), "origin"
    )
    ranked = with_rev.withColumn("rn", F.row_number().over(w))
    rejects.append(_rejected(ranked.where("rn > 1"), DUPLICATE_REVISION))
    repos = ranked.where("rn = 1").drop("rn")
    if dir_roots is not None:
        repos = repos.unionByName(dir_roots, allowMissingColumns=True)
    repos = (
        repos.join(gh.drop("default_branch"), "repo_name", "left")
        .fillna(0, ["star_events_count", "fork_events_count"])
        .withColumnRenamed("origin", "repo_url")
    )
    w = Window.partitionBy("directory_id").orderBy(
        *sort_order(ROOT_ORDER, frozenset(ROOT_NULLS_FIRST) if cfg.extract.root_nulls_first else frozenset())
    )
    ranked = _shared(repos.withColumn("rn", F.row_number().over(w)))
    rejects.append(_rejected(ranked.where("rn > 1").withColumnRenamed("repo_url", "origin"), DUPLICATE_DIRECTORY))
    return ranked.where("rn = 1").drop("rn"), rejects, n_roots


def _entries(spark: SparkSession, cfg: RunConfig) -> DataFrame:
    """``directory_entry`` as (node, name, type, target, perms, dup), hash-partitioned on ``node`` and kept on disk:
    every level's join then shuffles only the (small) frontier. ``dup``: not the first entry of its directory with
    its name (by type, then target); the window reuses the partitioning, so it costs a sort, not a shuffle."""
    same_name = Window.partitionBy("node", "name").orderBy("type", "target", "perms")
    return (
        read_graph_table(spark, cfg.graph, "directory_entry")
        .select(F.col("directory_id").alias("node"), "name", "type", "target", "perms")
        .repartition(cfg.spark.shuffle_partitions, "node")
        .withColumn("dup", F.row_number().over(same_name) > 1)
        .persist(StorageLevel.DISK_ONLY)
    )


#: A frontier of more rows than this has the rows of each directory merged before it is expanded (see
#: ``list_files``); a smaller one is expanded as it is: merging costs a shuffle and a checkpoint per level, which
#: the thin levels of deep trees would pay for nothing (measured: docs/scaling.md, "Merge threshold").
MERGE_MIN_ROWS = 1000


def _by_node(frontier: DataFrame) -> DataFrame:
    """``frontier`` (reach, node, rel, mult) with its node's ``rows`` and ``paths`` (rows and (root, path) pairs)
    and whether the row is the node's ``first`` (by reach, rel)."""
    node = Window.partitionBy("node")
    return (
        frontier.withColumn("rows", F.count(F.lit(1)).over(node))
        .withColumn("paths", F.sum("mult").over(node))
        .withColumn("first", F.row_number().over(node.orderBy("reach", "rel")) == 1)
    )


def _resolve(base: DataFrame, mounts: list[DataFrame]) -> DataFrame:
    """(reach, directory_id, prefix): every (root, path) pair each reach id stands for. Roots stand for themselves
    (``base``); a subtree merged at some depth stands for the pairs of the rows merged into it (``mounts``: reach,
    src, rel), found hop by hop from the roots (each pair once: merges only point at shallower reaches)."""
    if not mounts:
        return base
    edges = reduce(DataFrame.unionByName, mounts).localCheckpoint()
    layer, layers = base, [base]
    while True:
        layer = (
            edges.join(layer.withColumnRenamed("reach", "src"), "src")
            .select("reach", "directory_id", F.concat("prefix", "rel").alias("prefix"))
            .localCheckpoint()
        )
        if layer.isEmpty():
            return reduce(DataFrame.unionByName, layers)
        layers.append(layer)


def _guard(hot: DataFrame, reach: DataFrame, limit: int, anchor: Column) -> tuple[DataFrame, DataFrame, DataFrame]:
    """The skew guard for the directories ``hot`` reached by more than ``limit`` (root, path) pairs at one depth:
    their pairs spelled out, the first ``limit`` by (root, path) kept as one merged row each (frontier, mounts),
    the others rejected (directory_id, path, target)."""
    pairs = hot.join(reach, "reach").select("node", "directory_id", F.concat("prefix", "rel").alias("path"))
    w = Window.partitionBy("node").orderBy("directory_id", "path")
    ranked = pairs.withColumn("rn", F.row_number().over(w)).localCheckpoint()
    kept = ranked.where(F.col("rn") <= limit)
    mounts = kept.select(anchor.alias("reach"), F.col("directory_id").alias("src"), F.col("path").alias("rel"))
    frontier = kept.groupBy("node").agg(F.count(F.lit(1)).alias("mult"))
    frontier = frontier.select(anchor.alias("reach"), "node", _bytes("").alias("rel"), "mult")
    over = ranked.where(F.col("rn") > limit).select("directory_id", "path", F.col("node").alias("target"))
    return frontier, mounts, over


def list_files(
    spark: SparkSession, cfg: RunConfig, roots: DataFrame
) -> tuple[DataFrame, DataFrame, list[DataFrame], dict[str, list[int]]]:
    """Traverse the trees under ``roots(directory_id)`` level by level, each subtree once per depth it is reached at.

    A frontier row (reach, node, rel, mult) stands for ``mult`` (root, path) pairs: those of its ``reach`` id with
    ``rel`` appended. A root's reach is itself. When several rows reach one directory at one depth (a subtree that
    forks share, a vendored library), they are merged into one row whose reach is a new id (node@depth) standing for
    all their pairs, so the subtree below is expanded once, not once per fork. Returns:

    * the listing (reach, rel, type, target, reason): every entry but the directories descended into, and the
      directories ``too_deep`` to descend into; ``reason`` set on the rejected (``duplicate_name``, ``symlink``,
      ``submodule``); paths are bytes;
    * the reach table (reach, directory_id, prefix) that turns it into (directory_id, prefix || rel) rows, once, at
      the end;
    * the ``skew_guard`` rejects (directory_id, path, target) and the rows and (root, path) pairs of each level.

    A level is one join of the frontier with ``directory_entry``, checkpointed once; the listing is one union of
    the levels' checkpoints, so the plans after the loop stay small however deep the trees."""
    entries = _entries(spark, cfg)
    link = F.col("perms") == LINK_PERMS
    reason = (
        F.when(F.col("dup"), DUPLICATE_NAME)
        .when(F.col("type") == "rev", SUBMODULE)
        .when((F.col("type") == "file") & link, SYMLINK)
    )
    subdir = (F.col("type") == "dir") & F.col("reason").isNull()
    base = roots.select(F.col("directory_id").alias("reach"), "directory_id", _bytes("").alias("prefix"))
    frontier = base.select(
        "reach", F.col("reach").alias("node"), F.col("prefix").alias("rel"), F.lit(1).cast("long").alias("mult")
    )
    limit = cfg.extract.max_paths_per_directory
    levels: dict[str, list[int]] = {"rows": [], "paths": []}
    listed, mounts, guarded = [], [], []
    sc = spark.sparkContext
    for depth in range(1, cfg.extract.max_depth + 1):
        sc.setJobDescription(f"extract level {depth}")
        seen = Observation()
        step = (
            frontier.join(entries, "node")
            .select(
                "reach",
                # never null, as the text paths were (a null name, which the export never has, joins as "")
                F.concat("rel", _bytes("/"), F.coalesce("name", _bytes(""))).alias("rel"),
                "type",
                "target",
                reason.alias("reason"),
                "mult",
            )
            .observe(
                seen,
                F.count(F.lit(1)).alias("rows"),
                F.sum("mult").alias("paths"),
                F.count(F.when(subdir, 1)).alias("dirs"),
                F.sum(F.when(subdir, F.col("mult"))).alias("dir_paths"),
            )
            .localCheckpoint()
        )
        got = seen.get
        levels["rows"].append(got["rows"])
        levels["paths"].append(got["paths"] or 0)
        listed.append(step.where(~subdir).drop("mult"))
        frontier = step.where(subdir).select("reach", F.col("target").alias("node"), "rel", "mult")
        if got["dirs"] == 0:
            break
        if got["dirs"] > MERGE_MIN_ROWS or (got["dir_paths"] or 0) > limit:
            sc.setJobDescription(f"extract level {depth} merge")
            rows = _by_node(frontier).localCheckpoint()
            anchor = F.concat("node", F.lit(f"@{depth}"))
            hot = F.col("paths") > limit
            merged = (F.col("rows") > 1) & ~hot
            mounts.append(rows.where(merged).select(anchor.alias("reach"), F.col("reach").alias("src"), "rel"))
            frontier = rows.where(~hot & (~merged | F.col("first"))).select(
                F.when(merged, anchor).otherwise(F.col("reach")).alias("reach"),
                "node",
                F.when(merged, _bytes("")).otherwise(F.col("rel")).alias("rel"),
                F.when(merged, F.col("paths")).otherwise(F.col("mult")).alias("mult"),
            )
            if (got["dir_paths"] or 0) > limit and not rows.where(hot).isEmpty():
                kept, more, over = _guard(rows.where(hot), _resolve(base, mounts), limit, anchor)
                frontier = frontier.unionByName(kept).localCheckpoint()
                mounts.append(more.localCheckpoint())
                guarded.append(over)
    else:
        listed.append(
            frontier.select(
                "reach",
                "rel",
                F.lit("dir").alias("type"),
                F.col("node").alias("target"),
                F.lit(TOO_DEEP).alias("reason"),
            )
        )
    sc.setJobDescription(None)
    entries.unpersist()  # every level above is checkpointed
    # One task per partition of every level is many small tasks at the deep, thin levels: read them in P tasks.
    listing = reduce(DataFrame.unionByName, listed).coalesce(cfg.spark.shuffle_partitions)
    return listing, _resolve(base, mounts), guarded, levels


def transform(spark: SparkSession, cfg: RunConfig) -> tuple[DataFrame, DataFrame, dict[str, int]]:
    """(file index, rejected rows, counts of roots and repositories) from the graph export ``cfg.graph``.

    Contents are joined to the listing before its paths are spelled out per (root, path), so a file of a subtree
    many forks share is looked up once."""
    if not cfg.graph:
        raise GraphError("no graph given: set `graph` in the config (or --graph) to an SWH graph export folder")
    repos, rejects, n_roots = select_repositories(spark, cfg)
    repos = repos.localCheckpoint()
    listing, reach, guarded, levels = list_files(spark, cfg, repos.select("directory_id"))
    content = (
        read_graph_table(spark, cfg.graph, "content")
        .select(
            F.col("sha1_git").alias("target"),
            F.col("sha1").alias("blob_id"),
            F.col("sha1_git").alias("content_id"),
            "length",
        )
        .dropDuplicates(["target"])
    )
    skipped = (
        read_graph_table(spark, cfg.graph, "skipped_content")
        .select(F.col("sha1_git").alias("target"), F.lit(True).alias("skipped"))
        .dropDuplicates(["target"])
    )
    file = (F.col("type") == "file") & F.col("reason").isNull()
    looked_up = listing.join(content, "target", "left").join(skipped, "target", "left")
    looked_up = looked_up.withColumn(
        "reason",
        F.when(file & F.col("blob_id").isNull() & F.col("skipped").isNotNull(), SKIPPED_CONTENT)
        .when(file & F.col("blob_id").isNull(), MISSING_CONTENT)
        .otherwise(F.col("reason")),
    )
    rows = looked_up.join(reach, "reach").withColumn("path", F.concat("prefix", "rel"))
    # A path that is not UTF-8 rejects its file, whatever its content (the name is checked first).
    undecodable = (F.col("type") == "file") & (
        F.col("reason").isNull() | F.col("reason").isin(SKIPPED_CONTENT, MISSING_CONTENT)
    )
    rows = rows.withColumn(
        "reason",
        F.when(undecodable & ~F.is_valid_utf8(F.col("path").cast("string")), UNDECODABLE_NAME).otherwise(
            F.col("reason")
        ),
    )
    # Coalesced: set on every row here, and non-null in the schema as the other rejects' literal reasons are.
    rejects.append(_rejected(rows.where(F.col("reason").isNotNull()), F.coalesce("reason", F.lit(""))))
    rejects.extend(_rejected(g, SKEW_GUARD) for g in guarded)
    kept = rows.where(F.col("reason").isNull()).withColumn("path", F.col("path").cast("string"))
    index = conform(kept.join(repos, "directory_id"), FILE_INDEX)
    extra = {"roots": n_roots, "repositories": repos.count(), "levels": levels["rows"], "level_paths": levels["paths"]}
    return index, reduce(DataFrame.unionByName, rejects), extra


def run(ctx: StageContext) -> StageResult:
    index, rejected, extra = transform(ctx.spark, ctx.cfg)
    return StageResult(
        data=Output(index, FILE_KEY),
        rejected=Output(
            rejected, ("reason", "origin", "directory_id", "path", "revision_id", "snapshot_id", "target")
        ),
        extra=extra,
        extra_stats=lambda df: {
            "bytes": df.agg(F.sum("length")).first()[0] or 0,
            "repositories_with_files": df.select("directory_id").distinct().count(),
        },
    )


STAGE = Stage("extract", run, config_keys=("graph", "github_metadata", "swhids", "extract"))
