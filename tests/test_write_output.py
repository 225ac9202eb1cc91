"""The stage contract's writer: deterministic part files, and the per-reason counts taken while writing."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from pipelines._job import SUCCESS, Output, StageContext, StageResult, run_stage, write_output
from stackv2.config import RunConfig

pytestmark = pytest.mark.spark


def test_counts_by_reason_while_writing(spark, tmp_path):
    rows = [("a", "too_long"), ("b", "too_long"), ("c", "encoded"), ("d", "too_long")]
    df = spark.createDataFrame(rows, "path string, reason string").repartition(3)
    written, counts = write_output(Output(df, ("path",)), tmp_path / "rejected", 4, count_by="reason")
    assert written == 4 and counts == {"too_long": 3, "encoded": 1}
    parts = sorted(p.name for p in (tmp_path / "rejected").iterdir())
    assert parts == [f"part_{i:05d}.parquet" for i in range(4)]  # empty partitions are written too
    assert sorted(pq.read_table(tmp_path / "rejected").column("path").to_pylist()) == ["a", "b", "c", "d"]


def test_a_row_without_a_reason_is_an_error(spark, tmp_path):
    df = spark.createDataFrame([("a", "too_long"), ("b", None)], "path string, reason string")
    with pytest.raises(Exception, match="1 rows without a reason"):
        write_output(Output(df, ("path",)), tmp_path / "rejected", 2, count_by="reason")
    assert not (tmp_path / "rejected").exists()


def test_outputs_are_written_together_and_a_failed_one_fails_the_stage(spark, tmp_path):
    """``run_stage`` submits the outputs at once: each is complete, and one that fails leaves no ``_SUCCESS``."""
    data = spark.createDataFrame([("a", 1), ("b", 2)], "path string, n int").repartition(2)
    rejected = spark.createDataFrame([("c", "too_long")], "path string, reason string")
    table = spark.createDataFrame([("x", 1)], "path string, n int")
    ctx = StageContext(
        spark=spark, cfg=RunConfig(work_dir=str(tmp_path)), work_dir=tmp_path, previous=None, config_hash="h"
    )

    def build(extra):
        return lambda _: StageResult(
            data=Output(data, ("path",)),
            rejected=Output(rejected, ("path",)),
            tables={"extra": Output(extra, ("path",))},
            rows_in=3,
        )

    stats, _ = run_stage(ctx, "s", build(table))
    assert (stats.rows_out, stats.rejected) == (2, {"too_long": 1})
    assert pq.read_table(tmp_path / "s" / "extra").column("path").to_pylist() == ["x"]
    assert (tmp_path / "s" / SUCCESS).exists()

    broken = table.select("path", F.raise_error(F.lit("table write broke")).cast("int").alias("n"))
    with pytest.raises(Exception, match="table write broke"):
        run_stage(ctx, "t", build(broken))
    assert not (tmp_path / "t" / SUCCESS).exists()


def test_an_empty_part_has_the_same_bytes_whoever_writes_it(spark, tmp_path):
    """A task writes the empty partitions of a non-empty input; for an empty input Spark may run no task and the
    driver writes every part: the two give the same bytes."""
    schema = "path string, reason string"
    write_output(Output(spark.createDataFrame([("a", "too_long")], schema), ("path",)), tmp_path / "one", 4)
    write_output(Output(spark.createDataFrame([], schema), ("path",)), tmp_path / "none", 4)
    by_tasks = [p.read_bytes() for p in sorted((tmp_path / "one").iterdir()) if pq.read_metadata(p).num_rows == 0]
    by_driver = [p.read_bytes() for p in sorted((tmp_path / "none").iterdir())]
    assert len(by_tasks) == 3 and len(by_driver) == 4
    assert set(by_tasks) == set(by_driver)


def test_a_partitioned_join_is_written_as_the_join_and_write_would_with_no_shuffle_of_its_own(spark, tmp_path):
    """``attach_partitioned`` gives the parts ``attach`` + the writer give, byte for byte, and the writer adds no
    exchange: few rows, so adaptive execution would merge the join's partitions if it could."""
    from pipelines.frames import attach, attach_partitioned, computed_once

    left = spark.createDataFrame([(f"d{i % 3}", f"p{i}", "x" * i) for i in range(40)], "d string, p string, c string")
    right = spark.createDataFrame([(f"d{i % 3}", f"p{i}", i) for i in range(40)], "d string, p string, n int")
    left, right = left.repartition(3), right.repartition(2)
    keys = ("d", "p")
    # As a stage's session has: Spark replans a join of explicitly partitioned sides into this number.
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    joined = attach_partitioned(left, right, keys, 4)
    plan = joined.repartition(4, *keys).sortWithinPartitions(*keys)._jdf.queryExecution().executedPlan().toString()
    above_join = plan.split("SortMergeJoin")[0]
    assert "Exchange" not in above_join and "Sort [" not in above_join, plan
    write_output(Output(joined, keys), tmp_path / "partitioned", 4)
    write_output(Output(attach(left, right, keys), keys), tmp_path / "attached", 4)
    for i in range(4):
        name = f"part_{i:05d}.parquet"
        assert (tmp_path / "partitioned" / name).read_bytes() == (tmp_path / "attached" / name).read_bytes(), name
    assert pq.read_table(tmp_path / "partitioned").num_rows == 40
    # Kept on disk for two outputs (``computed_once``), then filtered: still written without an exchange.
    some = computed_once(joined, partitioned=True).where(F.col("n") % 2 == 0)
    plan = some.repartition(4, *keys).sortWithinPartitions(*keys)._jdf.queryExecution().executedPlan().toString()
    above_disk = plan.split("InMemoryTableScan")[0]
    assert "Exchange" not in above_disk and "Sort [" not in above_disk, plan
    write_output(Output(some, keys), tmp_path / "some", 4)
    assert sorted(pq.read_table(tmp_path / "some").column("n").to_pylist()) == list(range(0, 40, 2))
