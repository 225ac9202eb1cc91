"""Opt-out reaches the token files: documents dropped, promoted files re-tokenized into their repository's document,
every table purged, the cutoff, and an apply killed at any rename finished by the next (real tokenizer, no Spark)."""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_optout_release import DEDUP, PY1, REGISTRY, TRAIN, build, registry, snapshot, write_parquet

from stackv2.config import RunConfig, to_dict
from stackv2.notebooks.format import script_document
from stackv2.optout import release as oo
from stackv2.optout.training import TrainingRules
from stackv2.release import layout as rel
from stackv2.schema import PII_SPANS, RELEASE_REPOS, TOKENIZED_FILES
from stackv2.stats import StageStats
from stackv2.tokenize.config import TokenizeConfig
from stackv2.tokenize.megatron import MegatronReader
from stackv2.tokenize.rewrite import check_shards, shard_files
from stackv2.tokenize.stream import FileRow, TokenSink, shard_name, tokenize_notebooks, tokenize_shard
from stackv2.tokenize.tokenizer import DocumentEncoder, load_tokenizer, train_tokenizer
from stackv2.workdir import tokens_dir

CODE = [p.read_text() for p in sorted(Path(email.__file__).parent.rglob("*.py"))][:12]
#: Token shards: which repositories each holds. Alice/proj and zoe/z hold the same blob (x0).
SHARDS = {
    "part-00000": ["Alice/proj", "carol/c", "zoe/z"],
    "part-00001": ["bob/new-name", "dave/copy"],
    "part-00002": ["frank/f"],
}
#: A notebook shard beside them (the lightest shard: repositories added by a promotion must not land there).
NOTEBOOKS = shard_name(0, "jupyter-scripts")
NOTEBOOK_REPOS = ["Alice/proj", "dave/copy", "frank/f"]
GIDS = {"Alice/proj": 10, "bob/new-name": 42, "carol/c": 11, "dave/copy": 12, "zoe/z": 14, "frank/f": 15}
ANNOTATIONS = {"alpha_fraction": 0.6, "alphanum_fraction": 0.7, "avg_line_length": 30.0, "max_line_length": 60}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_tokenizer(CODE, 600).save(str(path))
    return path


def repo_files(repo: str) -> list[dict]:
    blob = {"Alice/proj": "x0", "zoe/z": "x0"}
    names = {"Alice/proj": ["/x.py"], "zoe/z": ["/x.py", "/z.py"], "carol/c": ["/c.py", "/c.js"]}
    out = []
    for i, path in enumerate(names.get(repo, [f"/{repo.split('/')[1]}.py"])):
        b = blob.get(repo) if path == "/x.py" else f"{repo}{path}"
        content = CODE[0][:300] if b == "x0" else CODE[(len(repo) + i) % len(CODE)][:400]
        out.append({"blob_id": b, "path": path, "language": "Python", "content": content, "length_bytes": 1})
    return out


def train_row(repo: str) -> dict:
    files = repo_files(repo)
    return {
        "repo_name": repo,
        "github_id": GIDS[repo],
        "snapshot_id": "s" * 40,
        "files": files,
        "num_files": len(files),
    }


