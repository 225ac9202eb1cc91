"""``stackv2.release`` without Spark: naming, shard writing, manifest, summary and card."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stackv2.release.card import dataset_card, registry_date, release_summary
from stackv2.release.config import ShardsConfig
from stackv2.release.layout import (
    DIR_COL,
    MANIFEST,
    NBYTES_COL,
    SHARD_COL,
    ShardEntry,
    ShardStarts,
    describe_shard,
    file_columns,
    final_paths,
    language_dir,
    read_manifest,
    shard_count,
    shard_files,
    verify_release,
    write_manifest,
    write_shards,
)
from stackv2.release.products import THE_STACK_V2_DEDUP, TRAIN_SMOL, product
from stackv2.schema import RELEASE
from stackv2.stats import StageStats

PAYLOAD = pa.schema([pa.field("path", pa.string()), pa.field("content", pa.string())])


def test_language_dir():
    assert language_dir("Python") == "Python"
    assert language_dir("C++") == "C++"
    assert language_dir("C#") == "C#"
    assert language_dir("Visual Basic .NET") == "Visual_Basic_.NET"
    assert language_dir("F*") == "F_"
    assert language_dir(None) == language_dir("") == "unknown"


def test_shard_count():
    assert shard_count(0, 100) == 1
    assert shard_count(100, 100) == 1
    assert shard_count(101, 100) == 2


def test_final_paths_number_present_buckets_without_gaps():
    written = [
        {"dir": "data/Go", "shard": 7, "path": "/t/a"},
        {"dir": "data/Go", "shard": 2, "path": "/t/b"},
        {"dir": "data", "shard": 0, "path": "/t/c"},
    ]
    assert final_paths(written) == {
        "/t/b": "data/Go/train-00000-of-00002.parquet",
        "/t/a": "data/Go/train-00001-of-00002.parquet",
        "/t/c": "data/train-00000-of-00001.parquet",
    }


def _rows(sizes: list[int], shards: list[int]) -> pa.Table:
    n = len(sizes)
    return pa.table(
        {
            DIR_COL: ["data/X"] * n,
            SHARD_COL: pa.array(shards, pa.int64()),
            NBYTES_COL: pa.array([s + 256 for s in sizes], pa.int64()),
            "path": [f"/f{i:04d}" for i in range(n)],
            "content": ["a" * s for s in sizes],
        }
    )


def _write(table: pa.Table, root: Path, cuts: list[int], cfg: ShardsConfig) -> list[dict]:
    bounds = [0, *sorted(set(cuts)), table.num_rows]
    batches = [b for lo, hi in itertools.pairwise(bounds) for b in table.slice(lo, hi - lo).to_batches()]
    return [r for b in write_shards(batches, str(root), PAYLOAD, cfg) for r in b.to_pylist()]


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 900), min_size=1, max_size=40), data=st.data())
def test_file_bytes_do_not_depend_on_batching(tmp_path_factory, sizes, data):
    """Row groups are cut from the row sequence alone: any batching gives the same files."""
    cfg = ShardsConfig(row_group_bytes=1_000)
    shards = sorted(data.draw(st.lists(st.integers(0, 2), min_size=len(sizes), max_size=len(sizes))))
    table = _rows(sizes, shards)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(sizes) - 1)), max_size=6))
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    wa, wb = _write(table, a, [], cfg), _write(table, b, cuts, cfg)
    assert [(w["shard"], w["rows"], w["sha256"]) for w in wa] == [(w["shard"], w["rows"], w["sha256"]) for w in wb]
    assert [w["shard"] for w in wa] == sorted(set(shards))
    assert sum(w["rows"] for w in wa) == len(sizes)
    for w in wa:
        f = pq.ParquetFile(w["path"])
        assert f.schema_arrow.remove_metadata() == PAYLOAD
        assert hashlib.sha256(Path(w["path"]).read_bytes()).hexdigest() == w["sha256"]
        for g in range(f.num_row_groups - 1):  # every group but the last reached the limit
            t = f.read_row_group(g)
            assert sum(len(c) + 256 for c in t["content"].to_pylist()) >= cfg.row_group_bytes


def test_writer_casts_to_the_exact_release_types(tmp_path):
    """Spark hands timestamps as UTC-zoned microseconds and floats as doubles; shards hold the published types."""
    cols = {}
    for f in RELEASE:
        if pa.types.is_timestamp(f.type):
            cols[f.name] = pa.array([0, 1_000_000], pa.timestamp("us", tz="UTC"))
        elif pa.types.is_list(f.type):
            cols[f.name] = pa.array([["MIT"], []], pa.list_(pa.string()))
        elif pa.types.is_boolean(f.type):
            cols[f.name] = pa.array([True, False])
        elif pa.types.is_integer(f.type):
            cols[f.name] = pa.array([1, 2], pa.int32())
        else:
            cols[f.name] = pa.array(["a", "b"])
    table = pa.table({DIR_COL: ["data/X"] * 2, SHARD_COL: [0, 0], NBYTES_COL: [300, 300], **cols})
    (written,) = [
        r for b in write_shards(table.to_batches(), str(tmp_path), RELEASE, ShardsConfig()) for r in b.to_pylist()
    ]
    out = pq.read_table(written["path"])
    assert out.schema.remove_metadata() == RELEASE
    assert out["visit_date"].to_pylist()[1].isoformat() == "1970-01-01T00:00:01"


def _release(tmp_path: Path) -> Path:
    rel = tmp_path / "release"
    for name in ("data/Go/train-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"):
        (rel / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": [1, 2, 3]}), rel / name)
    entries = [
        describe_shard(rel, p) for p in ("data/train-00000-of-00001.parquet", "data/Go/train-00000-of-00001.parquet")
    ]
    write_manifest(rel, entries, config_hash="abc", created_from="pii")
    return rel


def test_manifest_round_trip_and_verify(tmp_path):
    rel = _release(tmp_path)
    m = read_manifest(rel)
    assert [s["path"] for s in m["shards"]] == [
        "data/Go/train-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
    ]
    assert set(m["shards"][0]) == {"path", "rows", "bytes", "sha256"}
    assert m["shards"][0]["rows"] == 3 and m["config_hash"] == "abc" and m["created_from"] == "pii"
    assert m["shards"][0]["sha256"] == hashlib.sha256((rel / m["shards"][0]["path"]).read_bytes()).hexdigest()
    assert verify_release(rel) == []

    pq.write_table(pa.table({"x": [1]}), rel / "data/Go/train-00000-of-00001.parquet")  # rewritten, not recorded
    (rel / "data/train-00000-of-00001.parquet").unlink()
    pq.write_table(pa.table({"x": [1]}), rel / "data/Go/extra.parquet")
    problems = verify_release(rel)
    assert any(p.startswith("data/Go/train-00000-of-00001.parquet: 1 rows") for p in problems)
    assert "data/train-00000-of-00001.parquet: in the manifest, missing on disk" in problems
    assert "data/Go/extra.parquet: on disk, not in the manifest" in problems

    # the opt-out tool's update path: recompute the rewritten entry, keep the others
    m = read_manifest(rel)
    kept = [ShardEntry(**s) for s in m["shards"] if s["path"] == "data/train-00000-of-00001.parquet"]
    (rel / "data/Go/extra.parquet").unlink()
    pq.write_table(pa.table({"x": [1, 2, 3]}), rel / "data/train-00000-of-00001.parquet")
    write_manifest(
        rel,
        [describe_shard(rel, "data/Go/train-00000-of-00001.parquet"), describe_shard(rel, kept[0].path)],
        config_hash=m["config_hash"],
        created_from=m["created_from"],
    )
    assert verify_release(rel) == []
    assert (rel / MANIFEST).read_text().endswith("\n")


GROUPS = [
    {"language": "Python", "license_type": "permissive", "length_bin": 10, "files": 3, "bytes": 4000},
    {"language": "Python", "license_type": "no_license", "length_bin": 3, "files": 1, "bytes": 9},
    {"language": None, "license_type": "no_license", "length_bin": -1, "files": 2, "bytes": 0},
    {"language": "Visual Basic .NET", "license_type": "permissive", "length_bin": 10, "files": 1, "bytes": 1500},
]


def test_summarize_adds_up():
    s = release_summary(GROUPS)
    assert s.languages == {
        "Python": {"files": 4, "bytes": 4009},
        "Visual Basic .NET": {"files": 1, "bytes": 1500},
        "unknown": {"files": 2, "bytes": 0},
    }
    assert s.license_types == {"no_license": 3, "permissive": 4}
    assert s.length_histogram == {-1: 2, 3: 1, 10: 4}
    assert s.files == 7 and s.bytes == 5509
    assert type(s).from_dict(s.to_dict()) == s


def test_card_has_a_valid_hub_header_and_the_numbers():
    s = release_summary(GROUPS)
    s.repos, s.shards = 3, 3
    funnel = [
        StageStats("extract", rows_in=10, rows_out=10),
        StageStats("filter", rows_in=10, rows_out=7, rejected={"long_lines": 2, "alpha": 1}),
    ]
    card = dataset_card(s, funnel, config_hash="cafe", registry="2024-04-09", product=product(THE_STACK_V2_DEDUP))
    _, header, body = card.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["license"] == "other" and meta["task_categories"] == ["text-generation"]
    assert meta["pretty_name"] == "the-stack-v2-dedup"
    configs = {c["config_name"]: c["data_files"][0]["path"] for c in meta["configs"]}
    assert configs == {
        "default": "data/*/*.parquet",
        "Python": "data/Python/*.parquet",
        "Visual Basic .NET": "data/Visual_Basic_.NET/*.parquet",
        "unknown": "data/unknown/*.parquet",
    }
    assert meta["size_categories"] == ["n<1K"]
    assert "| Python | Python | 4 | 4,009 |" in body
    assert "| filter | 10 | 7 | 3 | alpha: 1, long_lines: 2 |" in body
    assert "2024-04-09" in body and "`cafe`" in body and "arXiv:2402.19173" in body
    assert "no PII redaction" in body
    assert "No opt-out registry" in dataset_card(
        s, funnel, config_hash="cafe", registry=None, product=product(THE_STACK_V2_DEDUP)
    )

    # a repository-level product: one config over its one folder, contents redacted
    card = dataset_card(s, funnel, config_hash="cafe", registry=None, product=product(TRAIN_SMOL))
    _, header, body = card.split("---\n", 2)
    assert [c["data_files"][0]["path"] for c in yaml.safe_load(header)["configs"]] == ["data/*.parquet"]
    assert "after PII redaction" in body and "the-stack-v2-train-smol-ids" in body


def test_registry_date():
    assert registry_date(None) is None
    assert registry_date(StageStats("optout")) is None
    assert registry_date(StageStats("optout", extra={"registry_date": "2024-04-09"})) == "2024-04-09"


@pytest.mark.parametrize("n,label", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (5 * 10**9, "1B<n<10B")])
def test_size_category(n, label):
    from stackv2.release.card import _size_category

    assert _size_category(n) == label


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["data/Python", "data/C", "data"]),
        st.dictionaries(st.text(min_size=1, max_size=6), st.integers(0, 900), min_size=1, max_size=30),
        min_size=1,
    ),
    st.integers(1, 400),
)
def test_a_repository_finds_the_shard_its_running_sum_gives(folders, target):
    """``ShardStarts`` against the shards stage's rule (a repository's shard is floor(bytes of the folder's
    repositories before it / target), ids with gaps where one repository spans several targets): every repository
    gets its shard back from the first key of each shard alone."""
    expected, starts = {}, {}
    for folder, repos in folders.items():
        before = 0
        for key in sorted(repos):
            shard = before // target
            expected[folder, key] = shard
            starts.setdefault((folder, shard), key)  # keys in order: the first one seen starts the shard
            before += repos[key]
    table = ShardStarts((folder, shard, key) for (folder, shard), key in starts.items())
    assert {(f, k): table.shard_of(f, k) for f, k in expected} == expected


def test_a_key_before_the_first_shard_is_an_error():
    table = ShardStarts([("data/C", 0, "b/x"), ("data/C", 3, "m/y")])
    assert (table.shard_of("data/C", "b/x"), table.shard_of("data/C", "l"), table.shard_of("data/C", "z")) == (0, 0, 3)
    with pytest.raises(KeyError, match="before the folder's first shard"):
        table.shard_of("data/C", "a")


def test_file_columns_flatten_repository_rows_and_read_file_rows_as_they_are(tmp_path):
    files = pa.list_(pa.struct([("path", pa.string()), ("content", pa.string()), ("length_bytes", pa.int64())]))
    repos = pa.table(
        {
            "repo_name": ["a/x", "a/y", "b/z"],
            "num_files": [2, 0, 1],
            "files": pa.array(
                [
                    [
                        {"path": "/1", "content": "one", "length_bytes": 3},
                        {"path": "/2", "content": None, "length_bytes": 0},
                    ],
                    [],
                    [{"path": "/3", "content": "three", "length_bytes": 5}],
                ],
                files,
            ),
        }
    )
    pq.write_table(repos, tmp_path / "repos.parquet", row_group_size=2)
    groups = list(file_columns(tmp_path / "repos.parquet", ["path", "repo_name", "content"]))
    assert len(groups) == 2 and all(g.column_names == ["path", "repo_name", "content"] for g in groups)
    assert pa.concat_tables(groups).to_pylist() == [
        {"path": "/1", "repo_name": "a/x", "content": "one"},
        {"path": "/2", "repo_name": "a/x", "content": None},
        {"path": "/3", "repo_name": "b/z", "content": "three"},
    ]
    assert [g.num_rows for g in file_columns(tmp_path / "repos.parquet", ["repo_name"])] == [2, 1]
    flat = pa.table({"path": ["/1", "/2"], "content": ["one", "two"], "language": ["C", None]})
    pq.write_table(flat, tmp_path / "files.parquet")
    (table,) = file_columns(tmp_path / "files.parquet", ["content", "path"])
    assert table.to_pylist() == [{"content": "one", "path": "/1"}, {"content": "two", "path": "/2"}]


def test_shard_files_follow_the_manifest(tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("b", "a", "stray"):
        pq.write_table(pa.table({"x": [1]}), tmp_path / f"data/{name}.parquet")
    write_manifest(tmp_path, [describe_shard(tmp_path, f"data/{n}.parquet") for n in ("b", "a")], "h", "compose")
    assert [f.name for f in shard_files(tmp_path)] == ["a.parquet", "b.parquet"]
    with pytest.raises(FileNotFoundError, match="no product released"):
        shard_files(tmp_path / "absent")
