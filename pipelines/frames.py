"""Spark helpers more than one stage uses."""

from __future__ import annotations

from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def attach(left: DataFrame, right: DataFrame, keys: tuple[str, ...]) -> DataFrame:
    """``left`` with ``right``'s other columns, matched on ``keys`` with null == null."""
    right = right.select(*[F.col(c).alias(f"_r_{c}") if c in keys else F.col(c) for c in right.columns])
    cond = reduce(lambda a, b: a & b, [left[k].eqNullSafe(right[f"_r_{k}"]) for k in keys])
    return left.join(right, cond).drop(*[f"_r_{k}" for k in keys])


def attach_partitioned(
    left: DataFrame, right: DataFrame, keys: tuple[str, ...], partitions: int, left_partitioned: bool = False
) -> DataFrame:
    """``left`` with ``right``'s other columns where ``keys`` are equal and not null (null elsewhere), both sides
    hash-partitioned on ``keys`` into ``partitions`` first: the partitioning and order ``write_committed`` gives an
    output keyed on ``keys``, so Spark writes the result without shuffling it again (``attach`` and the write move
    ``left`` twice). Partitioned with a number, so adaptive execution cannot merge the partitions (the number must be
    the session's ``spark.sql.shuffle.partitions``, as ``spark_conf`` sets it: Spark replans such a join into that
    many partitions). With ``left_partitioned``, Spark already knows ``left`` is so partitioned
    (``StageContext.partitioned_input``), and only ``right`` moves.
    Unlike ``attach``, a key with a null matches nothing: its row keeps null for ``right``'s columns. Columns:
    ``left``'s, then ``right``'s others."""
    if not left_partitioned:
        left = left.repartition(partitions, *keys)
    joined = left.join(right.repartition(partitions, *keys), list(keys), "left")
    return joined.select(*left.columns, *(c for c in right.columns if c not in keys))


def computed_once(frame: DataFrame, partitioned: bool = False) -> DataFrame:
    """``frame`` computed now and kept on the executors' local disk, for a stage whose two outputs both read it.
    Disk, not the heap: rows with their contents held in memory filled the JVM's old generation and cost full
    collections (docs/scaling.md, "CPU per GB"). Checkpointed, unless ``partitioned``: a frame partitioned as its
    outputs are written (``attach_partitioned``) is persisted instead, because a checkpoint forgets the partitioning
    and the writes would shuffle it again (the persisted plan states it once computed). Persisted frames are dropped
    after their stage (``pipelines._session.release_unreferenced``)."""
    if not partitioned:
        return frame.localCheckpoint(storageLevel=StorageLevel.DISK_ONLY)
    kept = frame.persist(StorageLevel.DISK_ONLY)
    kept.count()
    return kept


def attached_for_two_outputs(
    left: DataFrame, right: DataFrame, keys: tuple[str, ...], partitions: int, left_partitioned: bool = False
) -> DataFrame:
    """``attach_partitioned(left, right, ...)`` for a stage whose two outputs both read it. With ``left_partitioned``
    (``left`` known partitioned and sorted on ``keys``), each output's write joins ``left`` again, in place, to
    ``right`` computed once: the contents are read twice, which costs less than writing them to local disk and
    reading them back twice (exact_dedup at 200k files: 75.4 -> 58.3 CPU s; docs/scaling.md, "Contents read twice,
    not kept"). Otherwise the join moves ``left``, so it is computed once and kept (``computed_once``)."""
    if left_partitioned:
        kept = right.localCheckpoint(storageLevel=StorageLevel.DISK_ONLY)
        return attach_partitioned(left, kept, keys, partitions, left_partitioned=True)
    return computed_once(attach_partitioned(left, right, keys, partitions), partitioned=True)


def sort_order(spec: tuple[tuple[str, bool], ...], nulls_first: frozenset[str] = frozenset()) -> list[Column]:
    """Sort columns of a ranking written as data (``stackv2.dedup.rank``): ``(column, descending)`` pairs, nulls
    last except for the columns in ``nulls_first``."""

    def one(column: str, desc: bool) -> Column:
        c = F.col(column)
        if column in nulls_first:
            return c.desc_nulls_first() if desc else c.asc_nulls_first()
        return c.desc_nulls_last() if desc else c.asc_nulls_last()

    return [one(c, d) for c, d in spec]
