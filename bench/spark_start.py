"""What the driver JVM options of ``pipelines/_session.py`` cost and save, each case in a fresh process.

- ``session``: ``spark_session()`` + one tiny job, with and without the class archive (``stackv2 class-archive``);
- ``dedup``: the ``near_dedup`` stage (verify on) over the x16 near-dedup corpus (``python -m bench.dedup.run`` writes
  it), with the default options, with G1 (the JVM's default collector) instead of the throughput collector,
  without the later-C2 thresholds, and with C1 only (``TieredStopAtLevel=1``);
- ``heavy``: a JVM-bound query (sha2 of 30M rows, group-by, sort; 3 repeats in one session) with the default
  options, with G1, and without the thresholds, to check that long runs keep their speed.

    python -m bench.spark_start --rounds 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pipelines._session import BASE_CONF, DRIVER_OPTIONS

DEFAULT = BASE_CONF[DRIVER_OPTIONS]
PLAIN = "-Duser.timezone=UTC"
PARALLEL = f"{PLAIN} -XX:+UseParallelGC"
G1 = DEFAULT.replace("-XX:+UseParallelGC", "-XX:+UseG1GC")
C1 = f"{PARALLEL} -XX:TieredStopAtLevel=1"
X16 = Path(__file__).resolve().parents[1] / "work" / "bench-dedup" / "x16"


def _session(options: str, archive: bool) -> dict:
    from pipelines._session import spark_session
    from stackv2.config import SparkConfig

    t = time.monotonic()
    spark = spark_session(
        SparkConfig(master="local[2]", driver_memory="2g", conf={DRIVER_OPTIONS: options}), class_archive=archive
    )
    spark.range(1).count()
    return {"seconds": round(time.monotonic() - t, 2)}


def _dedup(options: str, archive: bool) -> dict:
    from pipelines._job import StageContext, run_stage
    from pipelines._session import spark_session
    from pipelines.stages import near_dedup
    from stackv2.config import RunConfig, SparkConfig, stable_hash, to_dict
    from stackv2.dedup.config import DedupConfig

    shutil.rmtree(X16 / "near_dedup", ignore_errors=True)
    t = time.monotonic()
    spark_cfg = SparkConfig(
        master="local[2]", driver_memory="2g", shuffle_partitions=8, conf={DRIVER_OPTIONS: options}
    )
    cfg = DedupConfig(verify=True)
    spark = spark_session(spark_cfg, class_archive=archive)
    ctx = StageContext(
        spark=spark,
        cfg=RunConfig(work_dir=str(X16), spark=spark_cfg, near_dedup=cfg),
        work_dir=X16,
        previous="corpus",
        config_hash=stable_hash(to_dict(cfg)),
    )
    run_stage(ctx, "near_dedup", near_dedup.run)
    return {"seconds": round(time.monotonic() - t, 2)}


def _heavy(options: str, archive: bool) -> dict:
    from pyspark.sql import functions as F

    from pipelines._session import spark_session
    from stackv2.config import SparkConfig

    spark = spark_session(
        SparkConfig(master="local[2]", driver_memory="2g", conf={DRIVER_OPTIONS: options}), class_archive=archive
    )
    df = spark.range(30_000_000).select("id", F.sha2(F.col("id").cast("string"), 256).alias("h"))
    times = []
    for _ in range(3):
        t = time.monotonic()
        df.groupBy(F.substring("h", 1, 3)).agg(F.count("*"), F.max("id"), F.min("h")).collect()
        df.repartition(8, "h").sortWithinPartitions("h").select(F.sum(F.length("h"))).collect()
        times.append(round(time.monotonic() - t, 1))
    return {"seconds": times}


CASES = {
    "session": [("archive", DEFAULT, True), ("no archive", DEFAULT, False)],
    "dedup": [
        ("default", DEFAULT, True),
        ("G1", G1, True),
        ("no C2 thresholds", PARALLEL, True),
        ("C1 only", C1, True),
    ],
    "heavy": [("default", DEFAULT, True), ("G1", G1, True), ("no C2 thresholds", PARALLEL, True)],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = ap.parse_args()
    if "dedup" in args.cases and not (X16 / "corpus").exists():
        sys.exit(f"{X16 / 'corpus'} missing: run python -m bench.dedup.run --scales 16 first")
    for r in range(1, args.rounds + 1):
        for case in args.cases:
            for label, options, archive in CASES[case]:
                out = subprocess.run(
                    [sys.executable, "-m", "bench.spark_start", "--one", case, options, str(archive)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                print(
                    json.dumps({"round": r, "case": case, "variant": label, **json.loads(out.splitlines()[-1])}),
                    flush=True,
                )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        _, _, case, options, archive = sys.argv
        print(json.dumps({"session": _session, "dedup": _dedup, "heavy": _heavy}[case](options, archive == "True")))
    else:
        main()
