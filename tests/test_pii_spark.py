"""The ``pii`` Spark stage: content redacted, counts and spans written, no row lost, output independent of the
input partitioning."""

from __future__ import annotations

import json

import pytest

from pipelines._job import StageContext, run_stage
from pipelines.stages.pii import STAGE
from stackv2.config import RunConfig, SparkConfig
from stackv2.schema import PII_COUNT_FIELDS, PII_SPANS
from stackv2.workdir import adopt_outputs
from udfs.pii import COUNT_COLUMNS

ROWS = [
    ("d1", "a.py", "b1", "AUTHOR = 'jane.doe@acme-corp.io'\nHOST = '84.20.33.101'\n"),
    ("d1", "b.py", "b2", 'token = "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"\npassword = "hunter2!"\n'),
    ("d2", "c.py", "b3", "def f(x):\n    return x + 1\n"),
    ("d2", "d.txt", "b4", ""),
    ("d3", "e.py", "b5", None),
    ("d3", "f.py", "b6", "local = '192.168.0.7'\nversion = '1.2.3.4'\n"),
]


def _input(spark, tmp_path, partitions: int):
    df = spark.createDataFrame(ROWS, "directory_id string, path string, blob_id string, content string")
    df.withColumn("language", df.path.substr(-2, 2)).repartition(partitions).write.parquet(
        str(tmp_path / "near_dedup" / "data")
    )
    adopt_outputs(tmp_path / "near_dedup")


def _run(spark, tmp_path, partitions: int):
    _input(spark, tmp_path, partitions)
    cfg = RunConfig(work_dir=str(tmp_path), spark=SparkConfig(shuffle_partitions=3))
    ctx = StageContext(spark=spark, cfg=cfg, work_dir=tmp_path, previous="near_dedup", config_hash="h")
    stats, skipped = run_stage(ctx, "pii", STAGE.run)
    assert not skipped
    return stats


def test_count_columns_match_redacted_types():
    assert set(COUNT_COLUMNS) == {f.name for f in PII_COUNT_FIELDS}


@pytest.mark.spark
def test_pii_stage(spark, tmp_path):
    stats = _run(spark, tmp_path, partitions=3)
    assert stats.rows_in == stats.rows_out == len(ROWS) and stats.rows_rejected == 0
    assert stats.extra["redactions"] == {"email": 1, "ip_address": 1, "key": 1, "password": 1, "name": 0}
    assert stats.extra["files_with_pii"] == 2

    rows = {r["path"]: r for r in spark.read.parquet(str(tmp_path / "pii" / "data")).collect()}
    assert rows["a.py"]["content"].startswith("AUTHOR = '<EMAIL>'\nHOST = '")
    assert "84.20.33.101" not in rows["a.py"]["content"]
    assert rows["b.py"]["content"] == 'token = "<KEY>"\npassword = "<PASSWORD>"\n'
    assert rows["c.py"]["content"] == ROWS[2][3] and rows["f.py"]["content"] == ROWS[5][3]
    assert rows["d.txt"]["content"] == "" and rows["e.py"]["content"] is None
    assert rows["a.py"]["language"] == "py"  # other columns pass through
    assert (rows["a.py"]["pii_email"], rows["a.py"]["pii_ip_address"], rows["a.py"]["pii_key"]) == (1, 1, 0)

    spans = spark.read.parquet(str(tmp_path / "pii" / "spans"))
    assert spans.columns == PII_SPANS.names
    got = sorted(
        (r["path"], r["entity"], ROWS[[x[1] for x in ROWS].index(r["path"])][3][r["start"] : r["end"]])
        for r in spans.collect()
    )
    assert got == [
        ("a.py", "EMAIL", "jane.doe@acme-corp.io"),
        ("a.py", "IP_ADDRESS", "84.20.33.101"),
        ("b.py", "KEY", "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"),
        ("b.py", "PASSWORD", "hunter2!"),
    ]
    saved = json.loads((tmp_path / "pii" / "_stats.json").read_text())
    assert saved["rows_out"] == len(ROWS)


@pytest.mark.spark
@pytest.mark.slow
def test_pii_output_does_not_depend_on_input_partitioning(spark, tmp_path):
    outputs = []
    for i, partitions in enumerate((1, 4)):
        work = tmp_path / str(i)
        _run(spark, work, partitions)
        outputs.append(
            {
                p.relative_to(work / "pii").as_posix(): p.read_bytes()
                for p in sorted((work / "pii").rglob("part_*.parquet"))
            }
        )
    assert outputs[0] == outputs[1] and outputs[0]
