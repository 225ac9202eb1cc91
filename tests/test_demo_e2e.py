"""End to end: `stackv2 demo` on a few installed distributions runs every stage and writes a usable release; with its
work folder on S3 (a real SeaweedFS on 127.0.0.1) it writes the same bytes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines._job import PIPELINE
from stackv2.release.products import PRODUCTS
from stackv2.schema import RELEASE, RELEASE_REPOS
from stackv2.workdir import release_dir, tokens_dir
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY
from tests.workfiles import assert_same, outputs

pytestmark = [pytest.mark.spark, pytest.mark.slow]
#: Small enough for a few minutes on 2 cores, every stage still keeping rows.
DEMO_ARGS = ["--max-repos", "6", "--max-files-per-repo", "60"]
DEMO_SETTINGS = ["spark.master=local[2]", "spark.shuffle_partitions=2", "spark.driver_memory=2g"]


def demo(out: Path, *settings: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipelines.cli", "demo", "--out", str(out), *DEMO_ARGS]
    for s in (*DEMO_SETTINGS, *settings):
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1500, check=False, env=env)


@pytest.fixture(scope="module")
def local_demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The demo on a local work folder: its output folder (archive, signatures, ``work``) and the process."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    return out, demo(out)


def test_demo_runs_every_stage(local_demo):
    out, proc = local_demo
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


@pytest.mark.s3
def test_demo_with_its_work_folder_on_s3_writes_the_local_bytes(local_demo, s3server, monkeypatch):
    """The same demo (same archive and signature database, so the same config hashes) with ``work_dir`` on a
    bucket: every file of the local work folder, byte for byte; the credentials appear in no output."""
    out, local = local_demo
    assert local.returncode == 0, local.stderr[-4000:]
    s3server.create_bucket("stackv2-demo")
    work = f"s3://stackv2-demo/demo-{os.getpid()}"
    aws = {
        "AWS_ENDPOINT_URL_S3": s3server.endpoint_url,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    proc = demo(out, f"work_dir={work}", env={**os.environ, **aws})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "stackv2 run summary" in proc.stdout
    assert SECRET_KEY not in proc.stdout + proc.stderr and ACCESS_KEY not in proc.stdout + proc.stderr
    for k, v in aws.items():
        monkeypatch.setenv(k, v)
    expected = outputs(out / "work")
    assert len(expected) > 100
    assert_same(expected, outputs(work))
