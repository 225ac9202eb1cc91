"""The Python worker entry point: Spark's own archives are not re-read at every task (any other archive is), and
long-lived objects are frozen out of the per-task garbage collection."""

from __future__ import annotations

import zipfile
import zipimport

import pytest

import pyspark_stackv2_worker as worker

pytestmark = pytest.mark.spark


def test_spark_archives_are_recognised():
    assert worker._is_spark_archive("/opt/spark/python/lib/pyspark.zip")
    assert worker._is_spark_archive("/x/python/lib/py4j-0.10.9.9-src.zip")
    assert worker._is_spark_archive("/x/jars/spark-core_2.13-4.0.5.jar")
    assert not worker._is_spark_archive("/job/deps.zip")
    assert not worker._is_spark_archive("/x/jars/spark-sql_2.13-4.0.5.jar")


def test_other_archives_still_see_new_files(tmp_path):
    archive = tmp_path / "deps.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.py", "")
    importer = zipimport.zipimporter(str(archive))
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("b.py", "")
    importer.invalidate_caches()
    assert importer.find_spec("b") is not None


def test_workers_run_the_patched_entry_point(spark):
    def probe(_):
        import gc
        import sys
        import zipimport

        patched = zipimport.zipimporter.invalidate_caches.__module__ == "pyspark_stackv2_worker"
        return [(patched, "pyspark_stackv2_worker" in sys.modules, gc.get_freeze_count() > 0)]

    # the long-lived objects of a worker (pyspark's own modules at least) are out of the collector's sight
    assert spark.sparkContext.parallelize([0, 1], 2).mapPartitions(probe).collect() == [(True, True, True)] * 2
