"""Corruptions planted in a finished run's work folder (a truncated part, half a part, a stray copy, a dead task
attempt's file) are found by ``stackv2 check`` without running anything, said one line each by the rerun, and
repaired to the bytes of a clean run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from gitutil import git

from stackv2.swh.archive import build_archive
from tests.workfiles import outputs

pytestmark = [pytest.mark.spark, pytest.mark.slow]
STAGES = ["extract", "optout", "fetch", "annotate"]


def stackv2(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict]:
    """A finished run (``STAGES``) on a small repository, and its config (work_dir to be set)."""
    root = tmp_path_factory.mktemp("faults")
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(40):
        (repo / f"m{i}.py").write_text(f'"""Module {i}."""\n' + f"def f{i}(x):\n    return x * {i}\n" * (i + 1))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    build_archive(root / "archive", git_repos=[repo], origin_url="https://github.com/ada/faults")
    cfg = {
        "graph": str(root / "archive/orc"),
        "content_store": str(root / "archive"),
        "stages": STAGES,
        "spark": {"master": "local[2]", "shuffle_partitions": 3, "driver_memory": "1g"},
    }
    work = root / "clean"
    proc = stackv2("run", "--config", config(work, cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, cfg


def config(work: Path, cfg: dict) -> str:
    path = work.with_suffix(".yaml")
    path.write_text(yaml.safe_dump({**cfg, "work_dir": str(work)}))
    return str(path)


def half(p: Path) -> None:
    t = pq.read_table(p)
    pq.write_table(t.slice(0, t.num_rows // 2), p, compression="zstd")


def test_planted_corruptions_are_found_and_repaired(clean, tmp_path):
    work, cfg = clean
    broken = tmp_path / "broken"
    shutil.copytree(work, broken)
    data = {s: broken / s / "data" for s in STAGES}
    shutil.copy(data["extract"] / "part_00001.parquet", data["extract"] / ".part_00001.parquet.tmp-dead-3")
    shutil.copy(data["optout"] / "part_00002.parquet", data["optout"] / "part_00002 (copy).parquet")
    truncated = data["fetch"] / "part_00001.parquet"
    truncated.write_bytes(truncated.read_bytes()[:-100])
    half(data["annotate"] / "part_00000.parquet")

    check = stackv2("check", str(broken))
    assert check.returncode == 1, check.stdout + check.stderr
    found = check.stdout.splitlines()[:-1]
    assert found[:3] == [
        "stage extract: data/.part_00001.parquet.tmp-dead-3: not in the manifest (a stray file)",
        "stage optout: data/part_00002 (copy).parquet: not in the manifest (a stray file)",
        f"stage fetch: data/part_00001.parquet: {truncated.stat().st_size} bytes, the manifest says "
        f"{truncated.stat().st_size + 100}",
    ]
    assert len(found) == 4 and found[3].startswith("stage annotate: data/part_00000.parquet: ")

    rerun = stackv2("run", "--config", config(broken, cfg))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = rerun.stderr
    assert "[stackv2] stage extract: data/.part_00001.parquet.tmp-dead-3: not in the manifest" in log
    assert "[stackv2] stage extract: redoing it\n" in log
    for stage in STAGES[1:]:
        assert f"[stackv2] stage {stage}: redoing it (stage extract ran before it)" in log
    assert outputs(broken) == outputs(work)
    assert stackv2("check", str(broken)).returncode == 0


def test_half_a_part_late_in_a_run_redoes_that_stage(clean, tmp_path):
    """The probe's case: a part replaced by its first half, every ``_stats.json`` still balanced."""
    work, cfg = clean
    late = tmp_path / "late"
    shutil.copytree(work, late)
    half(late / "fetch" / "data" / "part_00002.parquet")
    rerun = stackv2("run", "--config", config(late, cfg))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = rerun.stderr
    assert "[stackv2] stage extract: skipped" in log and "[stackv2] stage optout: skipped" in log
    problem = next(line for line in log.splitlines() if line.startswith("[stackv2] stage fetch: data/"))
    assert problem.startswith("[stackv2] stage fetch: data/part_00002.parquet: ") and "the manifest says" in problem
    assert "[stackv2] stage annotate: redoing it (stage fetch ran before it)" in log
    assert outputs(late) == outputs(work)
