"""Every command error is one line on stderr and exit code 2, never a traceback (pipelines/cli.py ``main``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from tests.gitutil import git


def fails_in_one_line(capsys, argv: list[str], *expected: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"stackv2 {argv[0]}: error: "), err
    for text in expected:
        assert text in err, err
    return err


@pytest.fixture
def run_yaml(tmp_path) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(f"work_dir: {tmp_path / 'work'}\n")
    return str(path)


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder this process cannot write into. Root ignores permission bits, so as root: sysfs, which refuses
    even root."""
    if os.geteuid() == 0:
        if not Path("/sys/kernel").is_dir():
            pytest.skip("running as root without sysfs: no folder root cannot write")
        yield Path("/sys/kernel/stackv2-test")
        return
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def test_pii_given_a_folder(capsys, tmp_path):
    fails_in_one_line(capsys, ["pii", str(tmp_path)], str(tmp_path), "is not a file")


@pytest.mark.parametrize("value", ["spark.master=[x", "pii.entities={", "fetch.max_length=: :"])
def test_yaml_error_inside_set(capsys, run_yaml, value):
    fails_in_one_line(capsys, ["run", "--config", run_yaml, "--set", value, "--dry-run"], "not valid YAML", "line 1")


def test_yaml_error_in_the_config_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extract:\n  max_depth: [1\n")
    fails_in_one_line(capsys, ["run", "--config", str(bad), "--dry-run"], str(bad), "not valid YAML", "line 3")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("spark.shuffle_partitions=0", "spark.shuffle_partitions must be > 0, got 0"),
        ("fetch.max_length=-5", "fetch.max_length must be > 0, got -5"),
        ("spark.master=bogus://x", "spark.master must be one of local, local[N], local[*]"),
        ("fetch.concurrency=0", "fetch.concurrency must be > 0"),
    ],
)
def test_dry_run_rejects_bad_values(capsys, tmp_path, setting, expected):
    argv = ["fetch", "--index", "i", "--content-store", "c", "--out", str(tmp_path), "--set", setting, "--dry-run"]
    fails_in_one_line(capsys, argv, expected)


def test_reproduce_flag_out_of_range(capsys, tmp_path):
    argv = ["reproduce", "--ids", "x.parquet", "--out", str(tmp_path / "out"), "--concurrency", "0", "--no-spark"]
    fails_in_one_line(capsys, argv, "fetch.concurrency must be > 0, got 0")


def test_reproduce_bad_master_flag(capsys, tmp_path):
    argv = ["reproduce", "--ids", "x.parquet", "--out", str(tmp_path / "out"), "--master", "bogus://x"]
    fails_in_one_line(capsys, argv, "spark.master must be one of", "'bogus://x'")


def _null_blob_id_tables(tmp_path) -> dict[str, Path]:
    file_level = pa.table(
        {
            "blob_id": pa.array([None, "a" * 40], pa.string()),
            "language": ["Python", "Python"],
            "repo_name": ["o/a", "o/b"],
            "path": ["x.py", "y.py"],
            "src_encoding": ["UTF-8", "UTF-8"],
        }
    )
    files = pa.array(
        [[{"blob_id": "b" * 40, "path": "a.py"}, {"blob_id": None, "path": "b.py"}]],
        pa.list_(pa.struct([("blob_id", pa.string()), ("path", pa.string())])),
    )
    repo_level = pa.table({"repo_name": ["o/a"], "snapshot_id": ["c" * 40], "files": files})
    paths = {"file": tmp_path / "file.parquet", "repo": tmp_path / "repo.parquet"}
    pq.write_table(file_level, paths["file"])
    pq.write_table(repo_level, paths["repo"])
    return paths


@pytest.mark.parametrize("level", ["file", "repo"])
def test_reproduce_null_blob_id(capsys, tmp_path, level):
    ids = _null_blob_id_tables(tmp_path)[level]
    argv = ["reproduce", "--ids", str(ids), "--out", str(tmp_path / "out"), "--no-spark"]
    argv += ["--endpoint-url", "http://127.0.0.1:9", "--no-sign-request"]  # never reached
    fails_in_one_line(capsys, argv, str(ids), "blob_id is null in 1 of 2 files")


def test_read_only_output_folder(capsys, tmp_path, run_yaml, read_only_dir):
    out = str(read_only_dir / "out")
    fails_in_one_line(capsys, ["run", "--config", run_yaml, "--set", f"work_dir={out}"], f"output folder {out}")
    fails_in_one_line(capsys, ["archive", "build", "--from-installed", "--out", out], "is not writable")
    argv = ["reproduce", "--ids", "x.parquet", "--out", out, "--no-spark"]
    fails_in_one_line(capsys, argv, f"output folder {out} is not writable")


def test_archive_of_a_repository_without_commits(capsys, tmp_path):
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q")
    argv = ["archive", "build", "--from-git", str(repo), "--out", str(tmp_path / "archive")]
    fails_in_one_line(capsys, argv, f"{repo} has no commits")


def test_the_installed_command_prints_no_traceback(tmp_path):
    """The console script, end to end: exit code 2, one line."""
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "pii", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr == f"stackv2 pii: error: {tmp_path} is not a file\n"
