"""Experiment: prune ``directory_entry`` to the directories the selected roots reach before extract's level loop.

``pruning()`` wraps ``pipelines.stages.extract.list_files`` so that the entries it joins at every level are only
those of directories reachable from its roots: found first level by level on directory ids (the ``dir`` entries,
each directory once per depth), then ``directory_entry`` semi-joined to them and kept on disk. Whether this pays is
measured by ``python -m bench.extract.run --prune`` against the same run without it (docs/scaling.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import pipelines.stages.extract as extract_stage
from stackv2.config import RunConfig


def reachable(entries: DataFrame, roots: DataFrame, max_depth: int) -> DataFrame:
    """(node): the directories at most ``max_depth - 1`` levels below ``roots(directory_id)``, themselves included
    (the ones whose entries the traversal reads)."""
    edges = entries.where((F.col("type") == "dir") & ~F.col("dup")).select("node", F.col("target").alias("child"))
    level = roots.select(F.col("directory_id").alias("node")).distinct().localCheckpoint()
    levels = [level]
    for depth in range(1, max_depth):
        entries.sparkSession.sparkContext.setJobDescription(f"extract prune {depth}")
        level = level.join(edges, "node").select(F.col("child").alias("node")).distinct().localCheckpoint()
        if level.isEmpty():
            break
        levels.append(level)
    return reduce(DataFrame.unionByName, levels).distinct()


@contextmanager
def pruning() -> Iterator[None]:
    """While active, ``list_files`` joins each level with the entries of reachable directories only."""
    list_files, entries_of = extract_stage.list_files, extract_stage._entries

    def pruned_list_files(spark: SparkSession, cfg: RunConfig, roots: DataFrame):
        def pruned_entries(spark: SparkSession, cfg: RunConfig) -> DataFrame:
            full = entries_of(spark, cfg)
            nodes = reachable(full, roots, cfg.extract.max_depth)
            spark.sparkContext.setJobDescription("extract prune entries")
            pruned = full.join(nodes, "node", "left_semi").persist(StorageLevel.DISK_ONLY)
            pruned.count()
            full.unpersist()
            return pruned

        extract_stage._entries = pruned_entries
        try:
            return list_files(spark, cfg, roots)
        finally:
            extract_stage._entries = entries_of

    extract_stage.list_files = pruned_list_files
    try:
        yield
    finally:
        extract_stage.list_files = list_files
