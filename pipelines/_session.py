"""The one place Spark is configured. Every job gets its session from ``spark_session``."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyspark
from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

from stackv2.config import SparkConfig
from stackv2.preload import PRELOAD_ENV, Preload

DRIVER_OPTIONS = "spark.driver.extraJavaOptions"
#: The option that makes a driver JVM map a class archive (``pipelines.class_archive``); drivers given one of
#: their own are left alone.
USE_OPTION = "-XX:SharedArchiveFile"
#: "false" turns off ``preloading``: every Python worker then loads the models it needs itself.
PRELOAD_OPTION = "spark.stackv2.preloadModels"

#: Settings every run gets; ``SparkConfig`` fields and ``SparkConfig.conf`` override them.
BASE_CONF: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    # AQE merges small intermediate shuffle partitions (components rounds, verify groups: ~1 s less for dedup x16
    # on 2 cores). Outputs keep their layout: ``_job.write_output`` repartitions to an explicit number, which AQE
    # never coalesces.
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    # No join is broadcast on a size estimate: the driver collects a broadcast table whole, and estimates of
    # checkpointed frames and Python functions' outputs are far too small (fetch's fetched content, 224 MiB at
    # 20k files, was planned as a broadcast under 10 MB: the driver held every file's content). A table whose size
    # is bounded by something else than the files (shards' folders and shards) is broadcast with an explicit hint.
    # docs/scaling.md "Memory".
    "spark.sql.autoBroadcastJoinThreshold": "-1",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.orc.impl": "native",
    "spark.sql.parquet.compression.codec": "zstd",
    # Blocks of frames kept on local disk (``pipelines.frames.computed_once``, extract's levels) compressed like
    # shuffle files: a 1M-file run's fetch kept 19 GB of contents uncompressed (docs/scaling.md, "Scratch disk").
    "spark.rdd.compress": "true",
    # Persisted frames (``computed_once``'s partitioned ones, extract's levels) are stored in Spark's columnar cache
    # format, which by default tries a dictionary on every column of every batch: it hashed each file's content
    # (44 % of exact_dedup's JVM samples at 200k files; docs/scaling.md "The cache's dictionary trial").
    # The blocks are compressed whole above.
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    # Every shuffle map task writes one sorted file, never one file per reduce partition (Spark's "bypass" writer
    # below 200 partitions): with P partitions a stage made P x P files, a cost that grew with the square of the
    # partitions; it made extract's levels 14x their 200k cost at 1M files (160 partitions). docs/scaling.md.
    "spark.shuffle.sort.bypassMergeThreshold": "0",
    "spark.sql.sources.partitionOverwriteMode": "static",
    # A stage input read as its partitions (``_job.read_partitioned``) is scanned one bucket per task even where no
    # join or aggregation needs it: a stage that keeps rows in place (filter, pii, compose, malware, optout) then
    # writes them without a shuffle (``_job.Output.aligned``). Our own tables are the only bucketed ones.
    "spark.sql.sources.bucketing.autoBucketedScan.enabled": "false",
    # Such an input is also known sorted on its key (each file is, ``read_partitioned``): a join on the key sorts
    # only its other side, not every row with its content again (docs/scaling.md, "Inputs known sorted").
    "spark.sql.legacy.bucketedTableScan.outputOrdering": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "true",
    # C2 compiles methods 10x later than by default: a run of a minute on a few cores spends less of them
    # compiling code it then barely uses (dedup x16 on 2 cores: ~2 s less), while long runs still get C2 code
    # where it matters (a 35 s shuffle-heavy query: within a few percent). The throughput collector instead of G1:
    # no write barriers or concurrent refinement threads taking the tasks' cores (dedup x16: ~1.2 s less, the
    # 35 s query no slower); the driver's heap is small next to an executor's. docs/benchmarks.md "JVM start-up".
    DRIVER_OPTIONS: "-Duser.timezone=UTC -XX:Tier4InvocationThreshold=50000 -XX:Tier4MinInvocationThreshold=6000 "
    "-XX:Tier4CompileThreshold=150000 -XX:Tier4BackEdgeThreshold=400000 -XX:+UseParallelGC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.python.worker.reuse": "true",
    # pyspark.worker with the per-task re-read of Spark's own zips removed (~0.05 s per Python task; see the module).
    "spark.python.worker.module": "pyspark_stackv2_worker",
    # pyspark.daemon importing pyspark from the installed package, not from Spark's zip (~0.3 s per daemon start).
    "spark.python.daemon.module": "pyspark_stackv2_daemon",
    PRELOAD_OPTION: "true",
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


def archive_path() -> Path:
    """Where ``stackv2 class-archive`` keeps the class archive of this environment's Spark (beside its packages)."""
    return Path(sys.prefix) / "share" / "stackv2" / f"spark-{pyspark.__version__}.jsa"


def with_class_archive(conf: dict[str, str], archive: Path) -> dict[str, str]:
    """``conf`` with the driver JVM told to map ``archive`` when it exists and no archive option is set."""
    options = conf.get(DRIVER_OPTIONS, "")
    if not archive.exists() or USE_OPTION in options:
        return conf
    return {**conf, DRIVER_OPTIONS: f"{options} {USE_OPTION}={archive}".strip()}


