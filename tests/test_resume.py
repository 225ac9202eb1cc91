"""A run killed mid-way (``kill -9`` of the driver) and rerun: a second run started meanwhile is refused in one
line naming the first, the rerun takes over the dead run's lock, skips the completed stages and ends with
byte-identical output."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from gitutil import git

from stackv2.swh.archive import build_archive

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def stackv2(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kw,
    )


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "seconds" not in p.name
    }


def test_killed_run_resumes_to_identical_output(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(30):
        (repo / f"f{i}.py").write_text(f"def f{i}():\n    return {i}\n" * (i + 1))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    build_archive(tmp_path / "archive", git_repos=[repo], origin_url="https://github.com/ada/resume")

    def config(work: Path) -> Path:
        cfg = {
            "work_dir": str(work),
            "graph": str(tmp_path / "archive/orc"),
            "content_store": str(tmp_path / "archive"),
            "stages": ["extract", "fetch"],
            "spark": {"master": "local[2]", "shuffle_partitions": 3, "driver_memory": "1g"},
        }
        p = tmp_path / f"{work.name}.yaml"
        p.write_text(yaml.safe_dump(cfg))
        return p

    clean = stackv2("run", "--config", str(config(tmp_path / "clean")))
    out, _ = clean.communicate(timeout=600)
    assert clean.returncode == 0, out[-3000:]

    killed_cfg = config(tmp_path / "killed")
    first = stackv2("run", "--config", str(killed_cfg))
    marker = tmp_path / "killed/extract/_SUCCESS"
    deadline = time.monotonic() + 600
    while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "extract never completed"
    concurrent = stackv2("run", "--config", str(killed_cfg))
    refused, _ = concurrent.communicate(timeout=120)
    assert concurrent.returncode == 2 and refused.count("\n") == 1, refused
    assert refused.startswith(f"stackv2 run: error: work folder {tmp_path / 'killed'} is in use by pid {first.pid} ")
    os.killpg(first.pid, signal.SIGKILL)  # the driver and its JVM, in the middle of (or right before) fetch
    first.wait()
    assert not (tmp_path / "killed/fetch/_SUCCESS").exists()

    second = stackv2("run", "--config", str(killed_cfg))
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out[-3000:]
    assert f"taking over the lock of pid {first.pid}" in out
    assert "stage extract: skipped" in out
    for stage in ("extract", "fetch"):
        clean_files = files_of(tmp_path / "clean" / stage)
        assert clean_files, stage
        resumed = files_of(tmp_path / "killed" / stage)
        assert clean_files.keys() == resumed.keys()
        for name in clean_files:
            if name != "_stats.json":
                assert clean_files[name] == resumed[name], f"{stage}/{name} differs"
