"""The ``shards`` stage on a small input: four products, exact schemas, every row written once, identical bytes across
layouts."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines._job import STATS, Stage, StageContext, run_stage
from pipelines.runner import load_stage
from stackv2.config import RunConfig, SparkConfig
from stackv2.release.config import ShardsConfig
from stackv2.release.layout import MANIFEST, SORT_KEY, language_dir, read_manifest, verify_release
from stackv2.release.products import PRODUCTS, THE_STACK_V2, THE_STACK_V2_DEDUP, TRAIN_FULL, TRAIN_SMOL
from stackv2.schema import RELEASE, RELEASE_REPOS
from stackv2.stats import StageStats
from stackv2.workdir import REPORT, adopt_outputs, release_dir

pytestmark = [pytest.mark.spark, pytest.mark.slow]

LANGS = ["Python", "C++", "Visual Basic .NET", None]
CFG = ShardsConfig(target_shard_bytes=6_000, row_group_bytes=1_500)


def make_rows(n_repos: int = 7, seed: int = 1) -> pa.Table:
    """Rows with every column the stage reads; contents of varied sizes so shards and row groups split."""
    from pipelines.stages.shards import INPUT

    rnd = random.Random(seed)
    rows = []
    for r in range(n_repos):
        repo = f"owner{r % 3}/repo{r}"
        for f in range(rnd.randint(2, 7)):
            lang = LANGS[(r + f) % len(LANGS)]
            content = f"# {repo} file {f}\n" + "x = 1\n" * rnd.randint(0, 150)
            blob = hashlib.sha1(content.encode()).hexdigest()  # noqa: S324 (an id, like SWH's)
            rows.append(
                {
                    "blob_id": blob,
                    "directory_id": f"{r:040x}",
                    "path": f"/src/f{f}.py",
                    "content_id": blob[::-1],
                    "detected_licenses": ["MIT"] if r % 2 else [],
                    "license_type": "permissive" if r % 2 else "no_license",
                    "repo_name": repo,
                    "snapshot_id": f"{r + 100:040x}",
                    "revision_id": f"{r + 200:040x}",
                    "branch_name": "refs/heads/main",
                    "visit_date": datetime(2023, 9, 1, 12, r),
                    "revision_date": datetime(2022, 1, 1 + r),
                    "committer_date": datetime(2022, 1, 1 + r, 1),
                    "github_id": 1000 + r if r % 3 else None,
                    "star_events_count": r,
                    "fork_events_count": 0,
                    "gha_license_id": "MIT" if r % 2 else None,
                    "gha_event_created_at": None,
                    "gha_created_at": None,
                    "gha_language": "Python",
                    "src_encoding": "UTF-8",
                    "language": lang,
                    "is_vendor": False,
                    "is_generated": f == 3,
                    "length_bytes": len(content.encode()),
                    "extension": "py",
                    "content": content,
                    "repo_url": f"https://github.com/{repo}",
                    "alphanum_fraction": 0.5,
                    "alpha_fraction": 0.25,
                    "num_lines": content.count("\n"),
                    "avg_line_length": 5.5,
                    "max_line_length": 20,
                }
            )
    rnd.shuffle(rows)
    return pa.Table.from_pylist(rows, schema=INPUT)


#: The product stages' outputs the tests fake: the-stack-v2 is every row, -dedup loses a repository, the training
#: rows are -dedup's with ``train_smol`` for Python and C++.
DROPPED = "owner0/repo6"
SMOL = ("Python", "C++")


def product_tables(table: pa.Table) -> dict[str, pa.Table]:
    near = table.filter(pc.not_equal(table["repo_name"], DROPPED))
    smol = pc.fill_null(pc.is_in(near["language"], value_set=pa.array(SMOL)), False)
    return {"exact_dedup": table, "near_dedup": near, "compose": near.append_column("train_smol", smol)}


def run_shards(spark, tmp: Path, table: pa.Table, files: int, partitions: int) -> Path:
    """Run the stage on the product stages' outputs made from ``table``, each stored as ``files`` Parquet files,
    with ``partitions`` shuffle partitions."""
    work = tmp / "work"
    for stage, rows in product_tables(table).items():
        src = work / stage / "data"
        src.mkdir(parents=True)
        step = -(-rows.num_rows // files)
        for i in range(files):
            pq.write_table(rows.slice(i * step, step), src / f"part-{i}.parquet", coerce_timestamps="us")
        StageStats(stage, rows_in=rows.num_rows, rows_out=rows.num_rows).save(work / stage / STATS)
        adopt_outputs(work / stage)
    cfg = RunConfig(work_dir=str(work), shards=CFG, spark=SparkConfig(shuffle_partitions=partitions))
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    stage: Stage = load_stage("shards")
    ctx = StageContext(spark=spark, cfg=cfg, work_dir=work, previous="compose", config_hash="h")
    run_stage(ctx, "shards", stage.run)
    return work


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    table = make_rows()
    default = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        a = run_shards(spark, tmp_path_factory.mktemp("a"), table, files=1, partitions=2)
        b = run_shards(spark, tmp_path_factory.mktemp("b"), table, files=3, partitions=5)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", default)
    return table, a, b


#: The products whose stage the fixture ran (it has no notebooks stage): the release holds those only.
BUILT = [p for p in PRODUCTS if p.stage != "notebooks"]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_bytes_whatever_the_partitioning(built):
    _, a, b = built
    fa, fb = tree_bytes(release_dir(a)), tree_bytes(release_dir(b))
    assert fa.keys() == fb.keys() and fa == fb
    assert {k.split("/")[0] for k in fa} == {*(p.name for p in BUILT), "README.md"}
    assert sum(k.startswith(f"{THE_STACK_V2}/data/") for k in fa) > len(LANGS)  # a language has 2+ shards


def test_data_shards_have_exactly_the_release_schema_and_every_row_once(built):
    table, work, _ = built
    release = release_dir(work) / THE_STACK_V2
    manifest = read_manifest(release)
    data = manifest["shards"]
    parts = []
    for s in data:
        f = pq.ParquetFile(release / s["path"])
        assert f.schema_arrow.remove_metadata() == RELEASE
        assert f.schema_arrow.names == RELEASE.names
        t = f.read()
        folder = s["path"].split("/")[1]
        assert {language_dir(x) for x in t["language"].to_pylist()} == {folder}
        keys = list(zip(*(t[k].to_pylist() for k in SORT_KEY), strict=True))
        assert keys == sorted(keys)
        parts.append(t)
    got = pa.concat_tables(parts).sort_by([(k, "ascending") for k in SORT_KEY])
    want = table.select(RELEASE.names).cast(RELEASE).sort_by([(k, "ascending") for k in SORT_KEY])
    assert got.to_pylist() == want.to_pylist()
    assert {s["path"].split("/")[1] for s in data} == {"Python", "C++", "Visual_Basic_.NET", "unknown"}


def test_shard_names_count_and_repos_stay_whole(built):
    _, work, _ = built
    release = release_dir(work) / THE_STACK_V2
    shards = read_manifest(release)["shards"]
    by_dir: dict[str, list[str]] = {}
    for s in shards:
        d, name = s["path"].rsplit("/", 1)
        by_dir.setdefault(d, []).append(name)
    for names in by_dir.values():
        n = len(names)
        assert sorted(names) == [f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    for d in by_dir:
        if d.startswith("data/"):
            seen: dict[str, str] = {}
            for name in by_dir[d]:
                for repo in set(pq.read_table(release / d / name, columns=["repo_name"])["repo_name"].to_pylist()):
                    assert seen.setdefault(repo, name) == name, f"{repo} split across shards in {d}"


def test_shards_fill_up_to_the_target_with_whole_repositories(built):
    """Repositories fill shards in key order: a shard holds less than the target before its last repository, and
    a folder has at most floor(bytes / target) + 1 shards."""
    _, work, _ = built
    release = release_dir(work) / THE_STACK_V2
    by_dir: dict[str, list[str]] = {}
    for s in read_manifest(release)["shards"]:
        by_dir.setdefault(s["path"].rsplit("/", 1)[0], []).append(s["path"])
    for paths in by_dir.values():
        folder = 0
        for p in paths:
            t = pq.read_table(release / p, columns=["repo_name", "length_bytes"])
            per_repo: dict[str, int] = {}
            for repo, n in zip(t["repo_name"].to_pylist(), t["length_bytes"].to_pylist(), strict=True):
                per_repo[repo] = per_repo.get(repo, 0) + n + 256
            assert sum(per_repo.values()) - per_repo[max(per_repo)] < CFG.target_shard_bytes
            folder += sum(per_repo.values())
        assert len(paths) <= folder // CFG.target_shard_bytes + 1
    assert max(len(p) for p in by_dir.values()) >= 2


def test_row_groups_are_cut_by_planned_bytes(built):
    _, work, _ = built
    release = release_dir(work) / THE_STACK_V2
    groups = 0
    for s in read_manifest(release)["shards"]:
        md = pq.ParquetFile(release / s["path"]).metadata
        t = pq.read_table(release / s["path"], columns=["length_bytes"])["length_bytes"].to_pylist()
        start = 0
        for g in range(md.num_row_groups):
            n = md.row_group(g).num_rows
            planned = [x + 256 for x in t[start : start + n]]
            # a group closes at the first row reaching the limit: everything before it stays under
            assert sum(planned[:-1]) < CFG.row_group_bytes
            if g < md.num_row_groups - 1:
                assert sum(planned) >= CFG.row_group_bytes
            start += n
        groups += md.num_row_groups
    assert groups > len(read_manifest(release)["shards"])


@pytest.mark.parametrize("product", [TRAIN_FULL, TRAIN_SMOL])
def test_training_products_are_grouped_by_repository(built, product):
    table, work, _ = built
    release = release_dir(work) / product
    rows = product_tables(table)["compose"]
    if product == TRAIN_SMOL:
        rows = rows.filter(rows["train_smol"])
    repos = read_manifest(release)["shards"]
    assert all(s["path"].startswith("data/train-") for s in repos)
    t = pa.concat_tables([pq.read_table(release / s["path"]) for s in repos])
    assert pq.read_schema(release / repos[0]["path"]).remove_metadata() == RELEASE_REPOS
    assert t.num_rows == len(set(rows["repo_name"].to_pylist())) and DROPPED not in t["repo_name"].to_pylist()
    assert sum(t["num_files"].to_pylist()) == rows.num_rows
    table = rows
    for row in t.to_pylist():
        paths = [f["path"] for f in row["files"]]
        assert paths == sorted(paths) and len(paths) == row["num_files"]
        src = {r["path"]: r for r in table.to_pylist() if r["repo_name"] == row["repo_name"]}
        for f in row["files"]:
            assert f["content"] == src[f["path"]]["content"] and f["blob_id"] == src[f["path"]]["blob_id"]


def test_manifest_hashes_and_verification(built, tmp_path):
    _, work, _ = built
    release = release_dir(work) / THE_STACK_V2
    manifest = read_manifest(release)
    for s in manifest["shards"]:
        data = (release / s["path"]).read_bytes()
        assert s["sha256"] == hashlib.sha256(data).hexdigest() and s["bytes"] == len(data)
        assert s["rows"] == pq.ParquetFile(release / s["path"]).metadata.num_rows
    assert manifest["config_hash"] == "h" and manifest["created_from"] == "exact_dedup"
    assert verify_release(release) == []
    copy = tmp_path / "copy"
    for rel, data in tree_bytes(release).items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(data)
    victim = copy / manifest["shards"][0]["path"]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    problems = verify_release(copy)
    assert any("sha256" in p for p in problems) and all(manifest["shards"][0]["path"] in p for p in problems)
    json.loads((copy / MANIFEST).read_text())


def test_stats_card_and_row_table(built, spark):
    table, work, _ = built
    tables = product_tables(table)
    per_product = {
        THE_STACK_V2: tables["exact_dedup"].num_rows,
        THE_STACK_V2_DEDUP: tables["near_dedup"].num_rows,
        TRAIN_FULL: tables["compose"].num_rows,
        TRAIN_SMOL: sum(tables["compose"]["train_smol"].to_pylist()),
    }
    stats = StageStats.load(work / "shards" / STATS)
    assert stats.rows_in == stats.rows_out == sum(per_product.values()) and stats.rejected == {}
    for name, n in per_product.items():
        assert sum(v["files"] for v in stats.extra["products"][name]["languages"].values()) == n
    summary = stats.extra["products"][THE_STACK_V2]
    assert summary["languages"]["unknown"]["files"] == sum(x is None for x in table["language"].to_pylist())
    rows = spark.read.parquet(str(work / "shards" / "data"))
    counts = {r["product"]: r["count"] for r in rows.groupBy("product").count().collect()}
    assert counts == per_product
    located = {(r["product"], r["shard"]) for r in rows.select("product", "shard").distinct().collect()}
    assert all((release_dir(work) / product / p).is_file() for product, p in located)
    card = (release_dir(work) / THE_STACK_V2 / "README.md").read_text()
    assert "| Visual Basic .NET | Visual_Basic_.NET |" in card
    index = (release_dir(work) / "README.md").read_text()
    assert all(f"[`{p.name}`]({p.name}/README.md)" in index for p in BUILT)


def test_report_of_the_built_work_folder(built, spark):
    from pipelines.run_report import report

    _, work, _ = built
    page = report(work, spark)
    numbers = json.loads((page.parent / "report.json").read_text())
    assert [s["stage"] for s in numbers["funnel"]] == ["exact_dedup", "near_dedup", "compose", "shards"]
    assert list(numbers["products"]) == [p.name for p in BUILT]
    assert numbers["products"][THE_STACK_V2]["languages"].keys() == {"Python", "C++", "Visual Basic .NET", "unknown"}
    for png in ("funnel.png", "languages.png", "lengths.png"):
        assert (page.parent / png).stat().st_size > 5_000
    assert page.parent == work / REPORT