def submitted() -> bool:
    """True when ``spark-submit`` launched this driver: its JVM is already up, started with the cluster's
    ``--master`` (yarn, k8s://, spark://), which must not be replaced by ``SparkConfig.master``."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_session(cfg: SparkConfig, class_archive: bool = True) -> SparkSession:
    """Start (or reuse) the session. Executors run the same interpreter as the driver unless told otherwise
    (``spark.pyspark.python``, e.g. a packed environment shipped with ``--archives``; docs/deploy.md).

    A driver JVM this process launches maps the class archive of ``stackv2 class-archive`` when there is one
    (``class_archive=False``, or a driver option of its own, opts out)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    conf = spark_conf(cfg)
    if class_archive and not submitted():
        conf = with_class_archive(conf, archive_path())
    builder = SparkSession.builder.appName(cfg.app_name)
    if not submitted():
        builder = builder.master(cfg.master)
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextmanager
def preloading(spark: SparkSession, models: Preload | None) -> Iterator[None]:
    """Python functions created in this block run in workers forked from a daemon that loaded ``models`` first
    (``stackv2.preload``): one copy per executor instead of one per worker. A function's worker environment is
    ``SparkContext.environment`` as it is when the function is created, and Spark starts one daemon per distinct
    environment, which exits once it has had no worker for a while. Nothing changes with ``models`` None; with
    ``spark.stackv2.preloadModels`` false the functions get a daemon of their own that loads nothing (their workers
    load the models themselves, and go with their job)."""
    env = spark.sparkContext.environment
    if models is None:
        yield
        return
    if spark.sparkContext.getConf().get(PRELOAD_OPTION, "true") != "true":
        models = Preload()
    before = env.get(PRELOAD_ENV)
    env[PRELOAD_ENV] = models.encode()
    try:
        yield
    finally:
        if before is None:
            del env[PRELOAD_ENV]
        else:
            env[PRELOAD_ENV] = before


#: Between ``release_unreferenced``'s two collections: time for Spark's cleaner thread to act on the first.
RELEASE_PAUSE_SECONDS = 0.5


def release_unreferenced(spark: SparkSession) -> None:
    """Let Spark delete now what frames no longer referenced left on the executors' local disks (checkpoints,
    shuffle files). Its cleaner deletes them once the driver's JVM collects their RDDs, and with a small, quiet
    heap that may not happen before the run ends: a 1M-file run had 25 GB of fetch's blocks on disk when annotate
    began (docs/scaling.md, "Scratch disk"). Called between stages, whose frames no later stage reads; also stops
    the stage's model-loading daemons (``stop_preloading_daemons``)."""
    gc.collect()  # the frames' py4j proxies: once gone, the JVM objects behind them are unreachable
    # py4j tells the JVM about dropped proxies from a thread of its own that polls a queue: tell it now.
    pending = getattr(spark.sparkContext._gateway._gateway_client, "finalizer_deque", None)
    while pending:
        try:
            task = pending.pop()
        except IndexError:  # emptied by py4j's thread meanwhile
            break
        if not isinstance(task, tuple):  # py4j's shutdown marker: its thread's to take
            pending.append(task)
            break
        client, target_id = task
        client.garbage_collect_object(target_id, False)
    spark.catalog.clearCache()  # persisted frames (``computed_once``): the cache holds them until told
    # Twice: what the cleaner drops after the first collection (in a thread of its own) still held a checkpoint's
    # RDD, which only the second one then finds unreachable (tests/test_session_release.py).
    spark.sparkContext._jvm.System.gc()
    time.sleep(RELEASE_PAUSE_SECONDS)
    spark.sparkContext._jvm.System.gc()
    stop_preloading_daemons(spark)


def stop_preloading_daemons(spark: SparkSession) -> int:
    """Stop now, on a local master (where the driver's JVM runs the tasks), the daemons of the worker environments
    that preload models (``preloading``) and their idle workers, as Spark would stop the workers a minute after their
    last task, the daemon following them (``pyspark_stackv2_daemon``). Meanwhile the next stages ran beside the models:
    the 20k quick check's peak, in shards, held annotate's and pii's workers (1.3 GiB; docs/scaling.md, "The quick
    check"). Spark starts a new daemon if the environment is used again. Through a private member of Spark
    (``SparkEnv``'s map of worker factories, by reflection; the factories' ``stop`` is public): returns how many
    environments were stopped, 0 where the member is not found."""
    sc = spark.sparkContext
    if not sc.master.startswith("local"):
        return 0
    jvm, gateway = sc._jvm, sc._gateway
    env = jvm.org.apache.spark.SparkEnv.get()
    try:
        member = env.getClass().getDeclaredMethod("pythonWorkers", gateway.new_array(jvm.java.lang.Class, 0))
        member.setAccessible(True)
        factories = jvm.scala.jdk.javaapi.CollectionConverters.asJava(
            member.invoke(env, gateway.new_array(jvm.java.lang.Object, 0))
        )
    except Py4JError:
        return 0
    preloading_keys = [key for key in factories.keySet() if key.envVars().contains(PRELOAD_ENV)]
    for key in preloading_keys:
        factories.get(key).stop()
    return len(preloading_keys)
