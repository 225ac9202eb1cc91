"""Planning ``stackv2 reproduce`` without a server: id-table shapes, and the shard plan's algebra (every row in
exactly one shard; the plan depends on the rows, not on their order; rows sharing a blob and a language share
a shard)."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.cli import build_parser, reproduce_config
from stackv2.reproduce.config import ReproduceConfig
from stackv2.reproduce.idtables import FILE_LEVEL, REPO_LEVEL, IdTableError, plan_shards, read_id_tables, table_level
from stackv2.reproduce.run import blob_requests, shard_digest
from stackv2.swh.config import FetchConfig

HEX = "0123456789abcdef"
row_st = st.fixed_dictionaries(
    {
        "blob_id": st.text(HEX, min_size=4, max_size=4),
        "repo_name": st.sampled_from(["a/x", "b/y", "c/z"]),
        "path": st.text("abc/", min_size=1, max_size=4),
        "language": st.sampled_from(["Python", "C++", "F*", None]),
    }
)


def _table(rows):
    return pa.Table.from_pylist(
        rows,
        pa.schema(
            [("blob_id", pa.string()), ("repo_name", pa.string()), ("path", pa.string()), ("language", pa.string())]
        ),
    )


def _plan(rows, per_shard=3):
    return plan_shards(FILE_LEVEL, _table(rows), ReproduceConfig(rows_per_shard=per_shard))


@settings(max_examples=30, deadline=None)
@given(st.lists(row_st, max_size=40), st.randoms(use_true_random=False))
def test_plan_is_a_partition_independent_of_order(rows, rnd):
    shards = _plan(rows)
    planned = Counter(json.dumps(r, sort_keys=True) for s in shards for r in s.rows.to_pylist())
    assert planned == Counter(json.dumps(r, sort_keys=True) for r in rows)
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    again = _plan(shuffled)
    assert [(s.rel_path, s.rows.to_pylist()) for s in shards] == [(s.rel_path, s.rows.to_pylist()) for s in again]
    homes = {}
    for s in shards:
        folder = s.rel_path.rsplit("/", 1)[0]
        for b in s.rows["blob_id"].to_pylist():  # one shard per (language, blob): fetched once
            assert homes.setdefault((folder, b), s.rel_path) == s.rel_path


def test_layout_names():
    rows = [
        {"blob_id": f"{i:04x}", "repo_name": "a/x", "path": f"/{i}", "language": lang}
        for i, lang in enumerate(["Python"] * 7 + ["F*", None])
    ]
    names = [s.rel_path for s in _plan(rows)]
    assert names == [
        "data/F_/train-00000-of-00001.parquet",
        "data/Python/train-00000-of-00003.parquet",
        "data/Python/train-00001-of-00003.parquet",
        "data/Python/train-00002-of-00003.parquet",
        "data/unknown/train-00000-of-00001.parquet",
    ]


def test_digest_follows_rows_and_output_settings():
    shard = _plan([{"blob_id": "ab", "repo_name": "a/x", "path": "/p", "language": "C"}])[0]
    cfg = ReproduceConfig()
    base = shard_digest(shard, FILE_LEVEL, cfg)
    faster = ReproduceConfig(fetch=FetchConfig(concurrency=3))
    assert shard_digest(shard, FILE_LEVEL, faster) == base
    capped = ReproduceConfig(fetch=FetchConfig(max_length=5))
    assert shard_digest(shard, FILE_LEVEL, capped) != base
    other = _plan([{"blob_id": "ac", "repo_name": "a/x", "path": "/p", "language": "C"}])[0]
    assert shard_digest(other, FILE_LEVEL, cfg) != base


def test_table_levels_and_errors(tmp_path):
    assert table_level(pa.schema([("blob_id", pa.string())])) == FILE_LEVEL
    files = pa.list_(pa.struct([("blob_id", pa.string()), ("path", pa.string())]))
    assert table_level(pa.schema([("repo_name", pa.string()), ("files", files)])) == REPO_LEVEL
    with pytest.raises(IdTableError, match="not a Stack v2 id table"):
        table_level(pa.schema([("text", pa.string())]), "x.parquet")
    with pytest.raises(IdTableError, match="list of structs"):
        table_level(pa.schema([("files", pa.string())]))
    with pytest.raises(IdTableError, match="lack"):
        table_level(pa.schema([("files", pa.list_(pa.struct([("path", pa.string())])))]))
    pq.write_table(pa.table({"blob_id": ["a"]}), tmp_path / "f.parquet")
    pq.write_table(pa.table({"files": pa.array([[{"blob_id": "b"}]])}), tmp_path / "r.parquet")
    with pytest.raises(IdTableError, match="mixed"):
        read_id_tables([str(tmp_path / "f.parquet"), str(tmp_path / "r.parquet")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(IdTableError, match=r"no \.parquet"):
        read_id_tables([str(tmp_path / "empty")])
    level, table = read_id_tables([str(tmp_path / "f.parquet")])
    assert (level, table.num_rows) == (FILE_LEVEL, 1)


def test_blob_requests_both_levels():
    t = pa.table({"blob_id": ["a", "b"], "src_encoding": ["UTF-8", "GB2312"]})
    assert blob_requests(FILE_LEVEL, t) == [("a", None, "UTF-8"), ("b", None, "GB2312")]
    r = pa.table(
        {"files": pa.array([[{"blob_id": "a", "content_id": "c"}], [], [{"blob_id": "b", "content_id": None}]])}
    )
    assert blob_requests(REPO_LEVEL, r) == [("a", "c", None), ("b", None, None)]


def test_cli_flags_override_config(tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("reproduce:\n  rows_per_shard: 7\n  bucket: mine\n  fetch:\n    concurrency: 9\n")
    args = build_parser().parse_args(
        [
            "reproduce",
            "--ids",
            "x",
            "--out",
            "y",
            "--config",
            str(cfg_file),
            "--no-sign-request",
            "--endpoint-url",
            "http://127.0.0.1:1",
            "--prefix",
            "objects/",
        ]
    )
    cfg, _ = reproduce_config(args)
    assert (cfg.rows_per_shard, cfg.fetch.concurrency, cfg.bucket) == (7, 9, "mine")
    assert (cfg.fetch.unsigned, cfg.fetch.endpoint_url, cfg.prefix) == (True, "http://127.0.0.1:1", "objects/")
