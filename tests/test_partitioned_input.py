"""Stage inputs read as the hash partitions they were written in (``pipelines._job.read_partitioned``): a join on
the file key moves only its other side, and gives the same rows as the plain read."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StructField, StructType

from pipelines._job import Output, StageContext, StageResult, placed, read_partitioned, run_stage, write_committed
from pipelines.frames import attach_partitioned
from stackv2.config import RunConfig, SparkConfig
from stackv2.schema import FILE_KEY
from udfs.parquet_writer import part_name, partition_of

PARTS = 3


@given(st.integers(min_value=0, max_value=10**7))
def test_part_names_give_their_partition_back(i):
    assert partition_of(part_name(i)) == i


@pytest.mark.parametrize("name", ["part-00001.parquet", "part_1.parquet", "part_00001.parquet.tmp", "x_00001.parquet"])
def test_other_names_have_no_partition(name):
    assert partition_of(name) is None


def _rows(spark):
    rows = [(f"d{k % 4}", f"/f{k}.py", f"content {k}") for k in range(40)] + [(None, "/null.py", "no key")]
    return spark.createDataFrame(rows, "directory_id string, path string, content string")


def _written(spark, tmp_path):
    """A completed stage ``s`` whose data is written, as every stage's is, in ``PARTS`` partitions of the key."""
    cfg = RunConfig(work_dir=str(tmp_path), spark=SparkConfig(shuffle_partitions=PARTS))
    ctx = StageContext(spark=spark, cfg=cfg, work_dir=tmp_path, previous=None, config_hash="h")
    run_stage(ctx, "s", lambda _: StageResult(data=Output(_rows(spark), FILE_KEY), rows_in=41))
    return tmp_path / "s" / "data"


def _context(spark, tmp_path, partitions=PARTS):
    cfg = RunConfig(work_dir=str(tmp_path), spark=SparkConfig(shuffle_partitions=partitions))
    return StageContext(spark=spark, cfg=cfg, work_dir=tmp_path, previous="s", config_hash="h2")


@pytest.fixture
def session(spark):
    """The shared session with ``PARTS`` shuffle partitions, as a stage's session has its configured number: Spark
    replans a join of two explicitly partitioned sides into ``spark.sql.shuffle.partitions`` when they differ (and
    earlier tests leave other numbers in the shared session)."""
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", str(PARTS))
    yield spark
    spark.conf.set("spark.sql.shuffle.partitions", before)


def _exchanges(df) -> int:
    return df._jdf.queryExecution().executedPlan().toString().count("Exchange hashpartitioning")


def _sorts(df) -> int:
    return df._jdf.queryExecution().executedPlan().toString().count(" Sort [")


@pytest.mark.spark
def test_a_join_on_the_key_moves_only_the_other_side(session, tmp_path):
    spark = session
    _written(spark, tmp_path)
    right = spark.createDataFrame(
        [(f"d{k % 4}", f"/f{k}.py", k) for k in range(0, 40, 3)], "directory_id string, path string, n int"
    )
    rows, partitioned = _context(spark, tmp_path).partitioned_input(FILE_KEY)
    plain = _context(spark, tmp_path).input()
    assert partitioned
    joined = attach_partitioned(rows, right, FILE_KEY, PARTS, left_partitioned=True)
    expected = attach_partitioned(plain, right, FILE_KEY, PARTS)
    assert (_exchanges(joined), _exchanges(expected)) == (1, 2)
    assert (_sorts(joined), _sorts(expected)) == (1, 2)  # known sorted too: only the other side is sorted
    assert sorted(joined.collect(), key=str) == sorted(expected.collect(), key=str)
    assert joined.count() == 41 and joined.where("n is not null").count() == 14


@pytest.mark.spark
def test_inputs_spark_cannot_be_told_about_are_read_plainly(session, tmp_path):
    spark = session
    data = _written(spark, tmp_path)
    assert not _context(spark, tmp_path, partitions=PARTS + 1).partitioned_input(FILE_KEY)[1]  # another count
    (data / "notes.txt").write_text("x")  # a folder holding more than the committed files
    assert read_partitioned(spark, sorted(data.glob("part_*")), FILE_KEY) is None
    (data / "notes.txt").unlink()
    for i in range(PARTS):  # an older work folder's names
        shutil.move(data / part_name(i), data / f"part-{i:05d}.parquet")
    assert read_partitioned(spark, sorted(data.glob("part-*")), FILE_KEY) is None


@pytest.mark.spark
def test_rows_kept_in_place_are_written_without_a_shuffle(session, tmp_path):
    """filter, pii and compose: a map that keeps rows in their partitions and order over a partitioned input is
    written as it is (``Output.aligned``), to the same bytes as the shuffled and sorted write."""
    spark = session
    _written(spark, tmp_path)

    def in_place(batches):  # a Python step that keeps every batch's rows in order, as filter's and pii's do
        for batch in batches:
            yield batch.append_column("n", pa.array([len(p) for p in batch.column("path").to_pylist()], pa.int32()))

    rows, partitioned = _context(spark, tmp_path).partitioned_input(FILE_KEY)
    assert partitioned
    schema = StructType([*rows.schema.fields, StructField("n", IntegerType())])
    mapped = rows.mapInArrow(in_place, schema).where("n > 6")
    aligned, shuffled = Output(mapped, FILE_KEY, aligned=True), Output(mapped, FILE_KEY)
    assert "Exchange" not in placed(aligned, PARTS)._jdf.queryExecution().executedPlan().toString()
    assert _exchanges(placed(shuffled, PARTS)) == 1
    a = write_committed(aligned, tmp_path / "aligned", PARTS, unique=True)
    b = write_committed(shuffled, tmp_path / "shuffled", PARTS, unique=True)
    assert a.rows == b.rows == 31  # 40 "/fK.py" paths, 10 of them 6 characters long, and "/null.py"
    assert [f.sha256 for f in a.files] == [f.sha256 for f in b.files]


@pytest.mark.spark
def test_rows_out_of_place_fail_an_aligned_write(session, tmp_path):
    spark = session
    _written(spark, tmp_path)
    plain = _context(spark, tmp_path).input()
    moved = plain.repartition(PARTS, "content")  # the right count, the wrong partitions
    with pytest.raises(Exception, match="not in its partition"):
        write_committed(Output(moved, FILE_KEY, aligned=True), tmp_path / "moved", PARTS)
    rows, _ = _context(spark, tmp_path).partitioned_input(FILE_KEY)
    reordered = rows.sortWithinPartitions(F.col("path").desc())  # the right partitions, the wrong order
    with pytest.raises(Exception, match="KeyOrderError"):
        write_committed(Output(reordered, FILE_KEY, aligned=True), tmp_path / "reordered", PARTS)
    assert not (tmp_path / "moved").exists() and not (tmp_path / "reordered").exists()
