"""Build-time stage ``optout`` on Spark: opted-out repositories leave the file index before anything is fetched."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines._job import PIPELINE, REJECTED, StageContext, run_stage
from pipelines.stages.optout import STAGE
from stackv2.config import RunConfig, SparkConfig
from stackv2.optout.config import OptOutConfig
from stackv2.optout.registry import RegistryError
from stackv2.schema import FILE_INDEX

pytestmark = pytest.mark.spark

ROWS = [
    # (repo_name, github_id, path)
    ("Alice/one", 1, "a.py"),
    ("alice/two", 2, "b.py"),
    ("alice/two", 2, "c/d.py"),
    ("bob/renamed", 42, "x.js"),
    ("bob/old-name", 43, "y.js"),
    ("carol/keep", 5, "k.py"),
    ("carol/keep", 5, "l.py"),
    ("dave/keep", None, "m.c"),
    ("malice/keep", 6, "n.py"),
]
REGISTRY = [
    {"id": "oo-1", "date": "2023-11-01", "user": "ALICE", "repos": "all"},
    {"id": "oo-2", "date": "2023-11-02", "user": "bob", "repos": [{"repo": "bob/old-name", "github_id": 42}]},
]


def write_index(folder: Path, files: int) -> Path:
    rows = [
        {
            "repo_name": r,
            "repo_url": f"https://github.com/{r}",
            "github_id": g,
            "path": p,
            "blob_id": f"{i:040x}",
            "content_id": f"{i + 100:040x}",
            "length": 10 * i,
        }
        for i, (r, g, p) in enumerate(ROWS)
    ]
    table = pa.Table.from_pylist(rows, schema=FILE_INDEX)
    folder.mkdir(parents=True)
    step = -(-len(rows) // files)
    for k in range(files):  # several input files => several input partitions
        pq.write_table(
            table.slice(k * step, step),
            folder / f"part-{k}.parquet",
            coerce_timestamps="us",
            allow_truncated_timestamps=True,
        )
    return folder


def run(spark, tmp: Path, registry: Path | None, files: int, partitions: int = 4):
    cfg = RunConfig(
        work_dir=str(tmp / "work"),
        input=str(write_index(tmp / "index", files)),
        optout=OptOutConfig(registry=str(registry) if registry else None),
        spark=SparkConfig(shuffle_partitions=partitions),
    )
    ctx = StageContext(spark=spark, cfg=cfg, work_dir=tmp / "work", previous=None, config_hash="test")
    stats, skipped = run_stage(ctx, "optout", STAGE.run)
    assert not skipped
    return stats, tmp / "work" / "optout"


def test_registered_between_extract_and_fetch():
    names = list(PIPELINE)
    assert names.index("extract") + 1 == names.index("optout") < names.index("fetch")


def test_stage_removes_opted_out_repos(spark, tmp_path):
    registry = tmp_path / "reg.jsonl"
    registry.write_text("".join(json.dumps(r) + "\n" for r in REGISTRY))
    stats, out = run(spark, tmp_path, registry, files=3, partitions=2)
    assert spark.read.parquet(str(tmp_path / "index")).rdd.getNumPartitions() >= 2
    kept = pq.read_table(out / "data")
    assert kept.schema.names == FILE_INDEX.names
    assert sorted(zip(kept["repo_name"].to_pylist(), kept["path"].to_pylist(), strict=True)) == [
        ("bob/old-name", "y.js"),
        ("carol/keep", "k.py"),
        ("carol/keep", "l.py"),
        ("dave/keep", "m.c"),
        ("malice/keep", "n.py"),
    ]
    rej = pq.read_table(out / REJECTED).sort_by("path").to_pylist()
    assert [(r["repo_name"], r["path"], r["reason"], r["optout_request"]) for r in rej] == [
        ("Alice/one", "a.py", "opted_out", "oo-1"),
        ("alice/two", "b.py", "opted_out", "oo-1"),
        ("alice/two", "c/d.py", "opted_out", "oo-1"),
        ("bob/renamed", "x.js", "opted_out", "oo-2"),
    ]
    assert (stats.rows_in, stats.rows_out, stats.rejected) == (9, 5, {"opted_out": 4})
    assert stats.extra["files_per_request"] == {"oo-1": 3, "oo-2": 1}
    assert stats.extra["registry_date"] == "2023-11-02"
    assert (out / "_SUCCESS").exists()


def test_no_registry_passes_every_row(spark, tmp_path):
    stats, out = run(spark, tmp_path, None, files=2)
    assert (stats.rows_in, stats.rows_out, stats.rejected) == (9, 9, {})
    assert pq.read_table(out / "data").num_rows == 9 and not (out / REJECTED).exists()


def test_invalid_registry_stops_before_any_output(spark, tmp_path):
    registry = tmp_path / "reg.jsonl"
    registry.write_text(json.dumps(REGISTRY[0]) + "\n" + '{"id": "x", "user": "eve", "repos": "all"}\n')
    with pytest.raises(RegistryError, match=r"reg\.jsonl:2: missing key\(s\) \['date'\]"):
        run(spark, tmp_path, registry, files=2)
    assert not (tmp_path / "work" / "optout" / "_SUCCESS").exists()
    assert not (tmp_path / "work" / "optout" / "data").exists()
