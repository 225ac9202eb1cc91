"""Entry point of Spark's Python workers (``spark.python.worker.module``, set in ``pipelines/_session.py``):
``pyspark.worker`` unchanged, except that a reused worker no longer re-reads Spark's own zip archives at every task.
A top-level module named ``pyspark…`` because pyspark's daemon ignores worker modules named otherwise.

``pyspark.worker`` calls ``importlib.invalidate_caches()`` when each task starts (so that files added with
``addPyFile`` become importable). On Python 3.10+ that makes every ``zipimporter`` re-read its archive's whole
directory, and Spark puts ``pyspark.zip``, py4j's zip and the ``spark-core`` jar on every worker's path, each seen
through one importer per imported sub-package: 0.05 s per task on this project's machines (40 empty tasks:
4.7 s -> 2.6 s), more than the work of many tasks (docs/benchmarks.md, "annotate"). Those
archives ship with Spark and never change while a worker runs; every other archive is still re-read as before.

pyspark's daemon also runs a full ``gc.collect()`` after every task of a reused worker. Once a task has imported
numpy, pyarrow, numba and the stage's modules the worker tracks ~100,000 long-lived objects, and walking them all
costs ~50 ms per task. At the start of a task, right after that collection, every object left is reachable; when
their number grew by ``FREEZE_AFTER`` since the last time (new imports, a model or index loaded), they are moved
to the permanent generation with ``gc.freeze()``, which the collector skips. Reference counting still frees them;
only a reference cycle among them that dies later is never collected, and that happens only a few times per worker.
"""

from __future__ import annotations

import gc
import os
import runpy
import zipimport

from pyspark import worker

__all__ = ["main"]

#: Objects that must have survived into the oldest generation since the last freeze before freezing again.
FREEZE_AFTER = 20_000

_rescan = zipimport.zipimporter.invalidate_caches


def _is_spark_archive(archive: str) -> bool:
    """``pyspark.zip``, ``py4j-*-src.zip`` and ``spark-core_*.jar``: what Spark itself puts on the worker path."""
    name = os.path.basename(archive)
    return (
        name == "pyspark.zip"
        or (name.startswith("py4j-") and name.endswith("-src.zip"))
        or (name.startswith("spark-core_") and name.endswith(".jar"))
    )


def _invalidate_caches(self: zipimport.zipimporter) -> None:
    if not _is_spark_archive(self.archive):
        _rescan(self)


zipimport.zipimporter.invalidate_caches = _invalidate_caches


def main(infile, outfile) -> None:
    """One task, as ``pyspark.worker.main``; first freezes the long-lived objects when they grew (see above)."""
    if len(gc.get_objects(generation=2)) >= FREEZE_AFTER:
        gc.freeze()
    worker.main(infile, outfile)


if __name__ == "__main__":  # workers started without the daemon (spark.python.use.daemon=false)
    runpy.run_module("pyspark.worker", run_name="__main__", alter_sys=True)
