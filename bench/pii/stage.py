"""Throughput of the whole Spark ``pii`` stage on one core: read Parquet, redact, write rows + spans + stats.

The rows are the labelled set of ``bench.py`` (same seed, same files). Spark runs ``local[1]``; the time is that
of ``run_stage`` (so it includes the Python worker start and the engine setup, once). For scale, the same run also
times a do-nothing ``mapInArrow`` + checkpoint over the rows and ``redact`` over them in the driver.

    .venv/bin/python bench/pii/stage.py --files 1000 --seed 2 --work /tmp/pii-stage-bench
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import build_set, corpus_files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/pii-stage-bench"))
    args = ap.parse_args(argv)

    from pipelines._job import StageContext, run_stage
    from pipelines._session import spark_session
    from pipelines.stages.pii import STAGE
    from stackv2.config import RunConfig, SparkConfig
    from stackv2.workdir import adopt_outputs, committed_files

    docs = build_set(corpus_files(Path(sysconfig.get_paths()["purelib"]), args.files, args.seed, 100_000), args.seed)
    mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    shutil.rmtree(args.work, ignore_errors=True)
    cfg = RunConfig(
        work_dir=str(args.work),
        spark=SparkConfig(master="local[1]", shuffle_partitions=1, driver_memory="2g", arrow_batch_size=200),
    )
    spark = spark_session(cfg.spark)
    rows = [(f"d{i % 50}", d["path"], f"b{i}", d["text"]) for i, d in enumerate(docs)]
    spark.createDataFrame(rows, "directory_id string, path string, blob_id string, content string").write.parquet(
        str(args.work / "near_dedup" / "data")
    )
    adopt_outputs(args.work / "near_dedup")
    rows_df = spark.read.parquet(*map(str, committed_files(args.work / "near_dedup" / "data")))
    rows_df.count()  # JVM and reader warm-up, outside both timings
    t0 = time.perf_counter()
    rows_df.mapInArrow(lambda batches: batches, rows_df.schema).localCheckpoint()
    print(f"identity mapInArrow + checkpoint on the same rows: {time.perf_counter() - t0:.1f} s")
    ctx = StageContext(spark=spark, cfg=cfg, work_dir=args.work, previous="near_dedup", config_hash="bench")
    t0 = time.perf_counter()
    stats, _ = run_stage(ctx, "pii", STAGE.run)
    seconds = time.perf_counter() - t0
    print(
        f"pii stage, local[1]: {len(docs)} files, {mb:.2f} MB in {seconds:.1f} s = {mb / seconds:.2f} MB/s; "
        f"redactions {stats.extra['redactions']}"
    )
    from stackv2.pii import redact
    from stackv2.pii.engine import get_engine

    get_engine(cfg.pii)
    t0 = time.perf_counter()
    for d in docs:
        redact(d["text"], cfg.pii)
    seconds = time.perf_counter() - t0
    print(f"same rows, redact() in this process (engine warm): {seconds:.1f} s = {mb / seconds:.2f} MB/s")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
