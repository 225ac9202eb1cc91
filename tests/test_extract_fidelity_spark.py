"""Where extract's corrected and reference modes part (docs/fidelity.md): a graph built for each rule, checked both
ways."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines._job import StageContext, run_stage
from pipelines.stages.extract import STAGE
from stackv2.config import RunConfig, SparkConfig
from stackv2.schema import GHARCHIVE_METADATA
from stackv2.swh.archive.graph import GraphBuilder
from stackv2.swh.content_store import LocalStore
from tests.swh_graphs import commit, snapshot

pytestmark = pytest.mark.spark


def _revision(b: GraphBuilder, files: dict[str, bytes], message: str) -> bytes:
    return commit(b, files, message).id


def _origin(b: GraphBuilder, url: str, branches: dict[bytes, bytes]) -> None:
    b.add_visit(url, snapshot(b, branches))


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fidelity-graph")
    b = GraphBuilder(LocalStore(root / "archive"))
    # master and main at different commits, no GitHub default branch
    master = _revision(b, {"a.py": b"x = 1\n"}, "master")
    main = _revision(b, {"a.py": b"x = 2\n"}, "main")
    _origin(b, "https://github.com/o/a", {b"refs/heads/master": master, b"refs/heads/main": main})
    # one tree under two commits (a fork): GitHub knows o/b, not p/b; everything else ties
    tree = {"b.py": b"y = 1\n"}
    _origin(b, "https://github.com/o/b", {b"refs/heads/master": _revision(b, tree, "b")})
    _origin(b, "https://github.com/p/b", {b"refs/heads/master": _revision(b, tree, "fork of b")})
    # an origin URL deeper than a repository
    _origin(b, "https://github.com/q/d/tree/x", {b"refs/heads/master": _revision(b, {"d.py": b"z = 1\n"}, "d")})
    # a name GitHub gave to two repositories: the old one (id 1, more stars) and the current one (id 2)
    _origin(b, "https://github.com/r/e", {b"refs/heads/master": _revision(b, {"e.py": b"w = 1\n"}, "e")})
    b.write(root / "archive" / "orc")
    meta = pa.Table.from_pylist(
        [
            {"full_name": "o/b", "github_id": 7, "star_events_count": 0, "fork_events_count": 0},
            {
                "full_name": "r/e",
                "github_id": 1,
                "star_events_count": 5,
                "fork_events_count": 0,
                "latest_event_at": dt.datetime(2015, 1, 1),
            },
            {
                "full_name": "r/e",
                "github_id": 2,
                "star_events_count": 0,
                "fork_events_count": 0,
                "latest_event_at": dt.datetime(2023, 1, 1),
            },
        ],
        schema=GHARCHIVE_METADATA,
    )
    pq.write_table(meta, root / "github.parquet")
    return root / "archive" / "orc", root / "github.parquet"


def _extract(spark, tmp_path: Path, graph, fidelity: str) -> dict[str, list[dict]]:
    orc, meta = graph
    cfg = RunConfig(
        work_dir=str(tmp_path / fidelity),
        fidelity=fidelity,
        graph=str(orc),
        github_metadata=str(meta),
        spark=SparkConfig(shuffle_partitions=2),
    )
    ctx = StageContext(spark=spark, cfg=cfg, work_dir=tmp_path / fidelity, previous=None, config_hash="t")
    run_stage(ctx, "extract", STAGE.run)
    by_repo: dict[str, list[dict]] = {}
    for r in spark.read.parquet(str(tmp_path / fidelity / "extract" / "data")).collect():
        by_repo.setdefault(r["repo_name"], []).append(r.asDict())
    return by_repo


def test_corrected_and_reference_extract(spark, tmp_path, graph):
    corrected, reference = _extract(spark, tmp_path, graph, "corrected"), _extract(spark, tmp_path, graph, "reference")
    # fallback branches: the first one present vs every one of HEAD/master/main
    assert [r["branch_name"] for r in corrected["o/a"]] == ["refs/heads/master"]
    assert sorted(r["branch_name"] for r in reference["o/a"]) == ["refs/heads/main", "refs/heads/master"]
    # root-tree dedup: a null github_id loses a tie (corrected) or wins it (BigCode's nulls-first ascending sort)
    assert "o/b" in corrected and "p/b" not in corrected
    assert "p/b" in reference and "o/b" not in reference
    # origin filter: repositories only vs BigCode's LIKE prefix, which names the deeper URL by its first segments
    assert "q/d" not in corrected and [r["repo_url"] for r in reference["q/d"]] == ["https://github.com/q/d/tree/x"]
    # a name with two GitHub ids: its current repository vs BigCode's join on the name, where stars then decide
    assert [r["github_id"] for r in corrected["r/e"]] == [2]
    assert [(r["github_id"], r["star_events_count"]) for r in reference["r/e"]] == [(1, 5)]
