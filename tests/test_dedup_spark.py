"""The dedup stages on Spark: exact priority and the license decision, near-dup clusters and ranks, accounting,
partition independence, and where corrected and reference mode part."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipelines._job import StageContext, run_stage
from pipelines.components import connected_components
from pipelines.stages import exact_dedup, near_dedup
from stackv2 import schema
from stackv2.config import RunConfig, SparkConfig
from stackv2.dedup.config import DedupConfig
from stackv2.workdir import adopt_outputs

pytestmark = pytest.mark.spark

INPUT = pa.schema([*schema.FETCHED, pa.field("language", pa.string()), pa.field("license_type", pa.string())])


def text(seed: int, edits: int = 0, base: int | None = None) -> str:
    """200 random words; ``edits`` of them replaced (a near-duplicate of ``text(base)``)."""
    rng = np.random.default_rng(base if base is not None else seed)
    words = list(rng.choice([f"w{i}" for i in range(400)], 200))
    for i in np.random.default_rng(seed + 1000).choice(200, edits, replace=False):
        words[i] = f"edit{i}"
    return " ".join(words)


def row(
    repo: str,
    path: str,
    blob: str,
    content: str,
    *,
    lang="Python",
    lic="permissive",
    gha=None,
    stars=0,
    forks=0,
    rev="2023-01-01",
) -> dict:
    return {
        "repo_name": repo,
        "directory_id": f"dir-{repo}",
        "path": path,
        "blob_id": blob,
        "content_id": blob,
        "content": content,
        "language": lang,
        "license_type": lic,
        "gha_license_id": gha,
        "star_events_count": stars,
        "fork_events_count": forks,
        "revision_date": datetime.fromisoformat(rev),
        "visit_date": datetime(2023, 6, 1),
        "length": len(content),
        "length_bytes": len(content),
    }


ROWS = [
    # one blob in three repos: the permissive GitHub license beats the stars
    row("r1/a", "e.py", "e1", text(1), gha="MIT", stars=5),
    row("r2/a", "e.py", "e1", text(1), lic="no_license", stars=100),
    row("r3/a", "e.py", "e1", text(1), lic="non_permissive", gha="GPL-3.0", stars=100),
    # same blob, all equal but the revision date; then a full tie broken by repo_name
    row("r4/a", "f.py", "e2", text(2), rev="2022-01-01"),
    row("r5/a", "f.py", "e2", text(2), rev="2024-01-01"),
    row("r7/b", "g.py", "e3", text(3)),
    row("r6/b", "g.py", "e3", text(3)),
    # a near-duplicate cluster in Python: permissive first, then stars, then the newest revision
    row("n1/a", "m.py", "n1", text(10), lic="no_license", stars=500),
    row("n2/a", "m.py", "n2", text(11, 4, base=10), stars=50),
    row("n3/a", "m.py", "n3", text(12, 8, base=10), stars=50, rev="2024-05-01"),
    # the same text in another language is not compared
    row("n4/a", "m.java", "n4", text(13, 2, base=10), lang="Java"),
    # too short for a signature; unrelated
    row("s1/a", "s.py", "s1", "a b c"),
    row("s2/a", "s.py", "s2", "a b c "),
    row("u1/a", "u.py", "u1", text(20)),
]


def frame(spark, rows, partitions):
    table = pa.Table.from_pylist(rows, schema=INPUT)
    return spark.createDataFrame(table).repartition(partitions)


def run(
    spark,
    tmp: Path,
    partitions: int,
    cfg: DedupConfig | None = None,
    rows: list[dict] = ROWS,
    fidelity: str = "corrected",
):
    """exact_dedup then near_dedup on ``rows`` (written as the annotate stage's output in ``partitions`` files);
    returns the work folder and both stages' stats."""
    work = tmp / f"p{partitions}"
    (work / "annotate").mkdir(parents=True)
    frame(spark, rows, partitions).write.parquet(str(work / "annotate" / "data"))
    adopt_outputs(work / "annotate")
    run_cfg = RunConfig(
        work_dir=str(work), fidelity=fidelity, near_dedup=cfg or DedupConfig(), spark=SparkConfig(shuffle_partitions=3)
    )
    stats = []
    for previous, stage in (("annotate", exact_dedup), ("exact_dedup", near_dedup)):
        ctx = StageContext(spark=spark, cfg=run_cfg, work_dir=work, previous=previous, config_hash="test")
        stats.append(run_stage(ctx, stage.STAGE.name, stage.run)[0])
    return work, *stats


def kept(spark, work: Path, stage: str) -> dict[str, dict]:
    return {r["blob_id"]: r.asDict() for r in spark.read.parquet(str(work / stage / "data")).collect()}


@pytest.mark.slow
def test_dedup_stages(spark, tmp_path):
    work, exact, near = run(spark, tmp_path, 7)
    assert exact.rows_in == len(ROWS)
    assert exact.rejected == {"non_permissive": 1, "exact_duplicate": 3}
    assert (near.rows_in, near.rejected) == (exact.rows_out, {"near_duplicate": 2})

    stack = kept(spark, work, "exact_dedup")
    assert set(stack) == {"e1", "e2", "e3", "n1", "n2", "n3", "n4", "s1", "s2", "u1"}
    assert stack["e1"]["repo_name"] == "r1/a"
    assert stack["e2"]["repo_name"] == "r5/a"
    assert stack["e3"]["repo_name"] == "r6/b"

    dedup = kept(spark, work, "near_dedup")
    assert set(dedup) == {"e1", "e2", "e3", "n3", "n4", "s1", "s2", "u1"}
    assert (dedup["n3"]["cluster_id"], dedup["n3"]["is_representative"]) == ("n1", True)
    assert all(dedup[b]["cluster_id"] is None and dedup[b]["is_representative"] is None for b in ("n4", "s1", "u1"))

    rejected = spark.read.parquet(str(work / "near_dedup" / "rejected"))
    assert set(rejected.columns) == {*INPUT.names, "reason"}
    near_dups = {r["blob_id"]: r for r in rejected.collect()}
    assert set(near_dups) == {"n1", "n2"} and near_dups["n1"]["content"] == text(10)

    clusters = spark.read.parquet(str(work / "near_dedup" / "clusters"))
    assert clusters.columns == schema.DEDUP_CLUSTERS.names
    got = sorted((r["cluster_id"], r["rank"], r["blob_id"], r["is_representative"]) for r in clusters.collect())
    assert got == [("n1", 0, "n3", True), ("n1", 1, "n2", False), ("n1", 2, "n1", False)]

    # the same input in 2 partitions: byte-identical outputs
    work2, *_ = run(spark, tmp_path, 2)
    for name in (
        "exact_dedup/data",
        "exact_dedup/rejected",
        "near_dedup/data",
        "near_dedup/rejected",
        "near_dedup/clusters",
    ):
        files = sorted(p.name for p in (work / name).iterdir())
        assert files == sorted(p.name for p in (work2 / name).iterdir())
        assert all((work / name / f).read_bytes() == (work2 / name / f).read_bytes() for f in files)


#: One blob in a copyleft repository (GitHub says GPL-3.0) and in an unlicensed one; one blob whose only other
#: copy has no language.
LICENSE_ROWS = [
    row("gpl/a", "x.py", "b1", text(40), lic="non_permissive", gha="GPL-3.0"),
    row("free/a", "x.py", "b1", text(40), lic="no_license"),
    row("named/a", "y", "b2", text(41), lang=None, stars=9),
    row("other/a", "y.py", "b2", text(41)),
]


def test_license_first_keeps_a_blob_bigcode_lost(spark, tmp_path):
    """Corrected: the copyleft and language-less copies are out before a copy is chosen, so each blob survives
    through its eligible copy. Reference: BigCode's window ranks a GitHub license (GPL: not permissive, but not
    null) above none, and the most stars first; the chosen copies are then dropped, and both blobs with them."""
    work, exact, _ = run(spark, tmp_path / "corrected", 2, rows=LICENSE_ROWS)
    assert {b: r["repo_name"] for b, r in kept(spark, work, "exact_dedup").items()} == {
        "b1": "free/a",
        "b2": "other/a",
    }
    assert exact.rejected == {"non_permissive": 1, "no_language": 1}

    work, exact, _ = run(spark, tmp_path / "reference", 2, rows=LICENSE_ROWS, fidelity="reference")
    assert kept(spark, work, "exact_dedup") == {}
    assert exact.rejected == {"non_permissive": 1, "no_language": 1, "exact_duplicate": 2}


def test_a_row_without_a_path_takes_no_part_in_the_choice(spark, tmp_path):
    """The copies are ranked over the file key and joined back by it: a row with a null ``path`` (no extract output
    has one) is neither ranked nor rejected as a copy, and is not lost."""
    rows = [
        row("a/a", "x.py", "b1", text(60), stars=9),
        row("b/a", "x.py", "b1", text(60), stars=1),
        row("c/a", None, "b1", text(60), stars=50),
    ]
    work, exact, near = run(spark, tmp_path, 2, rows=rows)
    assert exact.rejected == {"exact_duplicate": 1} and exact.rows_out == 2
    got = sorted((r["repo_name"], r["path"]) for r in spark.read.parquet(str(work / "exact_dedup" / "data")).collect())
    assert got == [("a/a", "x.py"), ("c/a", None)]
    assert near.rows_in == 2 and near.rows_out + sum(near.rejected.values()) == 2


#: Three files too short to have a shingle (fewer than 5 tokens), and a long one.
SHORT_ROWS = [row(f"s{i}/a", "s.py", f"s{i}", c) for i, c in enumerate(("a", "b c", "x = 1"))] + [
    row("u/a", "u.py", "u", text(50))
]


def test_short_files(spark, tmp_path):
    """Corrected: a file too short to compare is never a near-duplicate (docs/spec.md §6.2's text). Reference:
    BigCode's empty signature is all 2**32-1, so every short file of a language is one cluster and one survives."""
    work, _, near = run(spark, tmp_path / "unique", 2, rows=SHORT_ROWS)
    assert set(kept(spark, work, "near_dedup")) == {"s0", "s1", "s2", "u"} and near.rejected == {}
    work, _, near = run(spark, tmp_path / "cluster", 2, rows=SHORT_ROWS, fidelity="reference")
    assert near.rejected == {"near_duplicate": 2}
    assert len(set(kept(spark, work, "near_dedup")) & {"s0", "s1", "s2"}) == 1


@pytest.mark.slow
def test_near_dedup_with_verify(spark, tmp_path):
    # exact Jaccard: n1-n2 0.83, n1-n3 0.66, n2-n3 0.56: LSH clusters all three, verification keeps n1-n2 only
    work, _, stats = run(spark, tmp_path, 3, DedupConfig(verify=True))
    assert stats.rejected == {"near_duplicate": 1}
    assert spark._jsparkSession.sharedState().cacheManager().isEmpty()  # its cached rows and sketches released
    assert stats.extra["unverified_large_components"] == 0
    clusters = spark.read.parquet(str(work / "near_dedup" / "clusters")).collect()
    # n2 (permissive) outranks n1 (no_license, more stars)
    assert sorted((r["cluster_id"], r["rank"], r["blob_id"]) for r in clusters) == [("n1", 0, "n2"), ("n1", 1, "n1")]

    # the same with components of 3 over the size limit: LSH's cluster stays whole, and is counted
    work, _, stats = run(spark, tmp_path / "small-limit", 3, DedupConfig(verify=True, verify_max_members=2))
    assert stats.extra["unverified_large_components"] == 1
    assert stats.rejected == {"near_duplicate": 2}
    clusters = spark.read.parquet(str(work / "near_dedup" / "clusters")).collect()
    assert sorted((r["cluster_id"], r["blob_id"]) for r in clusters) == [("n1", "n1"), ("n1", "n2"), ("n1", "n3")]


#: x2 is x1 with 3 of 200 words changed (Jaccard ~0.9); x3 has 40 changed (Jaccard ~0.2).
TRIPLE = [
    row("a/a", "x.py", "x1", text(30)),
    row("b/a", "x.py", "x2", text(31, 3, base=30)),
    row("c/a", "x.py", "x3", text(32, 40, base=30)),
]


@pytest.mark.parametrize("verify", [False, True])
@pytest.mark.parametrize("rows", [[], ROWS[-3:]], ids=["empty", "no-candidates"])
def test_no_candidates(spark, tmp_path, rows, verify):
    """No file or no LSH candidate: components and verification have nothing to do (and must not wait for metrics
    of plan branches AQE dropped), and the stage still accounts for every row."""
    work, _, stats = run(spark, tmp_path, 2, DedupConfig(verify=verify), rows)
    assert (stats.rows_in, stats.rows_out, stats.rejected) == (len(rows), len(rows), {})
    assert stats.extra.get("unverified_large_components") == (0 if verify else None)
    assert spark.read.parquet(str(work / "near_dedup" / "clusters")).isEmpty()


def test_verify_keeps_only_exactly_similar_pairs(spark):
    # one-row bands make nearly every pair with shared shingles a candidate: LSH alone chains x3 in
    cfg = DedupConfig(bands=25, rows=1, verify=True)
    sketched = near_dedup.sketches(frame(spark, TRIPLE, 2), cfg)
    components = connected_components(near_dedup.candidate_edges(sketched), "src", "dst")
    assert {r["node"] for r in components.collect()} == {"x1", "x2", "x3"}
    verified, large = near_dedup.verified_components(components, sketched, cfg, components.count())
    assert {(r["node"], r["component"]) for r in verified.collect()} == {("x1", "x1"), ("x2", "x1")}
    assert large.isEmpty()
    # no broadcast by default (``_session.BASE_CONF``): a sort-merge join
    assert "Broadcast" not in verified._jdf.queryExecution().executedPlan().toString()
    # the same where broadcasts are allowed and the node map is small enough
    default = spark.conf.get("spark.sql.autoBroadcastJoinThreshold")
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "10MB")
    try:
        verified, _ = near_dedup.verified_components(components, sketched, cfg, components.count())
        plan = verified._jdf.queryExecution().executedPlan().toString()
        assert {(r["node"], r["component"]) for r in verified.collect()} == {("x1", "x1"), ("x2", "x1")}
    finally:
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", default)
    assert "BroadcastHashJoin" in plan
    # a component over the size limit is left as LSH made it
    verified, large = near_dedup.verified_components(
        components, sketched, dataclasses.replace(cfg, verify_max_members=2), components.count()
    )
    assert verified.isEmpty() and {r["node"] for r in large.collect()} == {"x1", "x2", "x3"}


@pytest.mark.parametrize("engine", ["numpy", "rensa"])
def test_engines_find_the_close_pair(spark, engine):
    cfg = DedupConfig(engine=engine)
    edges = near_dedup.candidate_edges(near_dedup.sketches(frame(spark, TRIPLE, 2), cfg)).collect()
    assert {(r["src"], r["dst"]) for r in edges} == {("x2", "x1")}
