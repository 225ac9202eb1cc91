"""Extract on Spark: the real example graph (checked by hand), git-built graphs, SWHID roots, bad input."""

import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest
from gitutil import git

from pipelines._job import StageContext, run_stage
from pipelines.runner import run_pipeline
from pipelines.stages.extract import STAGE, GraphError, transform
from stackv2.config import ExtractConfig, RunConfig, SparkConfig
from stackv2.swh.archive.git import add_git_repo
from stackv2.swh.archive.graph import GraphBuilder
from stackv2.swh.content_store import LocalStore

pytestmark = pytest.mark.spark
SPARK = SparkConfig(master="local[2]", shuffle_partitions=4, driver_memory="2g")


def run_extract(spark, tmp_path: Path, **cfg_kwargs):
    cfg = RunConfig(work_dir=str(tmp_path / "work"), stages=("extract",), spark=SPARK, **cfg_kwargs)
    ctx = StageContext(spark=spark, cfg=cfg, work_dir=tmp_path / "work", previous=None, config_hash="t")
    stats, _ = run_stage(ctx, "extract", STAGE.run)
    data = pq.read_table(tmp_path / "work/extract/data").to_pylist()
    rejected = pq.read_table(tmp_path / "work/extract/rejected").to_pylist()
    return stats, data, rejected


def test_example_graph_lists_the_selected_branch_files(spark, example_graph, tmp_path):
    # By hand, from the example's ORC tables: both origins' latest full visits (snapshots 20 and 22) have
    # refs/heads/master -> revision 09 -> root directory 08, which holds README.md (cnt 01), parser.c (07) and
    # tests/ (dir 06: README.rst (04), main.py (05)). The second origin is a duplicate of the same revision.
    stats, data, rejected = run_extract(
        spark, tmp_path, graph=str(example_graph), extract=ExtractConfig(origin_pattern=".*")
    )
    h = lambda n: f"{n:040d}"  # noqa: E731
    assert sorted((r["path"], r["content_id"]) for r in data) == [
        ("/README.md", h(1)),
        ("/parser.c", h(7)),
        ("/tests/README.rst", h(4)),
        ("/tests/main.py", h(5)),
    ]
    assert {r["repo_url"] for r in data} == {"https://example.com/swh/graph"}
    assert {(r["revision_id"], r["directory_id"], r["branch_name"]) for r in data} == {
        (h(9), h(8), "refs/heads/master")
    }
    assert [(r["origin"], r["reason"]) for r in rejected] == [("https://example.com/swh/graph2", "duplicate_revision")]
    assert stats.extra["repositories"] == 1 and stats.extra["roots"] == 2


def test_default_pattern_keeps_github_only(spark, example_graph, tmp_path):
    stats, data, rejected = run_extract(spark, tmp_path, graph=str(example_graph))
    assert data == [] and rejected == [] and stats.extra["roots"] == 0


