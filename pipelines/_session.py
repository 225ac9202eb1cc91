"""The one place Spark is configured. Every job gets its session from ``spark_session``."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from stackv2.config import SparkConfig

#: Settings every run gets; ``SparkConfig`` fields and ``SparkConfig.conf`` override them.
BASE_CONF: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    # Coalescing would make the number of output files depend on data size and timing; keep layouts stable.
    "spark.sql.adaptive.coalescePartitions.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.orc.impl": "native",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "true",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.python.worker.reuse": "true",
    # pyspark.worker with the per-task re-read of Spark's own zips removed (~0.05 s per Python task; see the module).
    "spark.python.worker.module": "pyspark_stackv2_worker",
    # Published HF tables store TIMESTAMP(NANOS), which Spark cannot read as timestamps: read them as longs and
    # let ``StageContext.input`` convert the known timestamp columns.
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}


def spark_conf(cfg: SparkConfig) -> dict[str, str]:
    conf = dict(BASE_CONF)
    conf.update(
        {
            "spark.sql.shuffle.partitions": str(cfg.shuffle_partitions),
            "spark.default.parallelism": str(cfg.shuffle_partitions),
            "spark.driver.memory": cfg.driver_memory,
            "spark.sql.execution.arrow.maxRecordsPerBatch": str(cfg.arrow_batch_size),
        }
    )
    conf.update(cfg.conf)
    return conf


def submitted() -> bool:
    """True when ``spark-submit`` launched this driver: its JVM is already up, started with the cluster's
    ``--master`` (yarn, k8s://, spark://), which must not be replaced by ``SparkConfig.master``."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_session(cfg: SparkConfig) -> SparkSession:
    """Start (or reuse) the session. Executors run the same interpreter as the driver unless told otherwise
    (``spark.pyspark.python``, e.g. a packed environment shipped with ``--archives``; docs/deploy.md)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(cfg.app_name)
    if not submitted():
        builder = builder.master(cfg.master)
    for k, v in spark_conf(cfg).items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
