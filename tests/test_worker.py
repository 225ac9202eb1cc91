"""The Python worker and daemon entry points: Spark's own archives are not re-read at every task (any other archive
is), long-lived objects are frozen out of the per-task garbage collection, and pyspark/py4j come from the installed
packages when those are the versions Spark zipped."""

from __future__ import annotations

import zipfile
import zipimport

import pytest

import pyspark_stackv2_daemon as daemon
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

        import pyspark

        patched = zipimport.zipimporter.invalidate_caches.__module__ == "pyspark_stackv2_worker"
        zipped = ".zip" in pyspark.__file__
        return [(patched, "pyspark_stackv2_worker" in sys.modules, gc.get_freeze_count() > 0, zipped)]

    # the long-lived objects of a worker (pyspark's own modules at least) are out of the collector's sight, and
    # pyspark is the installed package (the same version as Spark's zip here)
    got = spark.sparkContext.parallelize([0, 1], 2).mapPartitions(probe).collect()
    assert got == [(True, True, True, False)] * 2


def _package(root, name: str, version: str, zipped: bool) -> str:
    root.mkdir(parents=True)
    if zipped:
        archive = root / f"{name}.zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr(f"{name}/__init__.py", "")
            z.writestr(f"{name}/version.py", f"__version__: str = '{version}'\n")
        return str(archive)
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    (root / name / "version.py").write_text(f"__version__ = '{version}'\n")
    return str(root)


def test_the_daemon_prefers_the_installed_pyspark_of_the_same_version(tmp_path):
    installed = _package(tmp_path / "site", "pyspark", "4.0.5", zipped=False)
    same = _package(tmp_path / "a", "pyspark", "4.0.5", zipped=True)
    assert daemon.prefer_installed_packages([same, "/x/spark-core_2.13-4.0.5.jar", installed]) == [
        "/x/spark-core_2.13-4.0.5.jar",
        installed,
        same,
    ]
    other = _package(tmp_path / "b", "pyspark", "3.5.1", zipped=True)
    assert daemon.prefer_installed_packages([other, installed]) == [other, installed]
    # no installed copy at all: the zip stays where it is
    assert daemon.prefer_installed_packages([same, str(tmp_path / "empty")]) == [same, str(tmp_path / "empty")]
