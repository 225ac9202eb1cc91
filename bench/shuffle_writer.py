"""What Spark's "bypass" shuffle writer costs next to the sort-based one the session sets (``pipelines/_session.py``,
``spark.shuffle.sort.bypassMergeThreshold``), each case in a fresh process.

Below 200 reduce partitions, and without map-side aggregation, Spark's default writes one file per reduce partition
in every map task and concatenates them: P x P files per stage. The query here is the shape of extract's levels: a
checkpoint of N rows kept on disk in P partitions, filtered, shuffled by a key into P partitions for a window. It
prints the CPU seconds of the process tree (the JVM runs every task) and the wall time of 3 runs of it after one to
warm up.

    python -m bench.shuffle_writer --rows 400000 --partitions 8 32 160
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench.scale.run import tree_usage
from pipelines._session import BASE_CONF

THRESHOLD = "spark.shuffle.sort.bypassMergeThreshold"
WRITERS = {"sort (the session's)": BASE_CONF[THRESHOLD], "bypass (Spark's default)": "200"}


def _one(rows: int, partitions: int, threshold: str) -> dict:
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from pipelines._session import spark_session
    from stackv2.config import SparkConfig

    spark = spark_session(
        SparkConfig(
            master="local[2]",
            driver_memory="2g",
            shuffle_partitions=partitions,
            conf={THRESHOLD: threshold},
        )
    )
    ids = F.col("id").cast("string")
    kept = (
        spark.range(rows, numPartitions=partitions)
        .select(
            F.concat(F.lit("swh:1:dir:0123456789abcdef0123456789abcdef01234567/src/"), ids).alias("reach"),
            F.when(F.col("id") % 3 == 0, "dir").otherwise("file").alias("type"),
            F.unhex(F.sha1(ids)).alias("target"),
            (F.col("id") % 7).alias("mult"),
        )
        .localCheckpoint(storageLevel=StorageLevel.DISK_ONLY)
    )

    def query() -> int:
        paths = F.sum("mult").over(Window.partitionBy("target"))
        return kept.where("type = 'dir'").withColumn("paths", paths).where("paths >= 0").count()

    query()
    cpu = sum(tree_usage(os.getpid())[1].values())
    start = time.monotonic()
    for _ in range(3):
        query()
    return {
        "cpu_s": round(sum(tree_usage(os.getpid())[1].values()) - cpu, 2),
        "wall_s": round(time.monotonic() - start, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--partitions", type=int, nargs="+", default=[8, 32, 160])
    args = ap.parse_args()
    for partitions in args.partitions:
        for label, threshold in WRITERS.items():
            out = subprocess.run(
                [sys.executable, "-m", "bench.shuffle_writer", "--one", str(args.rows), str(partitions), threshold],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out.splitlines()[-1])
            print(json.dumps({"rows": args.rows, "partitions": partitions, "writer": label, **result}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        print(json.dumps(_one(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
    else:
        main()
