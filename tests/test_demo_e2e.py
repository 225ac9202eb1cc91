"""End to end: `stackv2 demo` on a few installed distributions runs every stage and writes a usable release."""

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pipelines._job import PIPELINE
from stackv2.schema import RELEASE
from stackv2.workdir import release_dir, tokens_dir

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "demo",
        "--out",
        str(out),
        "--max-repos",
        "6",
        "--max-files-per-repo",
        "60",
        "--set",
        "spark.master=local[2]",
        "--set",
        "spark.shuffle_partitions=2",
        "--set",
        "spark.driver_memory=2g",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "stackv2 run summary" in proc.stdout
    work = out / "work"
    for stage in PIPELINE:
        assert (work / stage / "_SUCCESS").exists(), stage
        stats = json.loads((work / stage / "_stats.json").read_text())
        assert stats["rows_in"] == stats["rows_out"] + stats["rows_rejected"], stage
    extract = json.loads((work / "extract/_stats.json").read_text())
    assert extract["extra"]["repositories"] == 6 and extract["rows_out"] > 50
    shards = sorted((release_dir(work) / "data").rglob("*.parquet"))
    assert shards
    table = pq.read_table(shards[0])
    assert [(f.name, f.type) for f in table.schema] == [(f.name, f.type) for f in RELEASE]
    assert table.num_rows > 0
    assert any(tokens_dir(work).rglob("*.bin"))
