"""Extract on small graphs with the shapes of the real export that strain the traversal: a chain deeper than
``max_depth``, one subtree reached from three roots (forks that changed one file), one snapshot behind two origins, a
directory past the skew guard. Listings are checked against the trees the graph was built from, with shared
subtrees merged (as on a large frontier) and not (as on a small one), on 3 partitions."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import pipelines.stages.extract as extract
from pipelines._job import StageContext, run_stage
from stackv2.config import RunConfig, SparkConfig
from stackv2.swh.archive.graph import GraphBuilder
from stackv2.swh.config import ExtractConfig
from stackv2.swh.content_store import LocalStore
from tests.swh_graphs import commit, snapshot

pytestmark = pytest.mark.spark
MAX_DEPTH = 8
#: A chain of 11 directories, a file in each: the files below depth 8 are never reached.
CHAIN = {"/".join(f"d{j}" for j in range(i)) + f"/f{i}.txt": f"chain {i}\n".encode() for i in range(1, 12)}
UPSTREAM = {
    "README.md": b"upstream\n",
    "lib/a.py": b"a = 1\n",
    "lib/sub/b.py": b"b = 2\n",
    "vendor/x/y.c": b"int y;\n",
    **{f"deep/{p}": data for p, data in CHAIN.items()},
}
#: Forks: the upstream with its README edited, so new roots over the same lib/, vendor/ and deep/ subtrees.
TREES = {
    "https://github.com/up/proj": UPSTREAM,
    "https://github.com/fork1/proj": {**UPSTREAM, "README.md": b"fork 1\n"},
    "https://github.com/fork2/proj": {**UPSTREAM, "README.md": b"fork 2\n"},
}
#: An origin whose latest visit found the upstream's snapshot (a fork never pushed to).
MIRROR = "https://github.com/mirror/proj"


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The graph, and each origin's root directory id."""
    root = tmp_path_factory.mktemp("shapes")
    b = GraphBuilder(LocalStore(root / "archive"))
    roots, snapshots = {}, {}
    for url, files in TREES.items():
        rev = commit(b, files, url)
        snapshots[url] = snapshot(b, {b"refs/heads/master": rev.id})
        b.add_visit(url, snapshots[url])
        roots[url] = rev.directory.hex()
    b.add_visit(MIRROR, snapshots["https://github.com/up/proj"])
    b.write(root / "archive" / "orc")
    return root / "archive" / "orc", roots


def _extract(spark, tmp_path: Path, graph, merge_min_rows: int, limit: int = 1_000_000):
    extract.MERGE_MIN_ROWS = merge_min_rows
    work = tmp_path / f"merge{merge_min_rows}-limit{limit}"
    cfg = RunConfig(
        work_dir=str(work),
        graph=str(graph[0]),
        extract=ExtractConfig(max_depth=MAX_DEPTH, max_paths_per_directory=limit),
        spark=SparkConfig(shuffle_partitions=3),
    )
    ctx = StageContext(spark=spark, cfg=cfg, work_dir=work, previous=None, config_hash="t")
    stats, _ = run_stage(ctx, "extract", extract.STAGE.run)
    data = sorted((r["directory_id"], r["path"]) for r in pq.read_table(work / "extract" / "data").to_pylist())
    rejected = sorted(
        (r["reason"], r["origin"] or "", r["directory_id"] or "", r["path"] or "")
        for r in pq.read_table(work / "extract" / "rejected").to_pylist()
    )
    return stats, data, rejected


@pytest.fixture
def restore_merge_min_rows():
    before = extract.MERGE_MIN_ROWS
    yield
    extract.MERGE_MIN_ROWS = before


def _listed(files: dict[str, bytes]) -> list[str]:
    return sorted("/" + p for p in files if p.count("/") < MAX_DEPTH)


def test_shared_subtrees_deep_chain_and_one_snapshot_for_two_origins(spark, tmp_path, graph, restore_merge_min_rows):
    _, roots = graph
    merged = _extract(spark, tmp_path, graph, merge_min_rows=0)
    stats, data, rejected = merged
    assert data == sorted((roots[url], path) for url, files in TREES.items() for path in _listed(files))
    too_deep = "/deep/" + "/".join(f"d{j}" for j in range(MAX_DEPTH - 1))  # a directory at depth 8
    upstream = "https://github.com/up/proj"  # same revision as the mirror: the URL breaks the tie, mirror < up
    assert rejected == sorted(
        [("duplicate_revision", upstream, roots[upstream], "")]
        + [("too_deep", "", roots[url], too_deep) for url in TREES]
    )
    assert stats.rows_in == stats.rows_out + stats.rows_rejected == len(data) + len(rejected)
    assert stats.extra["repositories"] == 3 and stats.extra["roots"] == 4
    # merged: lib/, vendor/ and deep/ are expanded once for the three roots, so level 2 lists one row each for
    # lib/a.py, lib/sub, vendor/x and deep/d0, standing for three (root, path) pairs each ...
    assert stats.extra["levels"][1] == 4 and stats.extra["level_paths"][1] == 12
    # ... and without merging (a frontier this small is never merged by default) the same rows come out.
    unmerged = _extract(spark, tmp_path, graph, merge_min_rows=10**9)
    assert unmerged[1:] == merged[1:]
    assert unmerged[0].extra["levels"][1] == unmerged[0].extra["level_paths"][1] == 12


def test_skew_guard_on_a_shared_directory(spark, tmp_path, graph, restore_merge_min_rows):
    """lib/, vendor/ and deep/ are each reached by three (root, path) pairs at depth 1: with a guard of two, the
    pair of the last root (by directory id) is rejected and nothing below it is listed; the same whatever the merge
    threshold."""
    _, roots = graph
    last = max(roots.values())
    stats, data, rejected = _extract(spark, tmp_path, graph, merge_min_rows=0, limit=2)
    expected = sorted(
        (roots[url], path)
        for url, files in TREES.items()
        for path in _listed(files)
        if roots[url] != last or path == "/README.md"
    )
    assert data == expected
    guarded = [r for r in rejected if r[0] == "skew_guard"]
    assert guarded == [("skew_guard", "", last, p) for p in ("/deep", "/lib", "/vendor")]
    assert stats.rows_in == stats.rows_out + stats.rows_rejected
    assert _extract(spark, tmp_path, graph, merge_min_rows=10**9, limit=2)[1:] == (data, rejected)
