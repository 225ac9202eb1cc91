"""End to end: `stackv2 demo` on a few installed distributions runs every stage and writes a usable release."""

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pipelines._job import PIPELINE
from stackv2.release.products import PRODUCTS
from stackv2.schema import RELEASE, RELEASE_REPOS
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
    # every product, each in its folder with a manifest and a card; the training sets grouped by repository
    release = release_dir(work)
    notebooks = json.loads((work / "notebooks/_stats.json").read_text())
    for product in PRODUCTS:
        folder = release / product.name
        assert (folder / "manifest.json").is_file() and (folder / "README.md").is_file(), product.name
        shards = sorted((folder / "data").rglob("*.parquet"))
        listed = json.loads((folder / "manifest.json").read_text())["shards"]
        assert len(listed) == len(shards), product.name
        if product.stage == "notebooks":  # as many rows as the stage counted; the demo's notebook has no outputs
            kind = "scripts" if product.content == "content" else "structured"
            assert sum(s["rows"] for s in listed) == notebooks["extra"][kind], product.name
            if not shards:
                continue
        schema = RELEASE_REPOS if product.repo_level else RELEASE
        table = pq.read_table(shards[0])
        assert [(f.name, f.type) for f in table.schema] == [(f.name, f.type) for f in schema], product.name
        assert table.num_rows > 0
    counts = [json.loads((work / s / "_stats.json").read_text())["rows_out"] for s in ("exact_dedup", "near_dedup")]
    assert counts[0] >= counts[1] > 0
    assert any(tokens_dir(work).rglob("*.bin"))
    report = json.loads((work / "report" / "report.json").read_text())
    assert report["products"].keys() == {p.name for p in PRODUCTS}  # report.json sorts its keys

    # a released file's full SWHID, looked up from the command line
    first = pq.read_table(sorted((release / "the-stack-v2" / "data").rglob("*.parquet"))[0]).slice(0, 1).to_pylist()[0]
    look = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "provenance", "--work", str(work), "--blob-id", first["blob_id"]],
        capture_output=True,
        text=True,
        check=True,
    )
    swhid = json.loads(look.stdout.splitlines()[0])["swhid"]
    assert swhid.startswith(f"swh:1:cnt:{first['content_id']};origin=https://github.com/")
    assert f";anchor=swh:1:rev:{first['revision_id']};path=" in swhid
