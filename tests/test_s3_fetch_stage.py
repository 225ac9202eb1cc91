"""The ``fetch`` pipeline stage on a published id table (``bigcode/the-stack-v2`` columns: no ``length``, a
``src_encoding``) and an ``s3://`` content store: the lean reader inside Spark tasks, against a real SeaweedFS
through a proxy answering 10% of requests with 503 SlowDown. Exact accounting by reason."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.runner import run_pipeline
from stackv2.config import FetchConfig, RunConfig, SparkConfig
from stackv2.schema import RELEASE, RELEASE_ID_COLUMNS
from tests.faultproxy import FaultProxy
from tests.s3server import fault_corpus, upload_corpus

pytestmark = [pytest.mark.s3, pytest.mark.spark, pytest.mark.slow]
BUCKET = "swh-stage-tests"


def test_fetch_stage_on_published_ids_from_s3_with_throttling(spark, s3server, tmp_path):
    blobs = fault_corpus(n_good=12, bomb=False)
    upload_corpus(s3server, BUCKET, blobs, prefix="archive/content/")
    rows = [
        {
            "repo_name": "o/r",
            "directory_id": "d" * 40,
            "path": f"/f{i}",
            "blob_id": b.blob_id,
            "content_id": b.content_id,
            "src_encoding": b.src_encoding,
            "language": "Python",
        }
        for i, b in enumerate(blobs)
    ]
    schema = pa.schema([RELEASE.field(c) for c in RELEASE_ID_COLUMNS])
    index = tmp_path / "index"
    index.mkdir()
    table = pa.Table.from_pylist(rows, schema=schema)
    # Spark reads no Parquet TIMESTAMP(NANOS) (the published files' type): store microseconds here.
    pq.write_table(table.slice(0, 10), index / "part-0.parquet", coerce_timestamps="us")
    pq.write_table(table.slice(10), index / "part-1.parquet", coerce_timestamps="us")
    proxy = FaultProxy("127.0.0.1", s3server.s3_port, fail_rate=0.1, seed=1).start()
    try:
        cfg = RunConfig(
            work_dir=str(tmp_path / "work"),
            input=str(index),
            content_store=f"s3://{BUCKET}/archive",
            stages=("fetch",),
            spark=SparkConfig(master="local[2]", shuffle_partitions=3),
            fetch=FetchConfig(endpoint_url=proxy.endpoint_url, unsigned=True, concurrency=4),
        )
        (stats,) = run_pipeline(cfg, log=lambda m: None)
    finally:
        proxy.stop()
    assert proxy.injected_503 > 0
    out = {r["blob_id"]: r for r in pq.read_table(tmp_path / "work/fetch/data").to_pylist()}
    rejected = {r["blob_id"]: r["reason"] for r in pq.read_table(tmp_path / "work/fetch/rejected").to_pylist()}
    expected = {b.blob_id: b.reason for b in blobs if b.reason}
    assert rejected == expected  # includes Latin-1 bytes published as UTF-8: ``undecodable``
    assert stats.rejected == dict(Counter(expected.values()))
    for b in blobs:
        if b.reason is None:
            assert (out[b.blob_id]["content"], out[b.blob_id]["src_encoding"]) == (b.text, b.src_encoding)
    assert stats.rows_in == len(blobs) == stats.rows_out + stats.rows_rejected