@pytest.fixture(scope="module")
def git_graph(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gitgraph")
    a = root / "a"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    (a / "src").mkdir()
    (a / "src" / "app.py").write_text("print('a')\n")
    (a / "README.md").write_text("# A\n")
    git(a, "add", "-A")
    sub = git(a, "hash-object", "-w", "--stdin", stdin="x")  # any sha works as a gitlink target
    git(a, "update-index", "--add", "--cacheinfo", f"160000,{sub},vendor/lib")
    git(a, "commit", "-q", "-m", "a")
    fork = root / "fork"
    subprocess.run(["git", "clone", "-q", str(a), str(fork)], check=True)
    c = root / "c"
    c.mkdir()
    git(c, "init", "-q", "-b", "dev")
    (c / "x.c").write_text("int main(){}\n")
    git(c, "add", "-A")
    git(c, "commit", "-q", "-m", "c")
    out = root / "archive"
    b = GraphBuilder(LocalStore(out))
    add_git_repo(b, a, "https://github.com/alice/proj")
    add_git_repo(b, fork, "https://github.com/bob/proj-fork")
    add_git_repo(b, c, "https://github.com/carol/other")
    add_git_repo(b, c, "https://gitlab.com/carol/other")
    b.write(out / "orc")
    return out


def test_git_graph_selection_and_reasons(spark, git_graph, tmp_path):
    stats, data, rejected = run_extract(spark, tmp_path, graph=str(git_graph / "orc"))
    assert sorted((r["repo_name"], r["path"]) for r in data) == [
        ("alice/proj", "/README.md"),
        ("alice/proj", "/src/app.py"),
    ]
    reasons = sorted((r["origin"] or "", r["path"] or "", r["reason"]) for r in rejected)
    assert reasons == [
        ("", "/vendor/lib", "submodule"),
        ("https://github.com/bob/proj-fork", "", "duplicate_revision"),
        ("https://github.com/carol/other", "", "no_default_branch"),  # only refs/heads/dev; HEAD is an alias
    ]
    assert stats.extra["roots"] == 3  # the gitlab origin does not match the GitHub-only default


def test_github_metadata_picks_the_default_branch(spark, git_graph, tmp_path):
    meta = pa.table(
        {
            "full_name": ["carol/other", "bob/proj-fork"],
            "github_id": [7, 3],
            "default_branch": ["dev", "main"],
            "license_spdx_id": [None, "MIT"],
            "star_events_count": [5, 100],
            "fork_events_count": [1, 2],
            "created_at": pa.array([None, None], pa.timestamp("us")),
            "event_created_at": pa.array([None, None], pa.timestamp("us")),
            "language": ["C", None],
        }
    )
    pq.write_table(meta, tmp_path / "gh.parquet")
    _, data, _ = run_extract(
        spark, tmp_path, graph=str(git_graph / "orc"), github_metadata=str(tmp_path / "gh.parquet")
    )
    by_repo = {r["repo_name"]: r for r in data}
    assert by_repo["carol/other"]["branch_name"] == "refs/heads/dev"
    assert by_repo["carol/other"]["star_events_count"] == 5 and by_repo["carol/other"]["github_id"] == 7
    # alice and bob share one revision; the revision-level pick keeps one of them, then the root directory is
    # unique. Stars of the unknown repository are 0, not null.
    assert {r["star_events_count"] for r in data} >= {5}
    assert all(r["star_events_count"] is not None for r in data)


def test_swhid_roots(spark, git_graph, tmp_path):
    revs = orc.read_table(str(git_graph / "orc/revision/revision-all.orc")).to_pylist()
    dirs = {r["directory"] for r in revs}
    rev = revs[0]["id"]
    roots = tmp_path / "roots.txt"
    roots.write_text(
        f"# comment\nswh:1:rev:{rev};origin=https://github.com/x/y\n"
        f"swh:1:dir:{sorted(dirs)[-1]}\n"
        f"swh:1:rel:{'f' * 40}\n"
    )
    stats, data, rejected = run_extract(spark, tmp_path, graph=str(git_graph / "orc"), swhids=str(roots))
    assert {r["reason"] for r in rejected} >= {"unresolved_swhid"}
    assert any(r["repo_name"] == "x/y" and r["revision_id"] == rev for r in data)
    assert stats.extra["roots"] == 3


def _tables_scanned(df) -> set[str]:
    """The graph tables that ``df``'s physical plan reads from their files (a kept frame is read as itself)."""
    leaves = df._jdf.queryExecution().sparkPlan().collectLeaves()
    scans = (leaves.apply(i) for i in range(leaves.size()))
    return {
        leaf.relation().location().rootPaths().head().getName() for leaf in scans if leaf.nodeName() == "Scan orc "
    }


@pytest.mark.parametrize("roots", ["origins", "swhids"])
def test_rejected_rows_reuse_the_selection_instead_of_reading_its_tables_again(spark, git_graph, tmp_path, roots):
    swhids = None
    if roots == "swhids":
        rev = orc.read_table(str(git_graph / "orc/revision/revision-all.orc")).to_pylist()[0]["id"]
        (tmp_path / "roots.txt").write_text(f"swh:1:rev:{rev}\nswh:1:dir:{'e' * 40}\nswh:1:rel:{'f' * 40}\n")
        swhids = str(tmp_path / "roots.txt")
    cfg = RunConfig(graph=str(git_graph / "orc"), swhids=swhids, spark=SPARK)
    index, rejected, _ = transform(spark, cfg)
    selection = {"origin", "origin_visit_status", "snapshot_branch", "revision", "release", "directory"}
    assert not selection & (_tables_scanned(rejected) | _tables_scanned(index))
    assert {r["reason"] for r in rejected.collect()} >= ({"unresolved_swhid"} if swhids else {"duplicate_revision"})
    spark.catalog.clearCache()


def test_missing_table_is_a_clear_error(spark, example_graph, tmp_path):
    broken = tmp_path / "graph"
    shutil.copytree(example_graph, broken)
    shutil.rmtree(broken / "directory_entry")
    cfg = RunConfig(
        work_dir=str(tmp_path / "w"),
        graph=str(broken),
        stages=("extract",),
        spark=SPARK,
        extract=ExtractConfig(origin_pattern=".*"),
    )
    with pytest.raises(GraphError, match="table 'directory_entry' is missing"):
        run_pipeline(cfg, log=lambda m: None)
