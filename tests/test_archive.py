"""Archive builder: ids equal git's own, tables match the real export's schema, bad input is a clear error."""

from pathlib import Path

import pyarrow.orc as orc
import pytest
from gitutil import git

from stackv2.schema import GRAPH_TABLES
from stackv2.swh.archive import build_archive
from stackv2.swh.archive.git import add_git_repo
from stackv2.swh.archive.graph import ArchiveError, GraphBuilder
from stackv2.swh.config import ArchiveConfig
from stackv2.swh.content_store import LocalStore
from stackv2.text.decode import gunzip_bounded


@pytest.fixture
def repo(tmp_path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "src" / "pkg").mkdir(parents=True)
    (r / "src" / "pkg" / "a.py").write_text("print('hello')\n")
    (r / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (r / "run.sh").chmod(0o755)
    (r / "LICENSE").write_text("MIT License\n\nCopyright (c) 2023 Ada\n")
    (r / "link").symlink_to("src/pkg/a.py")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "first")
    git(r, "tag", "-a", "v1.0", "-m", "release 1.0")
    (r / "src" / "pkg" / "a.py").write_text("print('hello again')\n")
    git(r, "commit", "-q", "-am", "second\n\nwith a body")
    git(r, "checkout", "-q", "-b", "feature")
    (r / "big.bin").write_bytes(b"\0" * 2048)
    git(r, "add", "big.bin")
    git(r, "commit", "-q", "-m", "big")
    git(r, "checkout", "-q", "main")
    return r


def test_git_ids_equal_gits(repo, tmp_path):
    store = LocalStore(tmp_path / "store")
    b = GraphBuilder(store, ArchiveConfig(max_content_bytes=1024))
    url = add_git_repo(b, repo, "https://github.com/ada/repo")
    assert url == "https://github.com/ada/repo"
    revs = {r["id"]: r for r in b.rows["revision"]}
    for ref in ("main", "main~1", "feature"):
        sha = git(repo, "rev-parse", ref)
        assert sha in revs
        assert revs[sha]["directory"] == git(repo, "rev-parse", f"{ref}^{{tree}}")
        assert revs[sha]["raw_manifest"] is None  # swh-model reproduces git's hash from the parsed fields
    dirs = {d["id"] for d in b.rows["directory"]}
    assert git(repo, "rev-parse", "main:src") in dirs and git(repo, "rev-parse", "main:src/pkg") in dirs
    contents = {c["sha1_git"]: c for c in b.rows["content"]}
    blob = git(repo, "hash-object", "src/pkg/a.py")
    assert blob in contents
    assert gunzip_bounded(store.get(contents[blob]["sha1"]), 1 << 20) == b"print('hello again')\n"
    assert {r["id"] for r in b.rows["release"]} == {git(repo, "rev-parse", "v1.0")}
    # the 2 KiB blob is over the 1 KiB cap: listed in skipped_content, not stored
    skipped = b.rows["skipped_content"]
    assert [s["sha1_git"] for s in skipped] == [git(repo, "rev-parse", "feature:big.bin")]
    assert skipped[0]["status"] == "absent" and store.get(skipped[0]["sha1"]) is None
    entries = {(e["name"], e["perms"], e["type"]) for e in b.rows["directory_entry"]}
    assert {(b"run.sh", 0o100755, "file"), (b"link", 0o120000, "file"), (b"src", 0o40000, "dir")} <= entries
    branches = {r["name"]: r for r in b.rows["snapshot_branch"]}
    assert branches[b"HEAD"]["target_type"] == "alias"
    assert bytes.fromhex(branches[b"HEAD"]["target"]) == b"refs/heads/main"
    assert branches[b"refs/heads/main"]["target"] == git(repo, "rev-parse", "main")
    assert branches[b"refs/tags/v1.0"]["target_type"] == "release"
    # persons are pseudonymized like the public export: 32-byte sha256, never the e-mail
    assert all(len(r["author"]) == 32 and b"ada@" not in r["author"] for r in b.rows["revision"])


def test_orc_tables_match_the_real_export(example_graph, repo, tmp_path):
    build_archive(tmp_path / "arch", git_repos=[repo])
    for table, schema in GRAPH_TABLES.items():
        ours = orc.ORCFile(str(tmp_path / "arch" / "orc" / table / f"{table}-all.orc")).schema
        real = orc.ORCFile(str(next((example_graph / table).glob("*.orc")))).schema
        assert [(f.name, f.type) for f in ours] == [(f.name, f.type) for f in real], table
        assert ours.remove_metadata() == schema


def test_rebuild_is_byte_identical(repo, tmp_path):
    build_archive(tmp_path / "a", git_repos=[repo])
    build_archive(tmp_path / "b", git_repos=[repo])
    for f in sorted((tmp_path / "a").rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes(), f


def test_not_a_git_repo_is_a_clear_error(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ArchiveError, match="is not a git repository"):
        build_archive(tmp_path / "out", git_repos=[tmp_path / "plain"])
    with pytest.raises(ArchiveError, match="is not a directory"):
        build_archive(tmp_path / "out", git_repos=[tmp_path / "missing"])


def test_installed_distributions_become_github_like_repos(tmp_path):
    summary = build_archive(tmp_path / "arch", installed=True, max_repos=3, max_files_per_repo=50, include=["pip"])
    assert summary["origins"] == 3
    urls = orc.read_table(str(tmp_path / "arch/orc/origin/origin-all.orc")).column("url").to_pylist()
    assert "https://github.com/pypa/pip" in urls
    assert all(u.startswith("https://github.com/") and u.count("/") == 4 for u in urls)
    entries = orc.read_table(str(tmp_path / "arch/orc/directory_entry/directory_entry-all.orc"))
    names = {n.decode() for n in entries.column("name").to_pylist()}
    assert any(n.upper().startswith("LICENSE") for n in names)  # real license files, at the tree root
    assert summary["contents"] > 10
