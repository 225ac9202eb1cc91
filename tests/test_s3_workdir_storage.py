"""A work folder on S3, without Spark: ``stackv2.storage`` against a real SeaweedFS (the same calls on a local folder
for comparison), the manifest commit and its checks on object keys, the lease lock made with conditional PUTs, and
a storm of 503s answered by retries. Spark runs on S3 are in ``test_s3_workdir.py``."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import socket
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import stackv2.storage as storage
import stackv2.workdir as workdir
from pipelines._job import check_work, stage_problems
from stackv2.atomic import write_json
from stackv2.stats import StageStats
from stackv2.storage import HashingWriter, Location, location, read_table
from stackv2.workdir import (
    LOCK,
    SUCCESS,
    WorkDirBusy,
    adopt_outputs,
    committed_files,
    output_problems,
    read_manifest,
    work_lock,
)
from tests.faultproxy import FaultProxy
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY

pytestmark = pytest.mark.s3
BUCKET = "stackv2-workdir"


@pytest.fixture
def s3env(s3server, monkeypatch):
    """The AWS settings a cluster job would have: endpoint, region, credentials from the environment."""
    s3server.create_bucket(BUCKET)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3server.endpoint_url)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    return s3server


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> Location:
    """A fresh folder, local or on S3: the same assertions hold on both."""
    if request.param == "local":
        return location(tmp_path / "root")
    request.getfixturevalue("s3env")
    return location(f"s3://{BUCKET}/{request.node.name.replace('[', '-').rstrip(']')}-{os.getpid()}")


def keys(root: Location) -> list[str]:
    return [f.relative_to(root) for f in root.files()]


def test_locations_name_and_travel_as_their_uri(tmp_path):
    s3 = location("s3a://bucket/run/")
    assert s3 == location("s3://bucket/run") and s3.uri == "s3://bucket/run" and not s3.is_local
    part = s3 / "fetch" / "data/part-00000.parquet"
    assert (part.uri, part.name, part.suffix, part.parent.name) == (
        "s3://bucket/run/fetch/data/part-00000.parquet",
        "part-00000.parquet",
        ".parquet",
        "data",
    )
    assert part.relative_to(s3) == "fetch/data/part-00000.parquet" and part.is_relative_to(s3)
    assert pickle.loads(pickle.dumps(part)) == part  # noqa: S301 - our own bytes
    local = location(tmp_path / "w")
    assert (
        local.is_local
        and os.fspath(local) == str(tmp_path / "w")
        and location("file://" + str(tmp_path)) == (location(tmp_path))
    )
    with pytest.raises(TypeError):
        os.fspath(s3)


def test_files_are_written_whole_listed_moved_and_removed(root):
    (root / "a" / "x.json").write_text('{"x": 1}\n')
    (root / "a" / "deep" / "y.bin").write_bytes(b"\x00" * 10)
    assert (root / "a" / "x.json").read_text() == '{"x": 1}\n' and (root / "a" / "deep" / "y.bin").size() == 10
    assert [p.name for p in (root / "a").list()] == ["deep", "x.json"]
    assert keys(root) == ["a/deep/y.bin", "a/x.json"]
    assert (root / "a").is_dir() and (root / "a" / "x.json").is_file() and not (root / "nothing").exists()
    with pytest.raises(FileNotFoundError):
        (root / "nothing").read_bytes()

    (root / "a" / "x.json").move_or_copy(root / "b" / "x.json")
    (root / "b" / "x.json").copy_to(root / "c.json")
    assert keys(root) == ["a/deep/y.bin", "b/x.json", "c.json"]
    with pytest.raises(RuntimeError, match="half way"), (root / "d.json").atomic_output() as f:
        f.write(b"partial")
        raise RuntimeError("half way")
    assert not (root / "d.json").exists()  # an upload that failed never appears
    with (root / "d.json").atomic_output() as f:
        f.write(b"whole")
    assert (root / "d.json").read_bytes() == b"whole"
    (root / "a").delete_tree()
    (root / "c.json").delete()
    (root / "c.json").delete()  # nothing to remove: no error
    assert keys(root) == ["b/x.json", "d.json"]
    assert (root / "b" / "x.json").sha256() == hashlib.sha256(b'{"x": 1}\n').hexdigest()


def test_an_object_above_the_server_copy_limit_is_moved_through_this_machine(s3env, monkeypatch):
    """S3 copies at most 5 GiB in one request: a larger object is streamed into a new upload instead."""
    root = location(f"s3://{BUCKET}/big-move-{os.getpid()}")
    data = os.urandom(3 << 20)
    spooled = []
    through_machine = Location.atomic_output
    monkeypatch.setattr(Location, "atomic_output", lambda self: spooled.append(self) or through_machine(self))
    for limit, expect_spooled in ((len(data), 0), (len(data) - 1, 1)):
        monkeypatch.setattr(storage, "MAX_SERVER_COPY", limit)
        (root / "a").write_bytes(data)
        (root / "a").move_or_copy(root / "b")
        assert (root / "b").read_bytes() == data and not (root / "a").exists()
        (root / "b").copy_to(root / "c")
        assert (root / "c").read_bytes() == data and (root / "b").exists()
        assert len(spooled) == 2 * expect_spooled
        spooled.clear()


def test_parquet_written_through_a_hashing_writer_is_the_file_pyarrow_writes(root, tmp_path):
    table = pa.table({"path": [f"/f{i}" for i in range(500)], "n": list(range(500))})
    target = root / "part.parquet"
    with HashingWriter(target.open_output()) as out, pq.ParquetWriter(out, table.schema, compression="zstd") as w:
        w.write_table(table)
    pq.write_table(table, tmp_path / "plain.parquet", compression="zstd")
    plain = (tmp_path / "plain.parquet").read_bytes()
    assert target.read_bytes() == plain
    assert (out.bytes, out.sha256) == (len(plain), hashlib.sha256(plain).hexdigest())
    assert read_table(target).equals(table)


# --- the manifest on object keys -----------------------------------------------------------------------------------


def write_stage(work: Location, name: str, rows: int, previous: str | None = None, parts: int = 3) -> None:
    """A completed stage as the contract leaves it, written through the storage layer: parts, stats, manifest."""
    for i in range(parts):
        ids = list(range(i, rows, parts))
        table = pa.table({"path": [f"/f{k:04d}.py" for k in ids], "n": ids})
        with HashingWriter((work / name / "data" / f"part-{i:05d}.parquet").open_output()) as out:
            pq.write_table(table, out, compression="zstd")
    StageStats(name, rows_in=rows, rows_out=rows).save(work / name / "_stats.json")
    adopt_outputs(work / name, config_hash=f"hash-{name}", previous=previous)


def test_a_stage_on_s3_commits_checks_and_is_read_by_its_manifest(s3env):
    work = location(f"s3://{BUCKET}/manifest-{os.getpid()}")
    write_stage(work, "extract", 30)
    write_stage(work, "optout", 30, previous="extract")
    assert check_work(work) == (
        [],
        {"stages": ["extract", "optout"], "files": 6, "bytes": check_work(work)[1]["bytes"]},
    )
    files = committed_files(work / "optout" / "data")
    assert all(isinstance(f, Location) for f in files) and [f.name for f in files] == [
        f"part-{i:05d}.parquet" for i in range(3)
    ]
    assert sum(read_table(f).num_rows for f in files) == 30

    data = work / "optout" / "data"
    (data / "part-00001.parquet").copy_to(data / ".part-00001.parquet.tmp-dead-7")  # a dead attempt's file
    (data / "part-00002.parquet").write_bytes((data / "part-00002.parquet").read_bytes()[:-9])  # truncated
    problems = stage_problems(work, "optout")
    assert problems[0] == "stage optout: data/.part-00001.parquet.tmp-dead-7: not in the manifest (a stray file)"
    assert (
        problems[1].startswith("stage optout: data/part-00002.parquet: ")
        and "bytes, the manifest says" in (problems[1])
    )
    quick = output_problems(work / "optout", read_manifest(work / "optout"), deep=False)
    assert len(quick) == 2
    assert [f.name for f in committed_files(data)] == [f"part-{i:05d}.parquet" for i in range(3)]

    # Killed between its last part and its manifest: the parts are there, no _SUCCESS; a reader takes nothing.
    (work / "optout" / SUCCESS).delete()
    with pytest.raises(FileNotFoundError, match="has not completed"):
        committed_files(data)
    assert stage_problems(work, "optout") == ["stage optout: not complete (no _SUCCESS)"]


# --- the lock --------------------------------------------------------------------------------------------------


HOLD = """
import sys, time
from stackv2.workdir import work_lock
with work_lock(sys.argv[1], "stackv2 run --config first.yaml"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_s3_lease_admits_one_run_names_it_and_outlives_a_kill(s3env):
    work = location(f"s3://{BUCKET}/lock-{os.getpid()}")
    first = subprocess.Popen([sys.executable, "-c", HOLD, work.uri], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "held"
        with pytest.raises(WorkDirBusy) as refused, work_lock(work, "stackv2 run"):
            pytest.fail("the lock was given twice")
        message = str(refused.value)
        assert "\n" not in message and f"pid {first.pid} on host {socket.gethostname()}" in message
        assert "stackv2 run --config first.yaml" in message and "lease renewed" in message
    finally:
        first.kill()  # kill -9: no chance to release
        first.wait()
    assert json.loads((work / LOCK).read_text())["pid"] == first.pid
    said: list[str] = []
    with work_lock(work, "stackv2 run --config again.yaml", said.append) as held:
        assert json.loads((work / LOCK).read_text())["pid"] == os.getpid()
        held.check()
    assert said and f"taking over the lock of pid {first.pid}" in said[0] and "which is gone" in said[0]
    assert not (work / LOCK).exists()  # released: the lease object is removed


RACE = """
import sys, time
from stackv2.workdir import WorkDirBusy, work_lock
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
    with work_lock(sys.argv[1], "stackv2 run"):
        print("held", flush=True)
        time.sleep(8)
except WorkDirBusy:
    print("refused", flush=True)
"""


def test_of_runs_starting_together_exactly_one_gets_the_lease(s3env):
    """Processes asking at the same instant: the conditional PUT gives the lease to exactly one."""
    work = location(f"s3://{BUCKET}/race-{os.getpid()}")
    at = str(time.time() + 4)  # all started (interpreter, imports) before the shared instant
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, work.uri, at], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    said = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert said == ["held", "refused", "refused", "refused"]


def _plant(work: Location, **record) -> None:
    base = {"pid": 4242, "host": "node-17", "started": "2026-01-01T00:00:00+00:00", "command": "stackv2 run"}
    (work / LOCK).write_text(json.dumps({**base, **record}) + "\n")


def test_a_lease_from_another_host_is_kept_until_it_expires(s3env):
    work = location(f"s3://{BUCKET}/expiry-{os.getpid()}")
    _plant(work, lease_seconds=3600)
    busy = f"pid 4242 on host node-17 .*expires in .*remove {work / LOCK}"
    with pytest.raises(WorkDirBusy, match=busy), work_lock(work, "stackv2 run"):
        pytest.fail("a live lease of another host was taken")
    _plant(work, lease_seconds=0)  # its holder stopped renewing it: expired
    said: list[str] = []
    with work_lock(work, "stackv2 run", said.append):
        assert json.loads((work / LOCK).read_text())["pid"] == os.getpid()
    assert said and "taking over the lock of pid 4242 on host node-17" in said[0] and "expired" in said[0]


def test_a_holder_learns_it_lost_its_lease(s3env, monkeypatch):
    """A holder whose lease was taken over (it stalled past the lease) finds out at its next renewal, and the
    runner's check before the next stage stops it."""
    monkeypatch.setattr(workdir, "RENEW_SECONDS", 0.2)
    work = location(f"s3://{BUCKET}/lost-{os.getpid()}")
    said: list[str] = []
    with work_lock(work, "stackv2 run", said.append) as held:
        first = (work / LOCK).read_text()
        threading.Event().wait(0.6)
        assert json.loads((work / LOCK).read_text())["token"] == json.loads(first)["token"]  # renewed, still ours
        _plant(work, lease_seconds=3600)  # another run took it over
        threading.Event().wait(0.6)
        with pytest.raises(WorkDirBusy, match="taken over by another run"):
            held.check()
    assert json.loads((work / LOCK).read_text())["host"] == "node-17"  # the new holder's lease is left alone


def test_only_s3_and_local_folders_can_be_locked(tmp_path):
    with pytest.raises(ValueError, match="no lock for this file system"), work_lock("gs://bucket/run", "x"):
        pass


# --- a 503 storm ---------------------------------------------------------------------------------------------------


def test_a_storm_of_503s_during_a_commit_is_ridden_out(s3env, monkeypatch):
    """Every request through a proxy that answers 40% of them 503 SlowDown: parts written and committed, the stats
    and the manifest written, everything checked, the lock taken and released."""
    proxy = FaultProxy("127.0.0.1", s3env.s3_port, fail_rate=0.4, seed=3).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint_url)
        work = location(f"s3://{BUCKET}/storm-{os.getpid()}")
        with work_lock(work, "stackv2 run"):
            write_stage(work, "extract", 40, parts=4)
            write_json(work / "extract" / "note.json", {"ok": True})
            assert stage_problems(work, "extract") == []
    finally:
        proxy.stop()
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3env.endpoint_url)  # the store itself, for the checks below
    assert proxy.injected_503 > 20, proxy.requests
    assert sum(read_table(f).num_rows for f in committed_files(work / "extract" / "data")) == 40
