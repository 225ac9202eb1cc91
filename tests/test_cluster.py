"""The pipeline on a real standalone Spark cluster (master + 2 workers on loopback) writes exactly the bytes of a
``local[2]`` run: the stage contract (hash-partition + sort on a unique key, pyarrow writer) makes outputs
independent of the executors, their number and the order tasks finish in.

The image and compose files (docker/) are checked too: docker cannot build or run here, so ``docker compose
config`` (or v1 ``docker-compose config``) validates the compose file where a client is installed, and the
structural checks catch what a build would only find much later."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from gitutil import git

from pipelines._job import PIPELINE, stage_problems
from stackv2.swh.archive import build_archive
from tests.sparkcluster import spark_home
from tests.workfiles import outputs

MIT = """MIT License

Copyright (c) 2023 Ada Lovelace

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software.
"""

#: Stages this test runs on the cluster: every registered stage that reads and writes Parquet through the stage
#: contract, up to dedup (its LSH banding and connected components are the shuffle-heaviest part of the pipeline).
#: pii, shards and tokenize use the same contract; they are left out to keep the test within a few minutes.
STAGES = [s for s in PIPELINE if s in ("extract", "optout", "fetch", "annotate", "filter", "dedup")]


REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"
OPTOUT = {"id": "oo-1", "date": "2023-11-01", "user": "bob", "repos": "all"}


def make_repo(path: Path, url: str, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "remote", "add", "origin", url)
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "init")
    return path


def corpus() -> dict[str, bytes]:
    """Code with near-duplicates, contact details for PII, a license, and rows every stage rejects."""
    files = {
        "LICENSE": MIT.encode(),
        "README.md": b"# app\n\nContact ada@example.org or 192.168.7.42.\n",
        "data.bin": bytes(range(256)) * 4,
    }
    for i in range(24):
        body = "".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}  # step {j}\n" for j in range(30))
        files[f"app/m{i}.py"] = (f'"""Module {i} by ada{i}@example.org."""\n' + body).encode()
        files[f"vendor/copy/m{i}.py"] = (f'"""Module {i} (vendored)."""\n' + body).encode()
    files["gen/long.js"] = ("var x = [" + ",".join(str(i) for i in range(3000)) + "];\n").encode()
    return files


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cluster-archive")
    files = corpus()
    repos = [
        make_repo(root / "app", "https://github.com/ada/app", files),
        # The same tree under another origin: extract rejects it as a duplicate root directory.
        make_repo(root / "mirror", "https://github.com/ada/app-mirror", files),
        # Opted out (OPTOUT): the optout stage rejects its files.
        make_repo(root / "bob", "https://github.com/bob/tiny", {"main.go": b"package main\n\nfunc main() {}\n"}),
    ]
    build_archive(root / "archive", git_repos=repos)
    (root / "archive" / "optout.jsonl").write_text(json.dumps(OPTOUT) + "\n")
    return root / "archive"


def run_pipeline(
    archive: Path, work: Path, master: str, conf: dict[str, str], stages: list[str] = STAGES, spark: dict | None = None
) -> str:
    cfg = {
        "work_dir": str(work),
        "graph": str(archive / "orc"),
        "content_store": str(archive),
        "stages": stages,
        "optout": {"registry": str(archive / "optout.jsonl")},
        "spark": {"master": master, "shuffle_partitions": 3, "driver_memory": "1g", "conf": conf, **(spark or {})},
    }
    path = work.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stderr


def finished_apps(cluster, n: int, timeout: float = 60) -> bool:
    """Whether the master lists ``n`` finished applications (it learns of a driver's exit asynchronously)."""
    deadline = time.monotonic() + timeout
    while len(cluster.state()["completedapps"]) < n:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


@pytest.mark.spark
@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(1800)  # two pipeline runs and a spark-submit: 3-4 minutes on an idle 2-core runner
def test_cluster_run_is_byte_identical_to_local(archive, spark_cluster, tmp_path):
    run_pipeline(archive, tmp_path / "local", "local[2]", {})
    cluster_log = run_pipeline(
        archive,
        tmp_path / "cluster",
        spark_cluster.master_url,
        {"spark.executor.memory": "512m", "spark.executor.cores": "1", "spark.cores.max": "2"},
    )
    assert finished_apps(spark_cluster, 1), "the run did not go through the standalone master"
    assert all(s in cluster_log for s in (f"stage {s}: done" for s in STAGES)), cluster_log[-3000:]

    # The same through spark-submit (how EMR/Dataproc/k8s jobs start): the submitted --master wins over the
    # config's local[2], and extract's bytes are again those of the local run.
    submit_cfg = tmp_path / "submit.yaml"
    submit_cfg.write_text(
        yaml.safe_dump(
            {
                **yaml.safe_load((tmp_path / "local.yaml").read_text()),
                "work_dir": str(tmp_path / "submit"),
                "stages": ["extract"],
            }
        )
    )
    proc = subprocess.run(
        [
            str(spark_home() / "bin" / "spark-submit"),
            "--master",
            spark_cluster.master_url,
            "--conf",
            "spark.executor.memory=512m",
            "--conf",
            "spark.cores.max=2",
            "--driver-memory",
            "1g",
            str(REPO / "docker" / "submit.py"),
            "run",
            "--config",
            str(submit_cfg),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert finished_apps(spark_cluster, 2), "spark-submit's --master was not used"

    local, cluster = outputs(tmp_path / "local"), outputs(tmp_path / "cluster")
    submitted = outputs(tmp_path / "submit")
    assert submitted and all(local[k] == v for k, v in submitted.items())
    for stage in STAGES:
        assert any(k.startswith(f"{stage}/data/part_") for k in local), f"{stage} wrote no data"
    assert any(k.startswith("extract/rejected/part_") for k in local)
    assert any(k.startswith("fetch/rejected/part_") for k in local)
    assert local.keys() == cluster.keys()
    differ = [k for k in local if local[k] != cluster[k]]
    assert not differ, f"cluster output differs from local[2]: {differ}"


def _python_fds(prefix: str) -> dict[int, str]:
    """pid -> the open file under ``prefix`` of every Python process holding one (what a writer task has open)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if "python" not in (proc / "comm").read_text():
                continue
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith(prefix):
                    found[int(proc.name)] = target
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _executor_of(pid: int) -> int:
    """The executor JVM above a Python worker (worker -> daemon -> java)."""
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
            return pid
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    raise AssertionError("no executor JVM above the writer")


@pytest.fixture(scope="module")
def wide_archive(tmp_path_factory) -> Path:
    """One repository of 3000 files: data parts of ~1000 rows, written one row group per row below."""
    root = tmp_path_factory.mktemp("wide-archive")
    files = {f"pkg{i // 100}/m{i}.py": f"x = {i}\n".encode() for i in range(3000)}
    build_archive(root / "archive", git_repos=[make_repo(root / "wide", "https://github.com/ada/wide", files)])
    (root / "archive" / "optout.jsonl").write_text(json.dumps(OPTOUT) + "\n")
    return root / "archive"


@pytest.mark.spark
@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_frozen_then_killed_writer_leaves_nothing_in_the_output(wide_archive, spark_cluster, tmp_path):
    """The probe's fault on a real cluster: a writer task of ``optout`` has its Python worker frozen (SIGSTOP) in
    the middle of its part file, then its executor killed; Spark retries the task on another executor and the
    stage commits. The dead attempt's file is nowhere in the output, the folder checks against its manifest and
    the bytes are those of a local run.

    ``optout`` because its writers read only files and shuffle outputs, which Spark recomputes when an executor
    is lost; ``extract``'s local checkpoints die with their executor and fail the stage (docs/resume.md)."""
    stages, slow = ["extract", "optout"], {"arrow_batch_size": 1}  # a row group per row: parts take seconds
    run_pipeline(wide_archive, tmp_path / "local", "local[2]", {}, stages=stages, spark=slow)
    work = tmp_path / "cluster"
    prefix = str(work / "optout" / ".data.tmp") + "/.part_"
    frozen: dict = {}

    def freeze_one_writer() -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and not frozen:
            for pid, target in _python_fds(prefix).items():
                os.kill(pid, signal.SIGSTOP)
                frozen.update(worker=pid, executor=_executor_of(pid), file=Path(target).name)
                os.kill(frozen["executor"], signal.SIGKILL)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=freeze_one_writer, daemon=True)
    watcher.start()
    try:
        log = run_pipeline(
            wide_archive,
            work,
            spark_cluster.master_url,
            {"spark.executor.memory": "512m", "spark.executor.cores": "1", "spark.cores.max": "2"},
            stages=stages,
            spark=slow,
        )
    finally:
        watcher.join(timeout=5)
        if frozen:  # usually gone with its executor's Python daemon already
            with contextlib.suppress(ProcessLookupError):
                os.kill(frozen["worker"], signal.SIGKILL)
    assert frozen, f"no writer was caught in the middle of its part file\n{log[-3000:]}"
    data = work / "optout" / "data"
    assert sorted(p.name for p in data.iterdir()) == [f"part_{i:05d}.parquet" for i in range(3)]
    assert frozen["file"].startswith(".part_") and not [p for p in work.rglob("*") if p.name == frozen["file"]]
    assert stage_problems(work, "extract") == stage_problems(work, "optout") == []
    local, cluster = outputs(tmp_path / "local"), outputs(work)
    assert local.keys() == cluster.keys() and all(local[k] == cluster[k] for k in local)


# --- docker/ ------------------------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def compose_client() -> list[str] | None:
    v2 = shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True)
    if v2 and v2.returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_compose_validates_with_the_docker_client():
    client = compose_client()
    if client is None:
        pytest.skip("no docker compose client installed")
    proc = subprocess.run(
        [*client, "-f", str(DOCKER / "compose.yaml"), "config", "-q"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_compose_services_form_a_cluster_with_s3_and_a_job():
    services = compose()["services"]
    assert set(services) == {"seaweedfs", "spark-master", "spark-worker-1", "spark-worker-2", "job"}
    roles = set(re.findall(r"^  ([a-z]+)\)$", (DOCKER / "entrypoint.sh").read_text(), re.MULTILINE))
    assert {"master", "worker", "demo"} <= roles
    for name, svc in services.items():
        assert svc["image"] == "stackv2:latest"
        assert (DOCKER / svc["build"]["context"]).resolve() == REPO
        assert (REPO / svc["build"]["dockerfile"]).is_file()
        assert svc["command"][0] in {*roles, "weed"}, f"{name}: unknown command {svc['command'][0]}"
    master = services["spark-master"]
    url = f"spark://{master['hostname']}:7077"
    for w in ("spark-worker-1", "spark-worker-2"):
        assert services[w]["command"] == ["worker"]
        assert services[w]["environment"]["SPARK_MASTER_URL"] == url
        assert "data:/data" in services[w]["volumes"], "executors write stage outputs to the shared volume"
    job = services["job"]
    assert set(job["depends_on"]) == set(services) - {"job"}
    assert job["environment"]["SPARK_MASTER_URL"] == url
    assert "data:/data" in job["volumes"]
    weed = services["seaweedfs"]["command"]
    port = next(a.split("=")[1] for a in weed if a.startswith("-s3.port="))
    assert job["environment"]["AWS_ENDPOINT_URL_S3"] == f"http://{services['seaweedfs']['hostname']}:{port}"


def test_s3_identities_grant_the_job_its_keys():
    ids = json.loads((DOCKER / "s3.json").read_text())["identities"]
    env = compose()["services"]["job"]["environment"]
    keys = {(c["accessKey"], c["secretKey"]): i["actions"] for i in ids for c in i.get("credentials", [])}
    assert {"Read", "Write", "List"} <= set(keys[(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])])


def test_dockerfile_installs_all_extras_and_matching_hadoop_aws():
    text = (DOCKER / "Dockerfile").read_text()
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    installed = set(re.search(r'pip install "\.\[([a-z,]+)\]"', text).group(1).split(","))
    assert installed == extras
    for src in re.findall(r"^COPY (\S+) ", text, re.MULTILINE):
        assert (REPO / src).exists(), src
    import pyspark

    jars = {p.name for p in (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar")}
    hadoop = re.search(r"ARG HADOOP_VERSION=(\S+)", text).group(1)
    assert jars == {f"hadoop-client-api-{hadoop}.jar"}, "hadoop-aws must match the Hadoop jars pyspark ships"


def test_entrypoint_is_valid_sh():
    assert subprocess.run(["sh", "-n", str(DOCKER / "entrypoint.sh")]).returncode == 0


# --- bench/scale ----------------------------------------------------------------------------------------------


def test_scale_generator_is_deterministic_with_duplicates_and_forks(tmp_path):
    import pyarrow.orc as orc

    from bench.scale.generate import ScaleSpec, generate

    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    for i in range(12):
        (src / "pkg" / f"m{i}.py").write_text(
            "".join(f"def f{i}_{j}(value):\n    return value + {j}\n" for j in range(20))
        )
    (src / "pkg" / "util.c").write_text("int add(int a, int b) { return a + b; }\n" * 5)
    (src / "MIT.LICENSE").write_text(MIT)
    spec = ScaleSpec(files=60, repo_files=(10, 20))
    one, two = generate(spec, tmp_path / "a", src, False), generate(spec, tmp_path / "b", src, False)
    assert one["exact"] + one["near"] + one["distinct"] + one["renamed"] == 60
    same = ("exact", "near", "distinct", "renamed", "bytes", "repos", "forks", "contents")
    assert {k: one[k] for k in same} == {k: two[k] for k in same}
    assert one["exact"] > 0 and one["near"] > 0 and one["forks"] >= 1
    assert one["renamed"] > 0, "13 pool files for 60 slots: distinct files beyond the pool are renamed copies"
    origins = sum(orc.read_table(p).num_rows for p in (tmp_path / "a" / "orc" / "origin").glob("*.orc"))
    assert origins == one["repos"] + one["forks"]
    for table in ("content", "directory_entry", "origin", "snapshot_branch"):
        a, b = sorted((tmp_path / "a" / "orc" / table).iterdir()), sorted((tmp_path / "b" / "orc" / table).iterdir())
        assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b], table


def test_scale_projection_fit_recovers_a_line():
    from bench.scale.project import fit

    a, b, residual = fit([500, 1000, 2000], [10 + 0.002 * x for x in (500, 1000, 2000)])
    assert (round(a, 6), round(b, 9), round(residual, 9)) == (10.0, 0.002, 0.0)


def test_scale_totals_per_gb_and_growth_per_file():
    from bench.scale.project import totals

    def run(label, files, cpu):
        stages = [
            {"stage": "extract", "rows_in": files, "bytes_in": files * 20_000, "cpu_seconds": cpu / 2},
            {"stage": "shards", "rows_in": files // 2, "bytes_in": files * 5_000, "cpu_seconds": cpu / 2},
            {"stage": "tokenize", "rows_in": files // 2, "bytes_in": files * 5_000, "cpu_seconds": 99.0},
        ]
        return {"label": label, "stages": stages}

    small, big = totals([run("1m", 1_000_000, 6_600.0), run("200k", 200_000, 1_200.0)])
    assert (small["label"], small["gb"], small["cpu_seconds"], small["cpu_s_per_gb"]) == ("200k", 4.0, 1200.0, 300.0)
    assert (big["cpu_s_per_gb"], big["cpu_ms_per_file"], big["per_file_vs_smallest"]) == (330.0, 6.6, 1.1)
    assert small["stages"] == "extract..shards"
    assert totals([run("x", 10, 10.0)], through="tokenize")[0]["cpu_seconds"] == 109.0
