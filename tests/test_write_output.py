"""The stage contract's writer: deterministic part files, and the per-reason counts taken while writing."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from pipelines._job import Output, write_output

pytestmark = pytest.mark.spark


def test_counts_by_reason_while_writing(spark, tmp_path):
    rows = [("a", "too_long"), ("b", "too_long"), ("c", "encoded"), ("d", "too_long")]
    df = spark.createDataFrame(rows, "path string, reason string").repartition(3)
    written, counts = write_output(Output(df, ("path",)), tmp_path / "rejected", 4, count_by="reason")
    assert written == 4 and counts == {"too_long": 3, "encoded": 1}
    parts = sorted(p.name for p in (tmp_path / "rejected").iterdir())
    assert parts == [f"part-{i:05d}.parquet" for i in range(4)]  # empty partitions are written too
    assert sorted(pq.read_table(tmp_path / "rejected").column("path").to_pylist()) == ["a", "b", "c", "d"]


def test_a_row_without_a_reason_is_an_error(spark, tmp_path):
    df = spark.createDataFrame([("a", "too_long"), ("b", None)], "path string, reason string")
    with pytest.raises(Exception, match="1 rows without a reason"):
        write_output(Output(df, ("path",)), tmp_path / "rejected", 2, count_by="reason")
    assert not (tmp_path / "rejected").exists()
