"""Opt-out on a released dataset: apply (with promotion from the dedup tables), check, verify (pyarrow only)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import cli
from stackv2.optout import release as oo
from stackv2.optout.registry import RegistryError
from stackv2.release import layout as rel
from stackv2.release.products import THE_STACK_V2_DEDUP, TRAIN_FULL
from stackv2.schema import ANNOTATED, FETCHED, RELEASE, RELEASE_REPOS, with_reason
from stackv2.stats import StageStats
from stackv2.workdir import OPTOUT_AUDIT, release_dir, tokens_dir
from tests.test_lock import hold

#: The release: a file-level product (with near-dedup clusters to promote from) and a repository-level one.
DEDUP, TRAIN = THE_STACK_V2_DEDUP, TRAIN_FULL
PY0 = f"{DEDUP}/data/Python/train-00000-of-00002.parquet"
PY1 = f"{DEDUP}/data/Python/train-00001-of-00002.parquet"
JS = f"{DEDUP}/data/JavaScript/train-00000-of-00001.parquet"
REPOS = f"{TRAIN}/data/train-00000-of-00001.parquet"
SECRET = "x = 1  # contact dave.smith@gmail.com or 8.8.4.4 about it\n"

REGISTRY = [
    {"id": "r1", "date": "2023-11-01", "user": "alice", "repos": "all"},
    {"id": "r2", "date": "2023-11-02", "user": "bob", "repos": [{"repo": "bob/old-name", "github_id": 42}]},
]


def file_row(
    repo: str,
    path: str,
    blob: str,
    gid: int | None = None,
    language: str = "Python",
    content: str | None = None,
    **extra,
) -> dict:
    content = f"# {repo}/{path}\n" if content is None else content
    return {
        "repo_name": repo,
        "path": path,
        "blob_id": blob,
        "content_id": blob[::-1],
        "github_id": gid,
        "directory_id": "d" * 40,
        "snapshot_id": "s" * 40,
        "revision_id": "r" * 40,
        "branch_name": "main",
        "visit_date": dt.datetime(2023, 9, 1),
        "language": language,
        "license_type": "permissive",
        "detected_licenses": ["MIT"],
        "src_encoding": "UTF-8",
        "is_vendor": False,
        "is_generated": False,
        "length_bytes": len(content.encode()),
        "extension": path.rsplit(".", 1)[-1],
        "content": content,
        **extra,
    }


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="zstd")


def cluster(cid: str, members: list[tuple[str, str, str]]) -> list[dict]:
    return [
        {
            "cluster_id": cid,
            "blob_id": b,
            "repo_name": r,
            "path": p,
            "language": "Python",
            "rank": i,
            "is_representative": i == 0,
        }
        for i, (r, p, b) in enumerate(members)
    ]


@pytest.fixture
def built(tmp_path) -> tuple[Path, Path]:
    return build(tmp_path)


def build(root: Path) -> tuple[Path, Path]:
    """A release (three language shards of the-stack-v2-dedup, one repository shard of -train-full) and the work
    tables it came from."""
    work = root / "work"
    release = release_dir(work)
    shards = {
        PY0: [file_row("Alice/proj", "x.py", "x0", 10), file_row("carol/c", "c.py", "c0", 11)],
        PY1: [file_row("bob/new-name", "b.py", "b0", 42), file_row("dave/copy", "other.py", "d1", 12)],
        JS: [file_row("carol/c", "c.js", "j0", 11, language="JavaScript")],
    }
    for shard, rows in shards.items():
        write_parquet(release / shard, rows, RELEASE)
    write_parquet(
        release / REPOS,
        [
            {"repo_name": r, "github_id": g, "num_files": 1, "files": [{"blob_id": "?", "path": "?"}]}
            for r, g in (("Alice/proj", 10), ("bob/new-name", 42), ("carol/c", 11))
        ],
        RELEASE_REPOS,
    )
    for product, paths in ((DEDUP, shards), (TRAIN, [REPOS])):
        local = [p.removeprefix(f"{product}/") for p in paths]
        rel.write_manifest(release / product, [rel.describe_shard(release / product, p) for p in local], "cfg", "test")

    write_parquet(
        work / "near_dedup" / "clusters" / "part-00000.parquet",
        cluster(
            "c1",
            [
                ("Alice/proj", "x.py", "x0"),
                ("alice/other", "x.py", "x1"),
                ("dave/copy", "x.py", "x2"),
                ("eve/e", "x.py", "x3"),
            ],
        )
        + cluster("c2", [("carol/c", "c.py", "c0"), ("ALICE/dup", "c.py", "c1")]),
        pa.schema(
            [
                ("cluster_id", pa.string()),
                ("blob_id", pa.string()),
                ("repo_name", pa.string()),
                ("path", pa.string()),
                ("language", pa.string()),
                ("rank", pa.int32()),
                ("is_representative", pa.bool_()),
            ]
        ),
    )
    rejected = [
        file_row("alice/other", "x.py", "x1", 20),
        file_row("dave/copy", "x.py", "x2", 12, content=SECRET),
        file_row("eve/e", "x.py", "x3", 13, content="x = 1\n"),
        file_row("ALICE/dup", "c.py", "c1", 21),
    ]
    write_parquet(
        work / "near_dedup" / "rejected" / "part-00000.parquet",
        [{**r, "reason": "near_duplicate"} for r in rejected],
        with_reason(ANNOTATED),
    )
    StageStats("near_dedup", rows_in=7, rows_out=3, rejected={"near_duplicate": 4}).save(
        work / "near_dedup" / "_stats.json"
    )
    write_parquet(work / "exact_dedup" / "rejected" / "part-00000.parquet", [], with_reason(ANNOTATED))
    write_parquet(
        work / "fetch" / "data" / "part-00000.parquet",
        [file_row("Alice/proj", "x.py", "x0", 10), file_row("carol/c", "c.py", "c0", 11)],
        FETCHED,
    )
    StageStats("fetch", rows_in=2, rows_out=2).save(work / "fetch" / "_stats.json")
    return release, work


def registry(tmp_path: Path, requests: list[dict]) -> Path:
    path = tmp_path / "registry.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in requests))
    return path


def rows(release: Path, shard: str) -> list[tuple[str, str]]:
    t = pq.read_table(release / shard)
    return list(zip(t["repo_name"].to_pylist(), t["path"].to_pylist(), strict=True))


def snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_apply_removes_promotes_and_audits(built, tmp_path):
    release, work = built
    js_before = (release / JS).stat()
    before = snapshot(release.parent)
    dry = oo.apply(registry(tmp_path, REGISTRY), release, work, dry_run=True)
    assert snapshot(release.parent) == before and dry["dry_run"]
    audit = oo.apply(registry(tmp_path, REGISTRY), release, work)

    assert rows(release, PY0) == [("carol/c", "c.py")]
    # bob/new-name is bob/old-name renamed (same github_id); dave/copy x.py takes Alice's place in its cluster,
    # in the shard already holding dave/copy (alice/other, rank 1, is opted out too and is skipped).
    assert rows(release, PY1) == [("dave/copy", "other.py"), ("dave/copy", "x.py")]
    promoted = pq.read_table(release / PY1).slice(1, 1).to_pylist()[0]
    assert promoted["content"] == SECRET  # a file-level product holds contents as archived, unredacted
    assert promoted["blob_id"] == "x2" and promoted["github_id"] == 12
    assert pq.read_schema(release / PY1).names == RELEASE.names
    assert pq.read_table(release / REPOS)["repo_name"].to_pylist() == ["carol/c"]
    after = (release / JS).stat()
    assert (after.st_mtime_ns, after.st_ino) == (js_before.st_mtime_ns, js_before.st_ino)  # untouched
    assert rel.verify_release(release / DEDUP) == rel.verify_release(release / TRAIN) == []
    assert not list(release.rglob(".*.tmp*"))

    by_id = {r["id"]: r for r in audit["requests"]}
    assert by_id["r1"]["repos"] == {"Alice/proj": 1} and by_id["r1"]["files_removed"] == 1
    assert by_id["r1"]["repo_rows_removed"] == 1
    assert by_id["r1"]["shards_touched"] == [PY0, PY1, REPOS]
    [p] = by_id["r1"]["promotions"]
    assert (p["cluster_id"], p["removed"]["repo_name"], p["promoted"]["repo_name"], p["shard"]) == (
        "c1",
        "Alice/proj",
        "dave/copy",
        PY1,
    )
    assert by_id["r2"]["repos"] == {"bob/new-name": 1} and by_id["r2"]["promotions"] == []
    # Every work table naming them: rejected rows, the near-duplicate clusters' members, the fetched files.
    assert audit["work_purged"] == {"near_dedup/rejected": 2, "near_dedup/clusters": 3, "fetch/data": 1}
    assert json.loads(Path(audit["report"]).read_text())["files_removed"] == 2
    assert {k: dry[k] for k in ("requests", "shards_touched")} == {k: audit[k] for k in ("requests", "shards_touched")}
    assert Path(audit["report"]).parent == work / OPTOUT_AUDIT

    for product in (DEDUP, TRAIN):
        assert [a["requests"] for a in rel.read_manifest(release / product)["optout"]] == [2]
    dedup = StageStats.load(work / "near_dedup" / "_stats.json").check()
    assert (dedup.rows_in, dedup.rejected) == (5, {"near_duplicate": 2})
    assert StageStats.load(work / "fetch" / "_stats.json").check().rows_out == 1

    report = oo.verify(tmp_path / "registry.jsonl", release, work)
    assert report.ok and report.exit_code() == 0
    assert report.files_scanned == 4 + 4 + 4  # 4 shards, 4 work tables, 2 manifests and 2 stages' stats

    # Idempotent: a second apply with the same registry changes no byte.
    before = snapshot(release)
    again = oo.apply(tmp_path / "registry.jsonl", release, work)
    assert (again["files_removed"], again["promotions"], again["shards_touched"]) == (0, 0, [])
    assert snapshot(release) == before


def test_promotion_skips_opted_out_members_in_rank_order(built, tmp_path):
    release, work = built
    reqs = [*REGISTRY, {"id": "r3", "date": "2023-11-03", "user": "dave", "repos": ["DAVE/copy"]}]
    audit = oo.apply(registry(tmp_path, reqs), release, work)
    # alice/other (rank 1) and dave/copy (rank 2) are opted out: eve/e (rank 3) is promoted. Its repository has no
    # released file, so it goes to the shard its predecessor left.
    assert rows(release, PY0) == [("carol/c", "c.py"), ("eve/e", "x.py")]
    assert pq.read_table(release / PY0)["content"].to_pylist()[1] == "x = 1\n"
    assert rows(release, PY1) == []
    assert [p["promoted"]["repo_name"] for r in audit["requests"] for p in r["promotions"]] == ["eve/e"]
    assert rel.verify_release(release / DEDUP) == []


def test_without_work_folder_nothing_is_promoted(built, tmp_path):
    release, _ = built
    audit = oo.apply(registry(tmp_path, REGISTRY), release, report=tmp_path / "audit.json")
    assert audit["promotions"] == 0 and audit["work_purged"] == {}
    assert rows(release, PY1) == [("dave/copy", "other.py")]
    assert (tmp_path / "audit.json").exists()


def test_malformed_registry_applies_nothing(built, tmp_path):
    release, work = built
    before = snapshot(tmp_path / "work")
    path = registry(tmp_path, REGISTRY)
    path.write_text(path.read_text() + '{"id": "r9", "date": "2023-11-05", "user": "eve", "repos": ["eve"]}\n')
    with pytest.raises(RegistryError, match=r"registry\.jsonl:3: repos\[0\]: 'eve' is not owner/name"):
        oo.apply(path, release, work)
    assert snapshot(tmp_path / "work") == before


def test_verify_catches_planted_leaks(built, tmp_path):
    release, work = built
    path = registry(tmp_path, REGISTRY)
    oo.apply(path, release, work)
    assert oo.verify(path, release, work).ok

    # A leak planted in a shard whose manifest entry was updated to match: only the leak is left to find.
    t = pq.read_table(release / JS)
    planted = pa.Table.from_pylist([file_row("ALICE/sneaky", "s.js", "s0", language="JavaScript")], schema=RELEASE)
    pq.write_table(pa.concat_tables([t, planted]), release / JS)
    manifest = rel.read_manifest(release / DEDUP)
    manifest["shards"] = [asdict_entry(release / DEDUP, s["path"]) for s in manifest["shards"]]
    (release / DEDUP / rel.MANIFEST).write_text(json.dumps(manifest))
    report = oo.verify(path, release)
    assert report.problems == [] and report.exit_code() == 1
    assert report.leaks == [{"file": str(release / JS), "repo_name": "ALICE/sneaky", "request": "r1", "rows": 1}]

    # A changed shard the manifest does not describe is a problem (exit 2) even without a leak.
    pq.write_table(t, release / JS)
    report = oo.verify(path, release)
    assert report.leaks == [] and report.exit_code() == 2 and JS.removeprefix(f"{DEDUP}/") in report.problems[0]


def asdict_entry(release: Path, shard: str) -> dict:
    e = rel.describe_shard(release, shard)
    return {"path": e.path, "rows": e.rows, "bytes": e.bytes, "sha256": e.sha256}


def test_verify_scans_every_work_table_and_unindexed_tokens(built, tmp_path):
    release, work = built
    path = registry(tmp_path, REGISTRY)
    report = oo.verify(path, release, work)  # nothing applied yet: leaks in shards and work tables
    leaked = {(Path(leak["file"]).relative_to(work).parts[0], leak["repo_name"]) for leak in report.leaks}
    assert leaked == {
        ("shards", "Alice/proj"),  # the release, <work>/shards/release
        ("shards", "bob/new-name"),
        ("near_dedup", "alice/other"),  # rejected rows and cluster members
        ("near_dedup", "ALICE/dup"),
        ("near_dedup", "Alice/proj"),
        ("fetch", "Alice/proj"),
    }
    # A report listing repositories is a leak too.
    (work / "report").mkdir()
    (work / "report" / "report.json").write_text(json.dumps({"top": [{"repo": "alice/proj"}, "carol/c"]}))
    report = oo.verify(path, release, work)
    assert {"file": str(work / "report" / "report.json"), "repo_name": "alice/proj", "request": "r1", "rows": 1} in (
        report.leaks
    )
    (work / "report" / "report.json").unlink()

    tokens = tokens_dir(work)  # token files without any index of what is in them: cannot be proven clean
    tokens.mkdir(parents=True)
    (tokens / "part-00000.bin").write_bytes(b"\0" * 16)
    audit = oo.apply(path, release, work)
    assert any("token files not edited" in w for w in audit["warnings"])
    report = oo.verify(path, release, work)
    assert report.exit_code() == 2 and "cannot be verified" in report.problems[0]


def test_check_lists_a_users_repositories(built):
    release, _ = built
    assert oo.check("ALICE", release) == {DEDUP: {"Alice/proj": 1}, TRAIN: {"Alice/proj": 1}}
    assert oo.check("carol", release) == {DEDUP: {"carol/c": 2}, TRAIN: {"carol/c": 1}}  # one repository row, 1 file
    assert oo.check("nobody", release) == {}
    assert oo.check("carol", release / DEDUP) == {".": {"carol/c": 2}}  # one product folder


def test_cli_commands(built, tmp_path, capsys):
    release, _ = built
    path = registry(tmp_path, REGISTRY)
    assert cli.main(["optout", "check", "carol", "--release", str(release)]) == 0
    assert f"{DEDUP}\tcarol/c\t2" in capsys.readouterr().out
    assert cli.main(["optout", "verify", "--registry", str(path), "--release", str(release)]) == 1
    assert "LEAK" in capsys.readouterr().out
    report = tmp_path / "audit.json"
    assert (
        cli.main(["optout", "apply", "--registry", str(path), "--release", str(release), "--report", str(report)]) == 0
    )
    assert json.loads(capsys.readouterr().out)["files_removed"] == 2
    assert cli.main(["optout", "verify", "--registry", str(path), "--release", str(release)]) == 0
    assert capsys.readouterr().out.startswith("OK:")


def test_cli_apply_is_refused_while_a_run_holds_the_work_folder(built, tmp_path, capsys):
    """``optout apply --work`` takes the work folder's lock: with a run holding it, nothing is rewritten."""
    release, work = built
    path = registry(tmp_path, REGISTRY)
    before = snapshot(release.parent)
    holder = hold(work)
    try:
        args = ["optout", "apply", "--registry", str(path), "--release", str(release), "--work", str(work)]
        assert cli.main(args) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert snapshot(release.parent) == before
    finally:
        holder.kill()
        holder.wait()
    assert cli.main(args) == 0  # the holder is gone: its lock is taken over
    assert snapshot(release.parent) != before


