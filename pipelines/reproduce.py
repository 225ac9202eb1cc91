"""``stackv2 reproduce`` on Spark: one task per planned shard (``stackv2.reproduce.run``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from stackv2.reproduce.run import run_shard


def spark_map(spark: SparkSession) -> Callable[[list[tuple]], list[dict[str, Any]]]:
    """``map_shards`` for ``stackv2.reproduce.run.reproduce``: each shard's ``run_shard`` in a task of its own."""

    def run(shards: list[tuple]) -> list[dict[str, Any]]:
        return spark.sparkContext.parallelize(shards, len(shards)).map(lambda t: run_shard(*t)).collect()

    return run
