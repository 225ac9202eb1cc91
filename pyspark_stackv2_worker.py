"""Entry point of Spark's Python workers (``spark.python.worker.module``, set in ``pipelines/_session.py``):
``pyspark.worker`` unchanged, except that a reused worker no longer re-reads Spark's own zip archives at every task.
A top-level module named ``pyspark…`` because pyspark's daemon ignores worker modules named otherwise.

``pyspark.worker`` calls ``importlib.invalidate_caches()`` when each task starts (so that files added with
``addPyFile`` become importable). On Python 3.10+ that makes every ``zipimporter`` re-read its archive's whole
directory, and Spark puts ``pyspark.zip``, py4j's zip and the ``spark-core`` jar on every worker's path, each seen
through one importer per imported sub-package: 0.05 s per task on this project's machines (40 empty tasks:
4.7 s -> 2.6 s), more than the work of many tasks (docs/benchmarks.md, "annotate"). Those
archives ship with Spark and never change while a worker runs; every other archive is still re-read as before.
"""

from __future__ import annotations

import os
import runpy
import zipimport

from pyspark.worker import main

__all__ = ["main"]

_rescan = zipimport.zipimporter.invalidate_caches


def _is_spark_archive(archive: str) -> bool:
    """``pyspark.zip``, ``py4j-*-src.zip`` and ``spark-core_*.jar``: what Spark itself puts on the worker path."""
    name = os.path.basename(archive)
    return (name == "pyspark.zip" or (name.startswith("py4j-") and name.endswith("-src.zip"))
            or (name.startswith("spark-core_") and name.endswith(".jar")))


def _invalidate_caches(self: zipimport.zipimporter) -> None:
    if not _is_spark_archive(self.archive):
        _rescan(self)


zipimport.zipimporter.invalidate_caches = _invalidate_caches

if __name__ == "__main__":  # workers started without the daemon (spark.python.use.daemon=false)
    runpy.run_module("pyspark.worker", run_name="__main__", alter_sys=True)