def build_tokens(root: Path, tok: Path) -> tuple[Path, Path]:
    """``build``'s release and work folder, with a real train-full shard and its token files as the tokenize stage
    writes them (Megatron and datatrove, a per-file table in two parts, the manifest and the stats)."""
    release, work = build(root)
    repos = sorted(r for names in SHARDS.values() for r in names)
    write_parquet(release / TRAIN / "data/train-00000-of-00001.parquet", [train_row(r) for r in repos], RELEASE_REPOS)
    manifest = rel.read_manifest(release / TRAIN)
    manifest["shards"] = [vars(rel.describe_shard(release / TRAIN, "data/train-00000-of-00001.parquet"))]
    (release / TRAIN / rel.MANIFEST).write_text(json.dumps(manifest))

    cfg = TokenizeConfig(seed=3, metadata_rate=0.5, fim_repo_rate=0.5)
    tokens = tokens_dir(work)
    encoder = DocumentEncoder(load_tokenizer(tok))
    records, totals = [], []
    for name, names in SHARDS.items():
        rows = [FileRow(r, f["path"], f["blob_id"], "Python", f["content"]) for r in names for f in repo_files(r)]
        sink = TokenSink(tokens, name, cfg.formats, encoder.dtype, "tokenizer.json")
        records += list(tokenize_shard(rows, encoder, cfg, sink, name))
        sink.close()
        totals.append({"name": name, "documents": sink.documents, "tokens": sink.tokens})
    sink = TokenSink(tokens, NOTEBOOKS, cfg.formats, encoder.dtype, "tokenizer.json")
    notebooks = [
        (FileRow(r, "/nb.ipynb", f"nb-{r}", "Python", f"# %%\nx = {i}\n"), script_document(f"# %%\nx = {i}\n"))
        for i, r in enumerate(NOTEBOOK_REPOS)
    ]
    records += list(tokenize_notebooks(notebooks, encoder, cfg, sink, NOTEBOOKS))
    sink.close()
    totals.append({"name": NOTEBOOKS, "documents": sink.documents, "tokens": sink.tokens})
    shutil.copyfile(tok, tokens / "tokenizer.json")
    (tokens / "manifest.json").write_text(
        json.dumps({"shards": totals, "formats": list(cfg.formats), "tokenize": to_dict(cfg), "config_hash": "h"})
    )
    table = pa.Table.from_pylist(records, TOKENIZED_FILES).sort_by([("repo_name", "ascending"), ("path", "ascending")])
    half = table.num_rows // 2
    write_parquet(work / "tokenize/data/part-00000.parquet", table.slice(0, half).to_pylist(), TOKENIZED_FILES)
    write_parquet(work / "tokenize/data/part-00001.parquet", table.slice(half).to_pylist(), TOKENIZED_FILES)
    StageStats("tokenize", rows_in=table.num_rows, rows_out=table.num_rows).save(work / "tokenize/_stats.json")
    # The PII stage's spans: one of Alice/proj's file (joined through pii/data), one of carol/c's.
    pii_rows = [
        {"repo_name": r, "directory_id": f"dir-{r}", "path": "/x.py" if r == "Alice/proj" else "/c.py"}
        for r in ("Alice/proj", "carol/c")
    ]
    write_parquet(work / "pii/data/part-00000.parquet", pii_rows, pa.schema([(k, pa.string()) for k in pii_rows[0]]))
    spans = [{"directory_id": r["directory_id"], "path": r["path"], "start": 0, "end": 3, "entity": "EMAIL"}
             for r in pii_rows]  # fmt: skip
    write_parquet(work / "pii/spans/part-00000.parquet", spans, PII_SPANS)
    return release, work


def documents(tokens: Path, name: str) -> list[bytes]:
    m = MegatronReader(tokens / "megatron" / name)
    return [m[i].tobytes() for i in range(len(m))]


def files_table(work: Path) -> pa.Table:
    return pq.read_table(work / "tokenize" / "data")


def doc_of(work: Path, repo: str) -> tuple[str, int]:
    t = files_table(work).filter(pa.compute.equal(files_table(work)["repo_name"], repo)).to_pylist()
    [(shard, doc)] = {(r["shard"], r["document"]) for r in t if r["shard"] != NOTEBOOKS}
    return shard, doc


def test_apply_drops_documents_keeps_shared_blobs_and_untouched_shards(tmp_path, tokenizer):
    release, work = build_tokens(tmp_path, tokenizer)
    tokens = tokens_dir(work)
    before = {n: documents(tokens, n) for n in [*SHARDS, NOTEBOOKS]}
    untouched = {p: (tokens / p).read_bytes() for p in shard_files(tokens, "part-00002", ("megatron", "datatrove"))}
    zoe_doc = before["part-00000"][doc_of(work, "zoe/z")[1]]
    path = registry(tmp_path, REGISTRY)
    assert oo.verify(path, release, work).exit_code() == 1

    audit = oo.apply(path, release, work)
    # Alice/proj's repository and notebook documents, bob/new-name's (renamed: matched by github_id)
    assert audit["tokens"]["documents_dropped"] == 3
    assert audit["tokens"]["shards_rewritten"] == [NOTEBOOKS, "part-00000", "part-00001"]
    assert {p: (tokens / p).read_bytes() for p in untouched} == untouched  # byte-identical
    after = {n: documents(tokens, n) for n in [*SHARDS, NOTEBOOKS]}
    assert len(after["part-00000"]) == 2 and len(after["part-00001"]) == 1
    assert after[NOTEBOOKS] == before[NOTEBOOKS][1:]  # Alice's notebook gone, the others byte-identical
    # zoe/z shares Alice's blob and keeps it: same document, same ids, in the table and the tokens.
    assert after["part-00000"][doc_of(work, "zoe/z")[1]] == zoe_doc
    t = files_table(work)
    assert "x0" in t.filter(pa.compute.equal(t["repo_name"], "zoe/z"))["blob_id"].to_pylist()
    assert set(t["repo_name"].to_pylist()) == {"carol/c", "zoe/z", "dave/copy", "frank/f"}
    assert check_shards(tokens, t)[0] == []
    assert not (tokens / oo.TOKEN_STAGING).exists()
    stats = StageStats.load(work / "tokenize/_stats.json").check()
    assert stats.rows_out == t.num_rows and stats.extra["documents"] == 6
    # The spans of Alice's file leave with it (joined through pii/data); carol's stay.
    assert pq.read_table(work / "pii/spans")["directory_id"].to_pylist() == ["dir-carol/c"]
    assert audit["work_purged"]["pii/spans"] == 1

    report = oo.verify(path, release, work)
    assert report.ok, (report.leaks, report.problems)
    assert report.documents_checked == 6


