"""The manifest a stage commits in ``_SUCCESS``, and what ``stage_problems`` finds when the folder no longer matches
it: every planted corruption is one line naming its file. Pure Python (pyarrow), no Spark session."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines._job import check_work, resume_state, stage_problems
from stackv2.stats import StageStats
from stackv2.workdir import (
    SUCCESS,
    Manifest,
    ManifestError,
    adopt_outputs,
    committed_files,
    output_problems,
    read_manifest,
    write_manifest,
)
from udfs.parquet_writer import DuplicateKeyError, KeyOrderError, check_keys


def write_stage(work: Path, name: str, rows: int, previous: str | None = None, rejected: int = 0, parts: int = 3):
    """A completed stage as the contract leaves it: parts, ``_stats.json``, the manifest."""
    for output, n in (("data", rows), ("rejected", rejected)):
        folder = work / name / output
        folder.mkdir(parents=True)
        for i in range(parts):
            ids = list(range(i, n, parts))
            table = pa.table({"path": [f"/f{k:04d}.py" for k in ids], "n": ids})
            if output == "rejected":
                table = table.append_column("reason", pa.array(["too_large"] * len(ids)))
            pq.write_table(table, folder / f"part-{i:05d}.parquet", compression="zstd")
    stats = StageStats(
        name, rows_in=rows + rejected, rows_out=rows, rejected={"too_large": rejected} if rejected else {}
    )
    stats.save(work / name / "_stats.json")
    return adopt_outputs(work / name, config_hash=f"hash-{name}", previous=previous)


@pytest.fixture
def work(tmp_path) -> Path:
    work = tmp_path / "work"
    write_stage(work, "extract", 30, rejected=4)
    write_stage(work, "optout", 30, previous="extract")
    write_stage(work, "fetch", 28, previous="optout", rejected=2)
    return work


def test_manifest_lists_every_file_with_size_rows_and_sha256(work):
    manifest = read_manifest(work / "fetch")
    assert (manifest.stage, manifest.config_hash, manifest.previous) == ("fetch", "hash-fetch", "optout")
    assert [f.name for f in manifest.outputs["data"]] == [f"part-{i:05d}.parquet" for i in range(3)]
    assert manifest.rows("data") == 28 and manifest.rows("rejected") == 2
    first = manifest.outputs["data"][0]
    assert first.bytes == (work / "fetch/data" / first.name).stat().st_size and len(first.sha256) == 64
    # plain JSON, stable bytes: written again, the same file
    text = (work / "fetch" / SUCCESS).read_text()
    assert json.loads(text)["manifest"] == 1
    write_manifest(work / "fetch", Manifest.from_dict(json.loads(text)))
    assert (work / "fetch" / SUCCESS).read_text() == text
    assert stage_problems(work, "fetch") == [] and check_work(work)[0] == []


def truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def half(p: Path) -> None:
    t = pq.read_table(p)
    pq.write_table(t.slice(0, t.num_rows // 2), p, compression="zstd")


def flip_a_byte(p: Path) -> None:
    """Change a byte of the first page, far from the footer: size and row count stay."""
    data = bytearray(p.read_bytes())
    data[10] ^= 0xFF
    p.write_bytes(bytes(data))


PLANTS = {
    "truncated part": (lambda d: truncate(d / "part-00001.parquet"), "data/part-00001.parquet: "),
    "half a part": (lambda d: half(d / "part-00001.parquet"), "data/part-00001.parquet: "),
    "stray copy": (
        lambda d: shutil.copy(d / "part-00002.parquet", d / "part-00002 (copy).parquet"),
        "data/part-00002 (copy).parquet: not in the manifest",
    ),
    "attempt file": (
        lambda d: shutil.copy(d / "part-00000.parquet", d / ".part-00000.parquet.tmp-1a2b-17"),
        "data/.part-00000.parquet.tmp-1a2b-17: not in the manifest",
    ),
    "missing part": (lambda d: (d / "part-00000.parquet").unlink(), "data/part-00000.parquet: missing"),
    "same size, other bytes": (
        lambda d: flip_a_byte(d / "part-00002.parquet"),
        "data/part-00002.parquet: sha256 differs",
    ),
}


@pytest.mark.parametrize("plant", PLANTS)
def test_each_corruption_is_one_line_naming_its_file(work, plant):
    act, expected = PLANTS[plant]
    act(work / "fetch" / "data")
    problems = stage_problems(work, "fetch")
    assert problems and problems[0].startswith(f"stage fetch: {expected}"), problems
    assert all("\n" not in p for p in problems)
    assert resume_state(work, "fetch", "hash-fetch") == (False, problems)
    assert stage_problems(work, "optout") == []  # the stage before is not blamed


def test_quick_check_reads_footers_not_bytes(work):
    half(work / "fetch/data/part-00001.parquet")
    flip_a_byte(work / "fetch/data/part-00002.parquet")
    quick = output_problems(work / "fetch", read_manifest(work / "fetch"), deep=False)
    assert len(quick) == 1 and quick[0].startswith("data/part-00001.parquet: ")  # the flip needs the sha256


def test_readers_take_the_listed_files_only(work):
    shutil.copy(work / "fetch/data/part-00002.parquet", work / "fetch/data/part-00002 (copy).parquet")
    files = committed_files(work / "fetch" / "data")
    assert [f.name for f in files] == [f"part-{i:05d}.parquet" for i in range(3)]
    assert pq.read_table(files).num_rows == 28


def test_chain_rows_in_must_be_what_the_previous_stage_passed_on(work):
    stats = StageStats.load(work / "fetch" / "_stats.json")
    # A consistent fetch folder that received fewer rows than optout passed on (e.g. copied from another run).
    stats.rows_in, stats.rejected = 25, {"too_large": 2}
    stats.rows_out = 23
    shutil.rmtree(work / "fetch")
    write_stage(work, "fetch", 23, previous="optout", rejected=2)
    stats.save(work / "fetch" / "_stats.json")
    assert stage_problems(work, "fetch") == ["stage fetch: 25 rows in, but optout passed on 30"]
    # stats that do not count what the outputs hold
    stats.rows_in, stats.rows_out = 32, 30
    stats.save(work / "fetch" / "_stats.json")
    assert "stage fetch: _stats.json counts 30 rows in data/, which holds 23" in stage_problems(work, "fetch")


def test_chain_counts_rows_as_written_before_an_optout_purge(work):
    """``stackv2 optout apply`` purges rows of both stages later and records them; the chain still holds."""
    for name, purged in (("optout", {"data": 3}), ("fetch", {"data": 2, "rejected": 1})):
        stats = StageStats.load(work / name / "_stats.json")
        stats.rows_out -= purged["data"]
        stats.rejected = {k: v - purged.get("rejected", 0) for k, v in stats.rejected.items()}
        stats.rows_in = stats.rows_out + stats.rows_rejected
        stats.extra["optout_purged"] = purged
        stats.save(work / name / "_stats.json")
    problems = [p for p in stage_problems(work, "fetch") if "rows in" in p and "passed on" in p]
    assert problems == []


def test_a_marker_from_before_manifests_is_a_problem(work):
    (work / "fetch" / SUCCESS).write_text("{}")
    with pytest.raises(ManifestError):
        read_manifest(work / "fetch")
    [problem] = stage_problems(work, "fetch")
    assert "not a version-1 manifest" in problem
    assert resume_state(work, "fetch", "hash-fetch") == (False, [problem])
    assert resume_state(work, "fetch", "another-hash")[0] is False


def test_adopt_removes_what_is_not_parquet(tmp_path):
    out = tmp_path / "s" / "data"
    out.mkdir(parents=True)
    pq.write_table(pa.table({"a": [1, 2]}), out / "part-0.parquet")
    (out / "_SUCCESS").write_text("")
    (out / ".part-0.parquet.crc").write_text("x")
    manifest = adopt_outputs(tmp_path / "s")
    assert sorted(p.name for p in out.iterdir()) == ["part-0.parquet"]
    assert manifest.rows("data") == 2 and output_problems(tmp_path / "s", manifest) == []


def test_redescribe_follows_a_rewritten_file(work):
    manifest = read_manifest(work / "fetch")
    part = work / "fetch/data/part-00001.parquet"
    staged = part.with_name(".part-00001.parquet.tmp")
    pq.write_table(pq.read_table(part).slice(0, 2), staged, compression="zstd")
    manifest.redescribe("data", {part.name: staged})
    staged.replace(part)
    assert output_problems(work / "fetch", manifest) == []
    assert manifest.rows("data") == 28 - 9 + 2


def test_check_command_exit_codes(work):
    def check(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "check", str(work), *extra], capture_output=True, text=True
        )

    ok = check()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK: 3 stages (extract, optout, fetch)")
    truncate(work / "optout/data/part-00000.parquet")
    (work / "fetch" / SUCCESS).unlink()
    bad = check("--quick")
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert lines[0].startswith("stage optout: data/part-00000.parquet: ") and "bytes, the manifest says" in lines[0]
    assert lines[1] == "stage fetch: not complete (no _SUCCESS)"
    assert lines[-1].startswith("PROBLEMS: 3 stages")


def test_writer_refuses_a_repeated_key_across_batches():
    key = ("directory_id", "path")

    schema = pa.schema([("directory_id", pa.string()), ("path", pa.string())])

    def batch(rows):
        return pa.RecordBatch.from_pylist([{"directory_id": d, "path": p} for d, p in rows], schema=schema)

    last = check_keys(batch([("a", "/x"), ("a", "/y")]), key, None)
    last = check_keys(batch([("b", None), ("b", "/x")]), key, last)  # null is a value like any other
    with pytest.raises(DuplicateKeyError, match="1 rows repeat the key"):
        check_keys(batch([("b", "/x"), ("c", "/x")]), key, last)
    with pytest.raises(DuplicateKeyError):
        check_keys(batch([("b", None), ("b", None)]), key, None)
    assert check_keys(batch([("a", "/x"), ("a", "/x")]), (), None) is None  # no key: nothing checked


def test_an_optout_purge_keeps_the_stages_checking(tmp_path):
    """``stackv2 optout apply --work`` rewrites committed files in place: the manifests it writes with them describe
    the new files, and the recounted stats still chain (``optout_purged``)."""
    from stackv2.atomic import write_json
    from stackv2.optout.registry import Matcher, load_registry
    from stackv2.optout.work import stage_purge
    from stackv2.storage import location

    work = tmp_path / "work"
    for name, previous, n in (("optout", None, 12), ("fetch", "optout", 12)):
        folder = work / name / "data"
        folder.mkdir(parents=True)
        for i in range(2):
            ids = list(range(i, n, 2))
            repos = ["alice/a" if k % 3 == 0 else "bob/b" for k in ids]
            pq.write_table(
                pa.table({"repo_name": repos, "path": [f"/{k}.py" for k in ids]}), folder / f"part-{i}.parquet"
            )
        StageStats(name, rows_in=n, rows_out=n).save(work / name / "_stats.json")
        adopt_outputs(work / name, config_hash=name, previous=previous)
    registry = tmp_path / "registry.jsonl"
    registry.write_text(json.dumps({"id": "r1", "date": "2023-11-01", "user": "alice", "repos": "all"}) + "\n")

    change = stage_purge(location(work), Matcher(load_registry(registry)), [])
    for staged, final in change.renames:
        staged.move_or_copy(final)
    for where, obj in change.stats.items():
        write_json(where.local_path, obj, indent=2)
    assert change.purged == {"optout/data": 4, "fetch/data": 4}
    assert check_work(work)[0] == []
    assert read_manifest(work / "fetch").rows("data") == 8


_KEYS = st.lists(st.tuples(st.sampled_from(["a", "b", "é", None]), st.sampled_from(["/x", "/y", "/Z", None])))


@given(_KEYS, st.integers(min_value=0, max_value=20))
def test_the_order_check_refuses_exactly_the_unsorted_rows(rows, cut):
    """``check_keys(ascending=True)``, across a batch boundary, accepts a list iff it is in Spark's ascending
    nulls-first order (a byte order: for strings, the order of their code points)."""
    key = ("directory_id", "path")
    schema = pa.schema([("directory_id", pa.string()), ("path", pa.string())])

    def batch(part):
        return pa.RecordBatch.from_pylist([{"directory_id": d, "path": p} for d, p in part], schema=schema)

    def spark_order(row):
        return tuple((v is not None, v or "") for v in row)

    def checked():
        last = check_keys(batch(rows[:cut]), key, None, unique=False, ascending=True)
        check_keys(batch(rows[cut:]), key, last, unique=False, ascending=True)

    if [spark_order(r) for r in rows] == sorted(spark_order(r) for r in rows):
        checked()
    else:
        with pytest.raises(KeyOrderError):
            checked()
