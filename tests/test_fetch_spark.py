"""Fetch on Spark from a local content store: every row ends in output or rejected, with the right reason."""

import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.runner import run_pipeline
from stackv2.config import RunConfig, SparkConfig
from stackv2.schema import FILE_INDEX
from stackv2.swh.content_store import LocalStore
from stackv2.text.decode import content_hashes

pytestmark = pytest.mark.spark


def test_fetch_reasons_and_accounting(spark, tmp_path):
    store = LocalStore(tmp_path / "store")
    files = {
        "/ok.py": b"print('ok')\n",
        "/copy/ok.py": b"print('ok')\n",  # same blob as /ok.py: fetched once, two rows out
        "/latin.txt": ("Déjà vu, ça alors! Élève, garçon, façade, naïve. " * 10).encode("latin-1"),
        "/bin.dat": b"\x00\x01\x02binary",
        "/empty.txt": b"",
    }
    rows = []
    for i, (path, data) in enumerate(files.items()):
        h = content_hashes(data)
        store.put(h["sha1"], data)
        rows.append(
            {
                "repo_name": "o/r",
                "directory_id": "d" * 40,
                "path": path,
                "blob_id": h["sha1"],
                "content_id": h["sha1_git"],
                "length": len(data),
                "star_events_count": i,
            }
        )
    missing = content_hashes(b"never stored")
    rows.append(
        {
            "repo_name": "o/r",
            "directory_id": "d" * 40,
            "path": "/missing.py",
            "blob_id": missing["sha1"],
            "content_id": missing["sha1_git"],
            "length": 12,
        }
    )
    corrupt = content_hashes(b"will be corrupted")
    store.path(corrupt["sha1"]).parent.mkdir(parents=True, exist_ok=True)
    store.path(corrupt["sha1"]).write_bytes(gzip.compress(b"will be corrupted")[:-9])
    rows.append(
        {
            "repo_name": "o/r",
            "directory_id": "d" * 40,
            "path": "/corrupt.py",
            "blob_id": corrupt["sha1"],
            "content_id": corrupt["sha1_git"],
            "length": 17,
        }
    )
    wrong = content_hashes(b"expected bytes")
    store.path(wrong["sha1"]).write_bytes(gzip.compress(b"other bytes"))
    rows.append(
        {
            "repo_name": "o/r",
            "directory_id": "d" * 40,
            "path": "/wrong.py",
            "blob_id": wrong["sha1"],
            "content_id": wrong["sha1_git"],
            "length": 14,
        }
    )
    rows.append(
        {
            "repo_name": "o/r",
            "directory_id": "d" * 40,
            "path": "/huge.bin",
            "blob_id": "f" * 40,
            "content_id": "e" * 40,
            "length": 11 << 20,
        }
    )
    index = tmp_path / "index"
    index.mkdir()
    table = pa.Table.from_pylist(rows, schema=FILE_INDEX)
    pq.write_table(table.slice(0, 5), index / "part-0.parquet")  # two input files: 2+ partitions
    pq.write_table(table.slice(5), index / "part-1.parquet")

    cfg = RunConfig(
        work_dir=str(tmp_path / "work"),
        input=str(index),
        content_store=str(tmp_path / "store"),
        stages=("fetch",),
        spark=SparkConfig(master="local[2]", shuffle_partitions=3),
    )
    (stats,) = run_pipeline(cfg, log=lambda m: None)

    out = {r["path"]: r for r in pq.read_table(tmp_path / "work/fetch/data").to_pylist()}
    rejected = {r["path"]: r["reason"] for r in pq.read_table(tmp_path / "work/fetch/rejected").to_pylist()}
    assert sorted(out) == ["/copy/ok.py", "/empty.txt", "/latin.txt", "/ok.py"]
    assert out["/ok.py"]["content"] == "print('ok')\n" and out["/ok.py"]["src_encoding"] == "UTF-8"
    assert out["/latin.txt"]["content"].startswith("Déjà vu") and out["/latin.txt"]["src_encoding"] != "UTF-8"
    assert out["/latin.txt"]["length_bytes"] == len(out["/latin.txt"]["content"].encode())
    assert out["/empty.txt"]["length_bytes"] == 0
    assert rejected == {
        "/bin.dat": "binary",
        "/missing.py": "missing_object",
        "/corrupt.py": "corrupt_object",
        "/wrong.py": "hash_mismatch",
        "/huge.bin": "too_large",
    }
    assert (stats.rows_in, stats.rows_out, stats.rows_rejected) == (9, 4, 5)
    assert stats.extra["unique_blobs"] == 7  # the copy shares a blob; the too-large row is never requested


def test_published_nanosecond_timestamps_are_read(spark, tmp_path):
    """HF id tables store TIMESTAMP(NANOS), which Spark cannot read natively; inputs convert them."""
    import datetime as dt

    from pipelines._job import nanos_to_timestamps

    when = dt.datetime(2021, 1, 12, 3, 4, 5, 123456)
    pq.write_table(
        pa.table({"blob_id": ["a"], "visit_date": pa.array([when], pa.timestamp("ns"))}), tmp_path / "ids.parquet"
    )
    df = nanos_to_timestamps(spark.read.parquet(str(tmp_path / "ids.parquet")))
    assert dict(df.dtypes)["visit_date"] == "timestamp"
    assert df.first()["visit_date"] == when