def test_exact_duplicates_stand_in_by_the_exact_dedup_order(built, tmp_path):
    release, work = built
    # Alice/proj also released y.py, in no near-duplicate cluster; its exact duplicates were rejected.
    t = pq.read_table(release / PY0)
    pq.write_table(
        pa.concat_tables([t, pa.Table.from_pylist([file_row("Alice/proj", "y.py", "y0", 10)], schema=RELEASE)]),
        release / PY0,
    )
    manifest = rel.read_manifest(release / DEDUP)
    manifest["shards"] = [asdict_entry(release / DEDUP, s["path"]) for s in manifest["shards"]]
    (release / DEDUP / rel.MANIFEST).write_text(json.dumps(manifest))
    dups = [
        file_row("frank/f", "x.py", "x1", star_events_count=1),  # same blob as alice/other (cluster rank 1)
        file_row("amy/a", "y.py", "y0", star_events_count=500),  # no GitHub license: after any licensed copy
        file_row("zed/z", "y.py", "y0", star_events_count=100, gha_license_id="MIT"),
        file_row("alice/fork", "y.py", "y0", star_events_count=900, gha_license_id="MIT"),
    ]  # opted out
    write_parquet(
        work / "exact_dedup" / "rejected" / "part-00000.parquet",
        [{**r, "reason": "exact_duplicate"} for r in dups]
        # rejected rows that may never be released are never promoted
        + [{**file_row("gpl/g", "y.py", "y0", star_events_count=999), "reason": "non_permissive"}],
        with_reason(ANNOTATED),
    )

    audit = oo.apply(registry(tmp_path, REGISTRY), release, work)
    assert rows(release, PY0) == [("carol/c", "c.py"), ("frank/f", "x.py"), ("zed/z", "y.py")]
    assert rows(release, PY1) == [("dave/copy", "other.py")]
    promos = sorted(
        (p["cluster_id"] or "-", p["promoted"]["repo_name"], p["promoted"]["reason"])
        for r in audit["requests"]
        for p in r["promotions"]
    )
    assert promos == [("-", "zed/z", "exact_duplicate"), ("c1", "frank/f", "exact_duplicate")]
    assert rel.verify_release(release / DEDUP) == []
    assert oo.verify(tmp_path / "registry.jsonl", release, work).ok


