"""The Spark stage ``tokenize`` on a hand-made release: accounting, stats, formats, partition independence."""

from __future__ import annotations

import email
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import cli
from pipelines._job import StageContext, run_stage
from pipelines.stages.tokenize import STAGE, shard_totals
from stackv2.config import RunConfig, SparkConfig
from stackv2.release.layout import describe_shard, write_manifest
from stackv2.release.products import THE_STACK_V2, TRAIN_FULL
from stackv2.stats import StageStats
from stackv2.tokenize.config import TIKTOKEN, TOKENIZERS, TokenizeConfig
from stackv2.tokenize.format import restore
from stackv2.tokenize.megatron import MegatronReader
from stackv2.tokenize.stream import MISSING_CONTENT, TokenSink
from stackv2.tokenize.tokenizer import DocumentEncoder, load_tokenizer
from stackv2.workdir import adopt_outputs, release_dir, tokens_dir, trained_tokenizer

#: Source files of a stdlib package: real code that does not change while tests run.
SRC = Path(email.__file__).parent
SCHEMA = pa.schema(
    [
        ("repo_name", pa.string()),
        ("path", pa.string()),
        ("blob_id", pa.string()),
        ("language", pa.string()),
        ("content", pa.string()),
        ("length_bytes", pa.int64()),
    ]
)


def release_rows() -> list[dict]:
    texts = [p.read_text() for p in sorted(SRC.rglob("*.py"))][:24]
    rows = []
    for i, text in enumerate(texts):
        lang = "Python" if i % 3 else "Markdown"
        rows.append(
            {
                "repo_name": f"o/r{i % 7}",
                "path": f"/src/f{i}.py",
                "blob_id": f"{i:040x}",
                "language": lang,
                "content": text[: 300 + 50 * i],
                "length_bytes": len(text[: 300 + 50 * i].encode()),
            }
        )
    rows.append(
        {
            "repo_name": "o/r0",
            "path": "/broken",
            "blob_id": "f" * 40,
            "language": "Python",
            "content": None,
            "length_bytes": 0,
        }
    )
    return rows


def make_release(work: Path, files: int) -> None:
    """What ``shards`` leaves: the training product's shards (one row per repository, split into ``files`` shards)
    with their manifest, another product holding the same files (the stage must read only its product's), and the
    stage's row table (no contents)."""
    rows = release_rows()
    release = release_dir(work)
    repos = sorted({r["repo_name"] for r in rows})
    file_type = pa.struct([SCHEMA.field(n) for n in ("blob_id", "path", "language", "length_bytes", "content")])
    entries = []
    for k in range(files):
        mine = [
            {"repo_name": repo, "files": [r for r in rows if r["repo_name"] == repo]}
            for i, repo in enumerate(repos)
            if i % files == k
        ]
        schema = pa.schema([("repo_name", pa.string()), ("files", pa.list_(file_type))])
        rel = f"data/train-{k:05d}-of-{files:05d}.parquet"
        (release / TRAIN_FULL / "data").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(mine, schema), release / TRAIN_FULL / rel)
        entries.append(describe_shard(release / TRAIN_FULL, rel))
    write_manifest(release / TRAIN_FULL, entries, config_hash="test", created_from="compose")
    other = release / THE_STACK_V2
    (other / "data").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist([{**r, "path": r["path"] + ".other"} for r in rows], SCHEMA), other / "data/x.parquet"
    )
    write_manifest(other, [describe_shard(other, "data/x.parquet")], config_hash="test", created_from="exact_dedup")
    index = [{k: v for k, v in r.items() if k != "content"} | {"product": TRAIN_FULL} for r in rows]
    (work / "shards" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(index), work / "shards" / "data" / "part-00000.parquet")
    adopt_outputs(work / "shards", "data")


def run(spark, work: Path, input_files: int, engine: str) -> StageStats:
    make_release(work, input_files)
    cfg = RunConfig(
        work_dir=str(work),
        spark=SparkConfig(shuffle_partitions=3),
        tokenize=TokenizeConfig(vocab_size=600, seed=3, fim_repo_rate=1.0, engine=engine),
    )
    ctx = StageContext(spark=spark, cfg=cfg, work_dir=work, previous="shards", config_hash="test")
    stats, skipped = run_stage(ctx, "tokenize", STAGE.run)
    assert not skipped
    return stats