def test_promoted_file_enters_training_and_its_repository_is_retokenized(tmp_path, tokenizer):
    release, work = build_tokens(tmp_path, tokenizer)
    # The near-duplicate rows carry their annotations, as the dedup stage keeps them.
    t = pq.read_table(work / "near_dedup/rejected")
    for k, v in ANNOTATIONS.items():
        t = t.set_column(t.schema.get_field_index(k), k, pa.array([v] * t.num_rows, t.schema.field(k).type))
    lines = pa.compute.cast(pa.compute.add(pa.compute.count_substring(t["content"], "\n"), 0), pa.int32())
    t = t.set_column(t.schema.get_field_index("num_lines"), "num_lines", lines)
    pq.write_table(t, work / "near_dedup/rejected/part-00000.parquet")
    tokens = tokens_dir(work)
    frank = documents(tokens, "part-00002")
    notebooks = documents(tokens, NOTEBOOKS)
    dave_before = documents(tokens, "part-00001")[doc_of(work, "dave/copy")[1]]

    rules = TrainingRules(RunConfig(), work)
    audit = oo.apply(registry(tmp_path, REGISTRY), release, work, config=rules.cfg)
    [promo] = [p for r in audit["requests"] for p in r["promotions"]]
    assert (promo["promoted"]["repo_name"], promo["shard"]) == ("dave/copy", PY1)
    assert promo["training"]["admitted"] and promo["training"]["shards"] == [
        f"{TRAIN}/data/train-00000-of-00001.parquet"
    ]
    # In train-full, dave/copy's row holds the promoted file, redacted; in -dedup the file is as archived.
    train = pq.read_table(release / TRAIN / "data").to_pylist()
    [dave] = [r for r in train if r["repo_name"] == "dave/copy"]
    assert [f["path"] for f in dave["files"]] == ["/copy.py", "x.py"] and dave["num_files"] == 2
    assert "dave.smith@gmail.com" not in dave["files"][1]["content"] and "<EMAIL>" in dave["files"][1]["content"]
    assert audit["tokens"]["retokenized"] == ["dave/copy"]
    # Its document was re-tokenized in place; frank/f's shard was not touched.
    shard, doc = doc_of(work, "dave/copy")
    new_doc = documents(tokens, shard)[doc]
    assert shard == "part-00001" and new_doc != dave_before
    decoded = DocumentEncoder(load_tokenizer(tokenizer)).tokenizer.decode(
        np.frombuffer(new_doc, np.uint16).tolist(), skip_special_tokens=False
    )
    assert "<EMAIL>" in decoded and "gmail" not in decoded
    assert documents(tokens, "part-00002") == frank
    # Alice's notebook leaves; dave/copy's is not a training file and stays as it was (not re-tokenized).
    assert documents(tokens, NOTEBOOKS) == notebooks[1:]
    assert check_shards(tokens, files_table(work))[0] == []
    assert oo.verify(tmp_path / "registry.jsonl", release, work).ok


def test_request_for_an_owner_with_no_rows_changes_no_data(tmp_path, tokenizer):
    release, work = build_tokens(tmp_path, tokenizer)
    before = snapshot(work)
    path = registry(tmp_path, [{"id": "n1", "date": "2024-01-01", "user": "nobody", "repos": "all"}])
    audit = oo.apply(path, release, work)
    assert (audit["files_removed"], audit["shards_touched"], audit["work_purged"]) == (0, [], {})
    assert audit["tokens"]["shards_rewritten"] == [] and audit["requests"][0]["repos"] == {}
    after = snapshot(work)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    # Only the records of what was applied: the manifests, cards and the audit.
    assert {Path(p).name for p in changed} <= {
        "manifest.json",
        "README.md",
        f"audit-{audit['registry_sha256'][:16]}.json",
    }
    assert not any(p.endswith((".parquet", ".bin", ".idx", ".ds", ".ds.index")) for p in changed)
    assert oo.verify(path, release, work).ok