def test_cli_reports_a_malformed_registry(built, tmp_path, capsys):
    release, _ = built
    before = snapshot(release)
    path = tmp_path / "registry.yaml"
    path.write_text("- id: a\n  date: 2023-13-01\n  user: alice\n  repos: all\n")
    assert cli.main(["optout", "apply", "--registry", str(path), "--release", str(release)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1: invalid value: month must be in 1..12" in err and "nothing applied" in err
    assert snapshot(release) == before


def test_interrupted_apply_is_finished_by_the_next(tmp_path, monkeypatch):
    path = registry(tmp_path, REGISTRY)
    (release, work), (clean_release, clean_work) = build(tmp_path / "a"), build(tmp_path / "b")
    oo.apply(path, clean_release, clean_work)

    real_replace, renamed = os.replace, []

    def dies_after_one_shard(src, dst):
        if str(dst).endswith(".parquet") and renamed:
            raise KeyboardInterrupt  # killed between two shard renames, after the commit point
        renamed.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_after_one_shard)
    with pytest.raises(KeyboardInterrupt):
        oo.apply(path, release, work)
    monkeypatch.undo()
    assert (release / oo.JOURNAL).exists()
    assert oo.verify(path, release).exit_code() != 0

    oo.apply(path, release, work)
    assert not (release / oo.JOURNAL).exists()
    assert snapshot(release) == snapshot(clean_release)
    assert oo.verify(path, release, work).ok
