"""Runs with their work folder on S3 (a real SeaweedFS on 127.0.0.1, real Spark, the CLI in a subprocess): every
stage writes the bytes of the same run on a local folder; a run killed between a stage's last part and its manifest
leaves nothing a reader takes, and the rerun resumes to the same bytes; a storm of 503s during the commits is
ridden out. ``test_s3_workdir_storage.py`` tests the storage layer itself without Spark."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from gitutil import git

from pipelines._job import PIPELINE
from stackv2.storage import location
from stackv2.swh.archive import build_archive
from stackv2.workdir import LOCK, SUCCESS, committed_files
from tests.faultproxy import FaultProxy
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY
from tests.workfiles import assert_same, outputs

#: Two pipeline runs on a local folder for reference, then one or two on S3 per test: minutes each on 2 cores.
pytestmark = [pytest.mark.s3, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]
BUCKET = "stackv2-runs"
#: What the kill and storm tests run: enough stages for a resume chain, few enough to stay quick.
SHORT = ["extract", "optout", "fetch", "annotate"]


def aws_env(endpoint: str) -> dict[str, str]:
    """What a cluster job's environment gives pyarrow and boto3: endpoint, region, credentials."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }


@pytest.fixture(scope="module")
def s3(s3server) -> dict[str, str]:
    """The subprocesses' environment; ``here`` gives this process the same settings, to read what they wrote."""
    s3server.create_bucket(BUCKET)
    return aws_env(s3server.endpoint_url)