def test_until_honours_requests_up_to_the_cutoff(tmp_path, tokenizer):
    release, work = build_tokens(tmp_path, tokenizer)
    path = registry(tmp_path, REGISTRY)  # r1 (alice) 2023-11-01, r2 (bob) 2023-11-02
    audit = oo.apply(path, release, work, until=dt.date(2023, 11, 1))
    assert audit["cutoff"] == "2023-11-01" and [r["id"] for r in audit["ignored_after_cutoff"]] == ["r2"]
    assert audit["tokens"]["documents_dropped"] == 2  # alice's repository and notebook
    for product in (DEDUP, TRAIN):
        manifest = rel.read_manifest(release / product)
        assert manifest["cutoff"] == "2023-11-01"
    assert json.loads((tokens_dir(work) / "manifest.json").read_text())["cutoff"] == "2023-11-01"
    assert "bob/new-name" in files_table(work)["repo_name"].to_pylist()  # r2 is later than the cutoff
    assert oo.verify(path, release, work, until=dt.date(2023, 11, 1)).ok
    assert oo.verify(path, release, work).exit_code() == 1  # without the cutoff, bob's request counts
    audit = oo.apply(path, release, work)  # the full registry later: the cutoff moves on
    assert audit["cutoff"] == "2023-11-02" and rel.read_manifest(release / TRAIN)["cutoff"] == "2023-11-02"
    assert "bob/new-name" not in files_table(work)["repo_name"].to_pylist()
    assert oo.verify(path, release, work).ok


def test_apply_killed_at_any_rename_is_finished_by_the_next(tmp_path, tokenizer, monkeypatch):
    """Kill the apply at its k-th ``os.replace`` (the token writers', the journal's, every commit rename) for every
    k: the next apply gives the bytes of an uninterrupted one."""
    path = registry(tmp_path, REGISTRY)
    clean_release, clean_work = build_tokens(tmp_path / "clean", tokenizer)
    real_replace = os.replace
    calls = []
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append(b) or real_replace(a, b))
    oo.apply(path, clean_release, clean_work, report=tmp_path / "audit.json")
    monkeypatch.undo()
    expected, n = snapshot(clean_work), len(calls)
    assert n > 10
    for k in range(n):
        release, work = build_tokens(tmp_path / f"k{k}", tokenizer)
        seen = []

        def dies(src, dst, k=k, seen=seen):
            if len(seen) == k:
                raise KeyboardInterrupt
            seen.append(dst)
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", dies)
        with pytest.raises(KeyboardInterrupt):
            oo.apply(path, release, work, report=tmp_path / "audit.json")
        monkeypatch.undo()
        oo.apply(path, release, work, report=tmp_path / "audit.json")
        assert snapshot(work) == expected, f"killed at rename {k} of {n} ({calls[k]})"
        shutil.rmtree(tmp_path / f"k{k}")


def test_cli_until_and_a_config_that_is_not_the_runs(tmp_path, tokenizer, capsys):
    from pipelines import cli

    release, work = build_tokens(tmp_path, tokenizer)
    path = registry(tmp_path, REGISTRY)
    config = tmp_path / "run.yaml"
    config.write_text("filter:\n  max_line_length: 999\n")
    args = ["optout", "apply", "--registry", str(path), "--release", str(release), "--work", str(work)]
    before = snapshot(work)
    assert cli.main([*args, "--config", str(config)]) == 2  # the work folder has no filter stage built with it
    assert "is not the config" in capsys.readouterr().err and snapshot(work) == before
    with pytest.raises(SystemExit) as bad_date:
        cli.main([*args, "--until", "2023-13-01"])
    assert bad_date.value.code == 2 and "not an ISO date" in capsys.readouterr().err
    assert cli.main([*args, "--until", "2023-11-01"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cutoff"] == "2023-11-01" and [r["id"] for r in out["ignored_after_cutoff"]] == ["r2"]
    verify = ["optout", "verify", "--registry", str(path), "--release", str(release), "--work", str(work)]
    assert cli.main([*verify, "--until", "2023-11-01"]) == 0
    assert cli.main(verify) == 1
    assert "LEAK" in capsys.readouterr().out
