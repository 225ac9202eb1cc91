"""Names are bytes: a repository whose file, directory and branch names are not UTF-8 is archived with its bytes,
and extract keeps or rejects every entry with a reason: it never fails, never merges two files into one path, and
never releases a symbolic link as a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest
import yaml
from gitutil import GIT_ENV, git

from pipelines._job import StageContext, run_stage
from pipelines.stages.extract import STAGE
from stackv2.config import RunConfig, SparkConfig
from stackv2.swh.archive.graph import FILE_PERMS, GraphBuilder
from stackv2.swh.content_store import LocalStore
from stackv2.workdir import committed_files

LATIN1 = b"caf\xe9.py"  # "café.py" in Latin-1: not UTF-8
OTHER = b"caf\xe8.py"  # another Latin-1 name: Spark 3's decode made both "caf\ufffd.py"
UTF8 = "café.py".encode()
BAD_DIR = b"d\xff\xfe"  # a directory whose name is not UTF-8: every file under it is undecodable
BRANCH = b"refs/heads/caf\xe9"


def write(repo: Path, name: bytes, data: bytes) -> None:
    path = os.path.join(os.fsencode(repo), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def raw_repo(root: Path) -> Path:
    """A git repository with names git stores as bytes: Latin-1 file names, a directory name of invalid bytes, a
    symbolic link, and a branch whose name is not UTF-8."""
    repo = root / "raw"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, b"ok.py", b"def ok():\n    return 1\n")
    write(repo, UTF8, b"def cafe():\n    return 2\n")
    write(repo, LATIN1, b"def latin():\n    return 3\n")
    write(repo, OTHER, b"def other():\n    return 4\n")
    write(repo, BAD_DIR + b"/inner.py", b"def inner():\n    return 5\n")
    os.symlink(b"ok.py", os.path.join(os.fsencode(repo), b"link.py"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "names")
    subprocess.run(
        [b"git", b"-C", os.fsencode(repo), b"branch", BRANCH[len(b"refs/heads/") :]], check=True, env=GIT_ENV
    )
    return repo


@pytest.fixture(scope="module")
def raw_archive(tmp_path_factory) -> Path:
    """``stackv2 archive build --from-git`` on the repository (git's bytes, kept as bytes)."""
    root = tmp_path_factory.mktemp("names")
    repo = raw_repo(root)
    out = root / "archive"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "archive", "build", "--from-git", str(repo), "--out", str(out),
         "--origin-url", "https://github.com/ada/names"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def table(archive: Path, name: str) -> list[dict]:
    return orc.read_table(next((archive / "orc" / name).glob("*.orc"))).to_pylist()


def test_names_are_archived_as_bytes(raw_archive):
    names = {e["name"] for e in table(raw_archive, "directory_entry")}
    assert {b"ok.py", UTF8, LATIN1, OTHER, BAD_DIR, b"inner.py", b"link.py"} <= names
    links = [e for e in table(raw_archive, "directory_entry") if e["name"] == b"link.py"]
    assert [(e["type"], e["perms"]) for e in links] == [("file", 0o120000)]
    assert BRANCH in {b["name"] for b in table(raw_archive, "snapshot_branch")}
    # ids are git's own: the head revision's root directory is the commit's tree
    repo = raw_archive.parent / "raw"
    heads = {r["directory"] for r in table(raw_archive, "revision")}
    assert heads == {git(repo, "rev-parse", "HEAD^{tree}")}


def with_duplicate_entry(archive: Path, out: Path) -> Path:
    """The archive's graph plus a second ``ok.py`` entry in the root directory (another blob): a malformed tree SWH
    keeps as it is."""
    builder = GraphBuilder(LocalStore(out))
    for name in builder.rows:
        builder.rows[name] = table(archive, name)
    root = next(r["directory"] for r in table(archive, "revision"))
    blob = builder.add_content(b"def ok():\n    return 'the other one'\n")
    builder.rows["directory_entry"].append(
        {"directory_id": root, "name": b"ok.py", "type": "file", "target": blob.hex(), "perms": FILE_PERMS}
    )
    builder.write(out / "orc")
    return out


@pytest.mark.spark
def test_extract_rejects_undecodable_names_and_links_and_merges_nothing(spark, raw_archive, tmp_path):
    graph = with_duplicate_entry(raw_archive, tmp_path / "archive")
    work = tmp_path / "work"
    cfg = RunConfig(
        work_dir=str(work), graph=str(graph / "orc"), spark=SparkConfig(master="local[2]", shuffle_partitions=3)
    )
    ctx = StageContext(spark=spark, cfg=cfg, work_dir=work, previous=None, config_hash="t")
    stats, _ = run_stage(ctx, "extract", STAGE.run)
    data = pq.read_table(committed_files(work / "extract" / "data")).to_pylist()
    rejected = pq.read_table(committed_files(work / "extract" / "rejected")).to_pylist()

    assert sorted(r["path"] for r in data) == ["/café.py", "/ok.py"]
    assert not pq.read_schema(committed_files(work / "extract" / "data")[0]).field("path").nullable  # as before
    assert {r["branch_name"] for r in data} == {"refs/heads/main"}  # the non-UTF-8 branch neither chosen nor fatal
    shown = lambda name: "/" + name.decode("utf-8", "replace")  # noqa: E731 - what Spark 3's decode gave
    assert sorted((r["reason"], r["path"]) for r in rejected) == sorted(
        [
            ("undecodable_name", shown(LATIN1)),
            ("undecodable_name", shown(OTHER)),  # the same text as LATIN1's, still its own row
            ("undecodable_name", shown(BAD_DIR + b"/inner.py")),
            ("symlink", "/link.py"),
            ("duplicate_name", "/ok.py"),
        ]
    )
    assert shown(LATIN1) == shown(OTHER) == "/caf\ufffd.py"
    # Every file entry of the tree is accounted for exactly once: 5 regular files, the link, the second ok.py.
    assert len(data) + len(rejected) == 7
    kept_ok = next(r for r in data if r["path"] == "/ok.py")
    dup_ok = next(r for r in rejected if r["reason"] == "duplicate_name")
    assert kept_ok["content_id"] < dup_ok["target"]  # the first by (type, target) is kept
    assert stats.rows_in == stats.rows_out + stats.rows_rejected == 7
    assert stats.rejected == {"undecodable_name": 3, "symlink": 1, "duplicate_name": 1}


@pytest.mark.spark
def test_spark_utf8_validity_is_pythons(spark):
    """Extract trusts Spark's ``is_valid_utf8`` and ``make_valid_utf8``: they agree with Python's strict and
    ``errors="replace"`` decoding on the sequences UTF-8 forbids."""
    from pyspark.sql import functions as F

    samples = [
        b"plain",
        UTF8,
        LATIN1,
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"\xf4\x90\x80\x80",
        b"x\xf0\x9f\x98",
        b"\xe2\x82",
    ]
    df = spark.createDataFrame([(bytearray(s),) for s in samples], "b binary")
    rows = df.select(
        F.is_valid_utf8(F.col("b").cast("string")).alias("ok"), F.make_valid_utf8(F.col("b").cast("string")).alias("t")
    ).collect()

    def strict(b: bytes) -> bool:
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    assert [r["ok"] for r in rows] == [strict(s) for s in samples]
    assert [r["t"] for r in rows] == [s.decode("utf-8", "replace") for s in samples]


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_non_utf8_names_run_end_to_end(raw_archive, tmp_path):
    """Every stage, from the graph to token files, on the repository with raw-byte names; then ``stackv2 check``."""
    work = tmp_path / "work"
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "work_dir": str(work),
                "graph": str(raw_archive / "orc"),
                "content_store": str(raw_archive),
                "tokenize": {"vocab_size": 300},
                "spark": {"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "1g"},
            }
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-4000:]
    extract = json.loads((work / "extract" / "_stats.json").read_text())
    assert extract["rejected"] == {"undecodable_name": 3, "symlink": 1}
    assert extract["rows_out"] == 2
    tokenized = pq.read_table(committed_files(work / "tokenize" / "data")).to_pylist()
    assert sorted(r["path"] for r in tokenized) == ["/café.py", "/ok.py"]
    check = subprocess.run([sys.executable, "-m", "pipelines.cli", "check", str(work)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