@pytest.fixture
def here(s3, monkeypatch) -> None:
    for k, v in s3.items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Two small repositories (one Python, one with a notebook and Go), enough for every stage to keep rows."""
    root = tmp_path_factory.mktemp("s3-archive")
    repos = []
    for name, files in (
        (
            "ada/calc",
            {
                f"calc/m{i}.py": f'"""Module {i}."""\n' + f"def f{i}(x):\n    return x * {i}\n" * (i + 2)
                for i in range(12)
            },
        ),
        ("bob/tools", {"main.go": "package main\n\nfunc main() {}\n", "README.md": "# tools\n\nSmall tools.\n"}),
    ):
        repo = root / name.replace("/", "-")
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        for path, text in files.items():
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "init")
        repos.append((repo, f"https://github.com/{name}"))
    for repo, url in repos:
        git(repo, "remote", "add", "origin", url)
    build_archive(root / "archive", git_repos=[r for r, _ in repos])
    return root / "archive"


def write_config(
    archive: Path, work: str, path: Path, stages: list[str], master: str = "local[2]", conf: dict | None = None
) -> Path:
    cfg = {
        "work_dir": work,
        "graph": str(archive / "orc"),
        "content_store": str(archive),
        "stages": stages,
        "spark": {"master": master, "shuffle_partitions": 2, "driver_memory": "1g", "conf": conf or {}},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def stackv2(env: dict[str, str], *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """The CLI in a subprocess (``code``: a script run instead of ``pipelines.cli``, given the same arguments)."""
    head = ["-c", code] if code else ["-m", "pipelines.cli"]
    return subprocess.run([sys.executable, *head, *args], capture_output=True, text=True, timeout=1200, env=env)


def run(
    archive: Path, work: str, yaml_path: Path, env: dict[str, str], stages: list[str]
) -> subprocess.CompletedProcess:
    return stackv2(env, "run", "--config", str(write_config(archive, work, yaml_path, stages)))


@pytest.fixture(scope="module")
def local_run(archive, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """The reference, every stage on a local folder; and its ``SHORT`` stages' files, which a run of those alone
    writes too (a stage's config hash depends on the stages before it, not on the ones selected after it)."""
    root = tmp_path_factory.mktemp("s3-local")
    proc = run(archive, str(root / "all"), root / "all.yaml", dict(os.environ), list(PIPELINE))
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = outputs(location(root / "all"))
    return {"all": found, "short": {k: v for k, v in found.items() if k.split("/")[0] in SHORT}}


def test_every_stage_on_s3_writes_the_bytes_of_a_local_run(archive, local_run, s3, here, tmp_path):
    work = location(f"s3://{BUCKET}/all-{os.getpid()}")
    proc = run(archive, work.uri, tmp_path / "s3.yaml", s3, list(PIPELINE))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "stackv2 run summary" in proc.stdout
    found = outputs(work)
    assert any(k.startswith("shards/release/") for k in found) and any(k.startswith("tokenize/tokens/") for k in found)
    assert any(k.startswith("report/") for k in found)
    assert not [k for k in found if "/." in f"/{k}"], "staging files left after the commits"
    assert_same(local_run["all"], found)
    check = stackv2(s3, "check", work.uri)
    assert check.returncode == 0, check.stdout + check.stderr


KILL_BEFORE_MANIFEST = """
import os, sys
import pipelines._job as job
from pipelines.cli import main
commit = job.write_manifest
def write_manifest(stage_dir, manifest):
    if job.location(stage_dir).name == sys.argv[1]:
        os._exit(137)  # as kill -9 would: every part written, no manifest, no cleanup
    commit(stage_dir, manifest)
job.write_manifest = write_manifest
sys.exit(main(sys.argv[2:]))
"""


def test_a_stage_killed_before_its_manifest_leaves_nothing_read_and_the_rerun_resumes(
    archive, local_run, s3, here, tmp_path
):
    work = location(f"s3://{BUCKET}/killed-{os.getpid()}")
    config = str(write_config(archive, work.uri, tmp_path / "killed.yaml", SHORT))
    killed = stackv2(s3, "fetch", "run", "--config", config, code=KILL_BEFORE_MANIFEST)
    assert killed.returncode == 137, killed.stderr[-4000:]
    fetch = work / "fetch"
    assert [f.name for f in (fetch / "data").files()] == ["part_00000.parquet", "part_00001.parquet"]
    assert not (fetch / SUCCESS).exists() and (work / LOCK).exists()  # the lease of a run that died
    with pytest.raises(FileNotFoundError, match="has not completed"):
        committed_files(fetch / "data")
    check = stackv2(s3, "check", work.uri)
    assert check.returncode != 0 and "stage fetch: not complete (no _SUCCESS)" in check.stdout + check.stderr
    assert not (work / LOCK).exists()  # check took over the dead run's lease (its pid is gone), then released it

    rerun = stackv2(s3, "run", "--config", config)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    for stage in ("extract", "optout"):
        assert f"stage {stage}: skipped" in rerun.stderr
    assert "stage fetch: done" in rerun.stderr and "stage annotate: done" in rerun.stderr
    assert_same(local_run["short"], outputs(work))


def test_a_storm_of_503s_during_the_commits_gives_the_same_bytes(archive, local_run, s3server, s3, here, tmp_path):
    """Every request of the run (driver and tasks) through a proxy answering a fifth of them 503 SlowDown."""
    proxy = FaultProxy("127.0.0.1", s3server.s3_port, fail_rate=0.2, seed=11).start()
    try:
        work = location(f"s3://{BUCKET}/storm-{os.getpid()}")
        proc = run(archive, work.uri, tmp_path / "storm.yaml", aws_env(proxy.endpoint_url), SHORT)
    finally:
        proxy.stop()
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proxy.injected_503 > 50, (proxy.requests, proxy.injected_503)
    assert_same(local_run["short"], outputs(work))


@pytest.mark.cluster
def test_a_standalone_cluster_run_on_s3_writes_the_bytes_of_a_local_run(
    archive, local_run, spark_cluster, s3, here, tmp_path
):
    """Executors on other processes (a master and two workers on loopback) get the store's settings as a cluster's
    would, from ``spark.executorEnv.*`` (docs/deploy.md), and write the local run's bytes to the bucket."""
    work = location(f"s3://{BUCKET}/cluster-{os.getpid()}")
    conf = {"spark.executor.memory": "512m", "spark.executor.cores": "1", "spark.cores.max": "2"}
    conf |= {f"spark.executorEnv.{k}": v for k, v in s3.items() if k.startswith("AWS_")}
    config = write_config(archive, work.uri, tmp_path / "cluster.yaml", SHORT, spark_cluster.master_url, conf)
    before = len(spark_cluster.state()["completedapps"])
    proc = stackv2(s3, "run", "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-4000:]
    deadline = time.monotonic() + 60  # the master learns of the driver's exit asynchronously
    while len(spark_cluster.state()["completedapps"]) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(spark_cluster.state()["completedapps"]) == before + 1, "the run did not go through the master"
    assert_same(local_run["short"], outputs(work))
