"""Stage ``near_dedup``: MinHash-LSH near-dedup within each language of ``the-stack-v2``, giving
``the-stack-v2-dedup`` (docs/spec.md §6.2). It runs before any training heuristic, as BigCode's did, so a file the
filters later drop still links and can win its cluster.

1. Signatures and band keys are computed in the partitions (``udfs.dedup.lsh_sketches``); files sharing a
   (language, band, key) bucket are linked to the bucket's smallest ``blob_id`` (a star, not a clique);
   ``pipelines.components`` joins the links into clusters, labelled by their smallest ``blob_id``. With
   ``near_dedup.verify`` each such component is split into the clusters of its exactly verified pairs.
2. Each cluster is ordered by ``rank.NEAR_ORDER``: rank 0 stays (``is_representative``), the rest are rejected
   ``near_duplicate`` with all their columns. The ``clusters`` table keeps every member with its rank, so
   opt-out can promote the next member when a representative is removed.

Every step is a function of the rows' values only (no generated ids, no arrival order), so the kept set and the
written bytes do not depend on the number of partitions or executors.
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F

from pipelines._job import Output, Stage, StageContext, StageResult
from pipelines.components import connected_components
from pipelines.frames import attached_for_two_outputs, sort_order
from stackv2 import schema
from stackv2.dedup import NEAR_DUPLICATE
from stackv2.dedup.config import DedupConfig
from stackv2.dedup.rank import LICENSE_ORDER, LICENSE_RANK, NEAR_ORDER
from stackv2.schema import FILE_KEY
from udfs.arrow import to_spark_schema
from udfs.dedup import lsh_sketches, verify_component

CLUSTERS = "clusters"
CLUSTER_KEY = ("cluster_id", "rank")


def sketches(files: DataFrame, cfg: DedupConfig) -> DataFrame:
    """``schema.DEDUP_SKETCHES`` of the files; kept (memory, then disk) when verification reads them again."""
    sketched = files.select("blob_id", "language", "content").mapInArrow(
        lsh_sketches(cfg), to_spark_schema(schema.DEDUP_SKETCHES)
    )
    return sketched.persist(StorageLevel.MEMORY_AND_DISK) if cfg.verify else sketched


def candidate_edges(sketched: DataFrame) -> DataFrame:
    """(src, dst) links from each file to the smallest ``blob_id`` of every LSH bucket it shares."""
    bands = sketched.select("blob_id", "language", F.posexplode("keys").alias("band", "key"))
    bucket = Window.partitionBy("language", "band", "key")
    return (
        bands.withColumn("dst", F.min("blob_id").over(bucket))
        .where(F.col("blob_id") != F.col("dst"))
        .select(F.col("blob_id").alias("src"), "dst")
        .distinct()
    )


#: Upper bound of a (node, component) row of ``blob_id`` strings in a broadcast hash table.
_NODE_ROW_BYTES = 128


def _broadcast_limit(spark: SparkSession) -> int:
    """``spark.sql.autoBroadcastJoinThreshold`` in bytes (-1: never broadcast), as Spark parses it."""
    return spark._jsparkSession.sessionState().conf().autoBroadcastJoinThreshold()


def verified_components(
    components: DataFrame, sketched: DataFrame, cfg: DedupConfig, nodes: int
) -> tuple[DataFrame, DataFrame]:
    """(node, component) of the clusters of verified pairs (``stackv2.dedup.verify``), one ``applyInArrow`` group
    per LSH component; and the components too large to verify (``cfg.verify_max_members``), which stay as LSH
    made them (both frames as (node, component)). ``nodes``: the rows of ``components``."""
    sized = components.withColumn("_size", F.count("*").over(Window.partitionBy("component")))
    small = sized.where(F.col("_size") <= cfg.verify_max_members).drop("_size")
    large = sized.where(F.col("_size") > cfg.verify_max_members).drop("_size")
    # Before CC has run the planner cannot size the components, so it plans a sort-merge join that moves the
    # sketches twice (by node, then by component); a node map counted small enough is broadcast instead.
    if nodes * _NODE_ROW_BYTES <= _broadcast_limit(components.sparkSession):  # never with a limit of -1
        small = F.broadcast(small)
    members = small.join(sketched.select(F.col("blob_id").alias("node"), "keys", "shingles"), "node")
    verified = members.groupBy("component").applyInArrow(verify_component(cfg), to_spark_schema(schema.DEDUP_VERIFIED))
    return verified, large


def rank_clusters(files: DataFrame, components: DataFrame) -> DataFrame:
    """``schema.DEDUP_CLUSTERS`` rows: every clustered file with its rank inside its cluster."""
    position = F.array_position(F.array(*[F.lit(x) for x in LICENSE_ORDER]), F.col("license_type"))
    members = files.drop("content").join(components.toDF("blob_id", "cluster_id"), "blob_id")
    order = Window.partitionBy("cluster_id").orderBy(*sort_order(NEAR_ORDER))
    ranked = (
        members.withColumn(LICENSE_RANK, F.when(position > 0, position))
        .withColumn("rank", (F.row_number().over(order) - 1).cast("int"))
        .withColumn("is_representative", F.col("rank") == 0)
    )
    return ranked.select(*schema.DEDUP_CLUSTERS.names)


def transform(
    files: DataFrame, cfg: DedupConfig, partitions: int, partitioned: bool = False
) -> tuple[DataFrame, DataFrame, DataFrame, dict]:
    """(kept files + ``DEDUP_FIELDS``, rejected near-duplicates with ``reason``, clusters table, stats); the first two
    in ``partitions`` partitions of the file key, as the stage writes them (a file with a null in its key is kept,
    unclustered). ``partitioned``: Spark knows ``files`` are already so partitioned (``attach_partitioned``)."""
    sketched = sketches(files, cfg)
    components = connected_components(candidate_edges(sketched), "src", "dst", cfg.max_cc_iterations)
    extra = {}
    if cfg.verify:
        nodes = components.count()  # checkpointed: cheap
        components, large = verified_components(components, sketched, cfg, nodes)
        # Counted while the clusters are built (no job of its own): one row per component is its root.
        unverified = Observation("unverified large components")
        large = large.observe(unverified, F.count(F.when(F.col("node") == F.col("component"), 1)).alias("n"))
        components = components.unionByName(large)
    clusters = rank_clusters(files, components).localCheckpoint()
    if cfg.verify:
        # Without any node AQE drops the observed branch before it runs: its metric would never arrive.
        extra["unverified_large_components"] = (unverified.get.get("n") or 0) if nodes else 0
    # Each clustered file's place, found by blob over the key columns alone, then joined to the rows by file key as
    # the outputs are written: the contents do not move (read as their partitions, read once per output) or move
    # once for both outputs (kept on local disk; ``frames.attached_for_two_outputs``).
    places = files.select(*FILE_KEY, "blob_id").join(
        clusters.select("blob_id", "cluster_id", "rank", "is_representative"), "blob_id"
    )
    tagged = attached_for_two_outputs(files, places.drop("blob_id"), FILE_KEY, partitions, partitioned)
    columns = [*files.columns, *(f.name for f in schema.DEDUP_FIELDS)]
    kept = tagged.where(F.col("rank").isNull() | (F.col("rank") == 0)).select(*columns)
    dups = tagged.where(F.col("rank") > 0).select(*files.columns).withColumn("reason", F.lit(NEAR_DUPLICATE))
    return kept, dups, clusters, extra


def run(ctx: StageContext) -> StageResult:
    files, partitioned = ctx.partitioned_input(FILE_KEY)
    kept, rejected, clusters, extra = transform(
        files, ctx.cfg.near_dedup, ctx.cfg.spark.shuffle_partitions, partitioned
    )
    return StageResult(
        data=Output(kept, FILE_KEY),
        rejected=Output(rejected, FILE_KEY),
        tables={CLUSTERS: Output(clusters, CLUSTER_KEY)},
        rows_in=files.count(),
        extra=extra,
        extra_stats=lambda df: {
            "languages": {
                r["language"] or "(none)": {"files": r["files"], "clusters": r["clusters"]}
                for r in df.groupBy("language")
                .agg(F.count("*").alias("files"), F.count(F.when(F.col("is_representative"), 1)).alias("clusters"))
                .collect()
            }
        },
    )


STAGE = Stage("near_dedup", run, config_keys=("near_dedup",))
