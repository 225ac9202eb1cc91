"""``stackv2 reproduce`` end to end against a real SeaweedFS: file- and repo-level id tables, exact accounting by
reason, the HF layout, each blob fetched once, ids read from S3, identical output whatever the input order, and
resume after a real ``kill -9``."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.reproduce import spark_map
from stackv2.reproduce.config import ReproduceConfig
from stackv2.reproduce.run import MARKERS, SUMMARY, reproduce
from stackv2.schema import RELEASE
from stackv2.swh.config import FetchConfig
from tests.faultproxy import FaultProxy
from tests.s3server import ACCESS_KEY, SECRET_KEY, fault_corpus, put_objects, upload_corpus

pytestmark = pytest.mark.s3
BUCKET = "swh-reproduce-tests"
REPO = Path(__file__).resolve().parent.parent
FILE_IDS = pa.schema([f for f in RELEASE if f.name != "content"])


@pytest.fixture(scope="module")
def corpus(s3server):
    blobs = fault_corpus(n_good=30)
    upload_corpus(s3server, BUCKET, blobs)
    return blobs


def _file_rows(blobs) -> list[dict]:
    """One row per blob in repo ``org/a``; good blobs also in ``org/b`` (rows sharing a blob)."""
    rows = []
    for i, b in enumerate(blobs):
        for repo in ("org/a", "org/b") if b.reason is None and i % 2 else ("org/a",):
            rows.append(
                {
                    "blob_id": b.blob_id,
                    "content_id": b.content_id,
                    "path": f"/src/f{i}.py",
                    "repo_name": repo,
                    "language": "Python" if i % 3 else "C++",
                    "src_encoding": b.src_encoding,
                    "detected_licenses": ["MIT"],
                    "license_type": "permissive",
                    "length_bytes": 1,
                }
            )
    return rows


def _write(rows, path: Path, schema=FILE_IDS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema), path)
    return path


def _cfg(endpoint: str, **kw) -> ReproduceConfig:
    fetch = FetchConfig(endpoint_url=endpoint, unsigned=True, concurrency=8, backoff_base=0.01, backoff_max=0.1)
    return ReproduceConfig(bucket=BUCKET, fetch=fetch, progress_every=3600, **kw)


def _read_dir(root: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted(root.rglob("*.parquet"))])


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        f.relative_to(root).as_posix(): f.read_bytes()
        for f in sorted(root.rglob("*.parquet"))
        if f.relative_to(root).parts[0] in ("data", "rejected")
    }


def test_file_level(s3server, corpus, tmp_path):
    rows = _file_rows(corpus)
    ids = _write(rows, tmp_path / "ids" / "part-0.parquet")
    summary = reproduce(
        [str(ids)], str(tmp_path / "out"), _cfg(s3server.endpoint_url, rows_per_shard=20), log=lambda m: None
    )
    out = tmp_path / "out"
    by_blob = {b.blob_id: b for b in corpus}
    expected = Counter(by_blob[r["blob_id"]].reason for r in rows if by_blob[r["blob_id"]].reason)
    assert summary["rejected"] == dict(sorted(expected.items()))
    assert summary["items_in"] == summary["rows_in"] == len(rows)
    assert summary["items_out"] == len(rows) - sum(expected.values())
    assert summary["objects"] == len(corpus)  # each blob fetched once, though 15 are shared by two rows
    assert sorted(p.relative_to(out).as_posix() for p in (out / "data").rglob("*.parquet")) == [
        "data/C++/train-00000-of-00001.parquet",
        "data/Python/train-00000-of-00002.parquet",
        "data/Python/train-00001-of-00002.parquet",
    ]

    data = _read_dir(out / "data")
    assert data.schema.names == RELEASE.names
    assert data.num_rows == summary["items_out"]
    for r in data.to_pylist():
        b = by_blob[r["blob_id"]]
        assert b.reason is None and r["content"] == b.text and r["src_encoding"] == b.src_encoding
    rejected = _read_dir(out / "rejected")
    assert Counter(rejected["reason"].to_pylist()) == expected
    for r in rejected.to_pylist():
        assert r["reason"] == by_blob[r["blob_id"]].reason
    input_keys = Counter((r["repo_name"], r["path"]) for r in rows)
    got = Counter(
        (r["repo_name"], r["path"]) for t in (data, rejected) for r in t.select(["repo_name", "path"]).to_pylist()
    )
    assert got == input_keys
    assert json.loads((out / SUMMARY).read_text()) == summary


def test_output_does_not_depend_on_input_order(s3server, corpus, tmp_path):
    rows = _file_rows(corpus)
    a = _write(rows, tmp_path / "a" / "ids.parquet")
    _write(rows[::-1][:20], tmp_path / "b" / "x.parquet")
    _write(rows[::-1][20:], tmp_path / "b" / "y.parquet")
    cfg = _cfg(s3server.endpoint_url, rows_per_shard=20)
    reproduce([str(a)], str(tmp_path / "out-a"), cfg, log=lambda m: None)
    reproduce([str(tmp_path / "b")], str(tmp_path / "out-b"), cfg, log=lambda m: None)
    assert _snapshot(tmp_path / "out-a") == _snapshot(tmp_path / "out-b")


def test_repo_level(s3server, corpus, tmp_path):
    file_fields = [
        pa.field("blob_id", pa.string()),
        pa.field("path", pa.string()),
        pa.field("content_id", pa.string()),
        pa.field("language", pa.string()),
        pa.field("src_encoding", pa.string()),
        pa.field("length_bytes", pa.int64()),
    ]
    schema = pa.schema(
        [
            pa.field("repo_name", pa.string()),
            pa.field("snapshot_id", pa.string()),
            pa.field("files", pa.list_(pa.struct(file_fields))),
            pa.field("num_files", pa.int64()),
        ]
    )
    repos = []
    for k in range(4):
        files = [
            {
                "blob_id": b.blob_id,
                "path": f"/f{i}",
                "content_id": b.content_id,
                "language": "Python",
                "src_encoding": b.src_encoding,
                "length_bytes": 1,
            }
            for i, b in enumerate(corpus)
            if i % 4 == k
        ]
        repos.append({"repo_name": f"org/r{k}", "snapshot_id": "0" * 40, "files": files, "num_files": len(files)})
    repos.append({"repo_name": "org/copy", "snapshot_id": "1" * 40, "files": repos[0]["files"], "num_files": 1})
    ids = _write(repos, tmp_path / "ids.parquet", schema)
    summary = reproduce(
        [str(ids)], str(tmp_path / "out"), _cfg(s3server.endpoint_url, repos_per_shard=2), log=lambda m: None
    )
    n_files = sum(len(r["files"]) for r in repos)
    expected = Counter(b.reason for i, b in enumerate(corpus) if b.reason for _ in range(2 if i % 4 == 0 else 1))
    assert summary["rows_in"] == len(repos) and summary["items_in"] == n_files
    assert summary["rejected"] == dict(sorted(expected.items()))
    out = _read_dir(tmp_path / "out" / "data")
    assert (tmp_path / "out" / "data" / "train-00000-of-00003.parquet").exists()
    assert sorted(out["repo_name"].to_pylist()) == sorted(r["repo_name"] for r in repos)
    by_blob = {b.blob_id: b for b in corpus}
    kept = 0
    for repo in out.to_pylist():
        assert repo["num_files"] == len(repo["files"])
        for f in repo["files"]:
            assert f["content"] == by_blob[f["blob_id"]].text
            kept += 1
    assert kept == summary["items_out"] == n_files - sum(expected.values())
    rejected = _read_dir(tmp_path / "out" / "rejected")
    assert Counter(rejected["reason"].to_pylist()) == expected
    assert set(rejected.column_names) >= {"repo_name", "snapshot_id", "blob_id", "path", "reason", "detail"}


def test_ids_on_s3_signed_and_stale_shards_removed(s3server, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    cfg = dataclasses.replace(
        _cfg(s3server.endpoint_url), fetch=dataclasses.replace(_cfg(s3server.endpoint_url).fetch, unsigned=False)
    )
    rows = _file_rows(corpus)[:10]
    local = _write(rows, tmp_path / "ids.parquet")
    put_objects(s3server, BUCKET, {"ids/data/part-0.parquet": local.read_bytes()})
    out = tmp_path / "out"
    stale = out / "data" / "Go" / "train-00000-of-00001.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    summary = reproduce([f"s3://{BUCKET}/ids/"], str(out), cfg, log=lambda m: None)
    assert summary["items_in"] == 10
    assert not stale.exists()
    again = reproduce([f"s3://{BUCKET}/ids/data/part-0.parquet"], str(out), cfg, log=lambda m: None)
    assert again["objects"] == summary["objects"]  # totals come from the committed markers
    assert again["this_run"] == {**again["this_run"], "shards": 0, "objects": 0}  # nothing refetched
    assert not list((out / "_plan").glob("*.parquet"))


def test_fetch_errors_retried_on_request(s3server, corpus, tmp_path):
    rows = _file_rows(corpus)
    ids = _write(rows, tmp_path / "ids.parquet")
    out = tmp_path / "out"
    proxy = FaultProxy("127.0.0.1", s3server.s3_port, fail_rate=1.0).start()  # an outage outlasting retries
    try:
        cfg = _cfg(proxy.endpoint_url, rows_per_shard=20)
        down = reproduce(
            [str(ids)],
            str(out),
            dataclasses.replace(cfg, fetch=dataclasses.replace(cfg.fetch, retry_budget_min=0, retry_budget_ratio=0.0)),
            log=lambda m: None,
        )
    finally:
        proxy.stop()
    assert down["rejected"] == {"fetch_error": len(rows)}
    cfg = _cfg(s3server.endpoint_url, rows_per_shard=20)
    assert reproduce([str(ids)], str(out), cfg, log=lambda m: None)["rejected"] == down["rejected"]
    back = reproduce([str(ids)], str(out), cfg, retry_fetch_errors=True, log=lambda m: None)
    assert "fetch_error" not in back["rejected"]
    assert back["items_out"] + sum(back["rejected"].values()) == len(rows)
    reproduce([str(ids)], str(tmp_path / "clean"), cfg, log=lambda m: None)
    assert _snapshot(out) == _snapshot(tmp_path / "clean")


@pytest.mark.slow
def test_killed_run_resumes_to_identical_output(s3server, corpus, tmp_path):
    """``kill -9`` mid-run, rerun: every row exactly once, byte-identical to an uninterrupted run."""
    rows = _file_rows(corpus)
    ids = _write(rows, tmp_path / "ids.parquet")
    proxy = FaultProxy("127.0.0.1", s3server.s3_port, latency=0.05, fail_rate=0.05, seed=3).start()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "killed"

    def cmd(target: Path, endpoint: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pipelines.cli",
            "reproduce",
            "--ids",
            str(ids),
            "--out",
            str(target),
            "--bucket",
            BUCKET,
            "--endpoint-url",
            endpoint,
            "--no-sign-request",
            "--no-spark",
            "--concurrency",
            "2",
            "--rows-per-shard",
            "5",
        ]

    try:  # the first run is slowed down by the proxy so that the kill lands mid-run
        proc = subprocess.Popen(
            cmd(out, proxy.endpoint_url), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list((out / MARKERS).glob("*.json"))) < 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        committed = len(list((out / MARKERS).glob("*.json")))
        assert 2 <= committed < 9, "the kill must land mid-run"
        subprocess.run(cmd(out, s3server.endpoint_url), cwd=REPO, env=env, check=True, capture_output=True)
    finally:
        proxy.stop()
    clean = _cfg(s3server.endpoint_url, rows_per_shard=5)
    reproduce([str(ids)], str(tmp_path / "clean"), clean, log=lambda m: None)
    assert _snapshot(out) == _snapshot(tmp_path / "clean")
    assert not [f for f in out.rglob(".*") if f.is_file()], "no temporary file left behind"
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["items_in"] == len(rows) == summary["items_out"] + sum(summary["rejected"].values())


@pytest.mark.spark
def test_shards_as_spark_tasks(spark, s3server, corpus, tmp_path):
    rows = _file_rows(corpus)
    ids = _write(rows, tmp_path / "ids.parquet")
    cfg = _cfg(s3server.endpoint_url, rows_per_shard=25)
    on_spark = reproduce([str(ids)], str(tmp_path / "spark"), cfg, map_shards=spark_map(spark), log=lambda m: None)
    local = reproduce([str(ids)], str(tmp_path / "local"), cfg, log=lambda m: None)
    assert _snapshot(tmp_path / "spark") == _snapshot(tmp_path / "local")
    assert on_spark["rejected"] == local["rejected"] and on_spark["shards"] >= 3
