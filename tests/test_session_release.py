"""Between stages the runner has Spark delete what a finished stage kept on local disk (``pipelines._session``)."""

from __future__ import annotations

import time

from pyspark import StorageLevel

from pipelines._session import release_unreferenced


def _kept(spark) -> set[int]:
    """Ids of the RDDs with blocks kept by the block manager (memory or disk)."""
    return {info.id() for info in spark.sparkContext._jsc.sc().getRDDStorageInfo()}


def test_a_checkpoint_no_frame_references_is_deleted(spark):
    before = _kept(spark)
    kept = spark.range(1000).repartition(2).localCheckpoint(storageLevel=StorageLevel.DISK_ONLY)
    assert kept.count() == 1000
    assert _kept(spark) - before, "the checkpoint is on disk"
    del kept
    release_unreferenced(spark)
    deadline = time.monotonic() + 30  # Spark's cleaner deletes in a thread of its own
    while _kept(spark) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _kept(spark) - before


def test_a_persisted_frame_is_dropped_after_its_stage(spark):
    """``computed_once(partitioned=True)`` persists: Spark's cache keeps that until told, whoever references it."""
    before = _kept(spark)
    kept = spark.range(1000).repartition(2).persist(StorageLevel.DISK_ONLY)
    assert kept.count() == 1000
    assert _kept(spark) - before, "the frame is on disk"
    release_unreferenced(spark)
    deadline = time.monotonic() + 30
    while _kept(spark) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _kept(spark) - before
