"""A class-data-sharing archive of the classes a stackv2 Spark driver loads, so later JVMs map them instead of
loading and verifying them one by one (docs/benchmarks.md "JVM start-up": ~1.3 s of the ~3.5 s session start).

``stackv2 class-archive`` (run by ``make setup``) starts one Spark session with ``-XX:ArchiveClassesAtExit``,
runs a small job through the engine parts the stages use (Parquet, windows, joins, Arrow UDFs, observed metrics,
checkpoints), and stops; the JVM writes the archive when it exits. ``_session.spark_session`` then passes
``-XX:SharedArchiveFile`` to every driver it launches when the archive exists. The archive is bound to this JDK
build and this Spark's jars: with another JDK the JVM warns once and starts without it; a damaged archive can
crash the JVM, so it is written under a temporary name and only moved into place after a JVM started with
``-Xshare:on`` (use it or fail) has run a job on it.

    stackv2 class-archive [--force]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pipelines._session import BASE_CONF, DRIVER_OPTIONS, USE_OPTION, spark_session


def _exercise(java_options: str) -> None:
    """Start a local session with ``java_options`` and run a little of everything the stages run."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    from pipelines._job import Output, write_output
    from pipelines.components import connected_components
    from stackv2.config import SparkConfig

    options = f"{BASE_CONF[DRIVER_OPTIONS]} {java_options}"
    cfg = SparkConfig(
        master="local[2]",
        shuffle_partitions=2,
        driver_memory="1g",
        conf={DRIVER_OPTIONS: options, "spark.ui.showConsoleProgress": "false"},
    )
    spark = spark_session(cfg, class_archive=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = [(i, f"r{i % 3}", f"text {i}") for i in range(40)]
            df = spark.createDataFrame(rows, "n long, reason string, s string")
            write_output(Output(df, ("n",)), Path(tmp) / "out", 2, count_by="reason")
            back = spark.read.parquet(str(Path(tmp) / "out"))
            edges = back.select(F.col("n").alias("a"), (F.col("n") % 7).alias("b"))
            labels = connected_components(edges, "a", "b").localCheckpoint()
            joined = back.join(labels, back.n == labels.node, "left")
            joined.groupBy("reason").applyInArrow(lambda t: t.select(["reason"]), "reason string").collect()
            joined.mapInArrow(
                lambda it: (pa.RecordBatch.from_pydict({"k": [b.num_rows]}) for b in it), "k long"
            ).collect()
    finally:
        spark.stop()


def build(target: Path, force: bool = False) -> bool:
    """Write the archive to ``target`` unless it exists (or ``force``); True when written."""
    if target.exists() and not force:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        for step, option in (
            ("writing", f"-XX:ArchiveClassesAtExit={tmp}"),
            ("checking", f"-Xshare:on {USE_OPTION}={tmp} -XX:ErrorFile={tmp}.crash.log"),
        ):
            # A fresh process each: the archive is written when the JVM exits, and only a new JVM can map it.
            run = subprocess.run(
                [sys.executable, "-m", "pipelines.class_archive", option],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if run.returncode != 0 or not tmp.exists():
                tail = "\n".join(run.stderr.splitlines()[-5:])
                raise RuntimeError(f"{step} the JVM class archive {tmp} failed:\n{tail}")
        os.replace(tmp, target)
        return True
    finally:
        tmp.unlink(missing_ok=True)


if __name__ == "__main__":
    _exercise(sys.argv[1])