def token_files(work: Path) -> dict[str, bytes]:
    tokens = tokens_dir(work)
    files = {str(p.relative_to(tokens.parent)): p.read_bytes() for p in sorted(tokens.rglob("*")) if p.is_file()}
    files["tokens/manifest.json"] = json.dumps(json.loads(files["tokens/manifest.json"])["shards"]).encode()
    return files


@pytest.mark.spark
@pytest.mark.slow
def test_stage_accounts_writes_both_formats_and_ignores_input_layout_and_engine(spark, tmp_path):
    a = run(spark, tmp_path / "a", input_files=1, engine=TOKENIZERS)
    b = run(spark, tmp_path / "b", input_files=3, engine=TIKTOKEN)
    n = len(release_rows())
    assert (a.rows_in, a.rows_out, a.rejected) == (n, n - 1, {MISSING_CONTENT: 1})
    files_a, files_b = token_files(tmp_path / "a"), token_files(tmp_path / "b")
    # tokenizer trained on the sample, token files, shard list: the same bytes whatever the input layout or engine
    assert files_a == files_b
    assert a.extra["tokens_by_language"] == b.extra["tokens_by_language"]

    work = tmp_path / "a"
    manifest = json.loads((tokens_dir(work) / "manifest.json").read_text())
    shards = [s["name"] for s in manifest["shards"]]
    assert 1 < len(shards) <= 3
    readers = [MegatronReader(tokens_dir(work) / "megatron" / s) for s in shards]
    total = sum(r.num_tokens for r in readers)
    assert total == a.extra["tokens"] == sum(a.extra["tokens_by_language"].values()) > 0
    assert set(a.extra["tokens_by_language"]) == {"Python", "Markdown"}
    assert sum(len(r) for r in readers) == a.extra["documents"] == 7
    for s in shards:
        assert files_a[f"tokens/datatrove/{s}.ds"] == files_a[f"tokens/megatron/{s}.bin"]

    # every repository's files come back from the token files
    encoder = DocumentEncoder(load_tokenizer(tokens_dir(work) / "tokenizer.json"))
    by_repo: dict[str, set[str]] = {}
    for r in release_rows():
        if r["content"] is not None:
            by_repo.setdefault(r["repo_name"], set()).add(r["content"])
    restored = {}
    for reader in readers:
        for i in range(len(reader)):
            back = restore(encoder.decode_parts(reader[i]))
            contents = {c for _, c in back.files}
            (name,) = [k for k, v in by_repo.items() if v == contents]
            restored[name] = back
    assert set(restored) == set(by_repo)
    assert all(np.all(r.document_indices == np.arange(len(r) + 1)) for r in readers)


def test_tokenizer_train_command_writes_a_tokenizer(tmp_path, capsys):
    make_release(tmp_path, 2)
    args = ["tokenizer", "train", "--work", str(tmp_path), "--set", "tokenize.vocab_size=500"]
    assert cli.main([*args, "--set", "tokenize.train_sample_bytes=4000"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["vocab_size"] == 500 and 0 < info["sample_bytes"] <= 4000
    assert Path(info["tokenizer"]) == trained_tokenizer(tmp_path)
    load_tokenizer(info["tokenizer"])


@pytest.mark.parametrize("formats", [("megatron",), ("datatrove",), ("megatron", "datatrove")])
def test_shard_totals_read_either_format(tmp_path, formats):
    docs = [np.arange(n, dtype=np.uint16) for n in (3, 0, 7)]
    for name, count in (("part-00000", 3), ("part-00002", 1)):
        sink = TokenSink(tmp_path, name, formats, np.dtype(np.uint16), "tokenizer.json")
        for d in docs[:count]:
            sink.add(d)
        sink.close()
    assert shard_totals(tmp_path, formats) == [
        {"name": "part-00000", "documents": 3, "tokens": 10},
        {"name": "part-00002", "documents": 1, "tokens": 3},
    ]
