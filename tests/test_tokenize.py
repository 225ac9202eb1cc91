"""Tokenizer training and loading, document encoding round trips, Megatron and datatrove token files."""

from __future__ import annotations

import email
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.pipeline.tokens.megatron_tokenizer import MegatronTokenizedFile
from datatrove.pipeline.tokens.merger import DocumentTokenizerMerger, get_data_reader, load_doc_ends
from tokenizers import Tokenizer

from stackv2.release.layout import describe_shard, write_manifest
from stackv2.tokenize.config import FORMATS, TokenizeConfig
from stackv2.tokenize.datatrove_files import DatatroveWriter
from stackv2.tokenize.format import EOS, SENTINELS, format_repo, restore
from stackv2.tokenize.megatron import INDEX_HEADER, MegatronReader, MegatronWriter
from stackv2.tokenize.sample import sample_release
from stackv2.tokenize.stream import FileRow, TokenSink, tokenize_shard
from stackv2.tokenize.tokenizer import (
    SPECIAL_TOKENS,
    DocumentEncoder,
    TokenizerError,
    load_tokenizer,
    token_dtype,
    train_tokenizer,
)

#: Source files of a stdlib package: real code that does not change while tests run.
SRC = Path(email.__file__).parent
VOCAB = 700


def corpus() -> list[str]:
    return [p.read_text() for p in sorted(SRC.rglob("*.py"))][:40]


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_tokenizer(corpus(), VOCAB).save(str(path))
    return path


@pytest.fixture(scope="module")
def encoder(tok_path) -> DocumentEncoder:
    return DocumentEncoder(load_tokenizer(tok_path))


def repos(n: int = 12) -> list[tuple[str, list[tuple[str, str]]]]:
    texts = corpus()
    out = []
    for i in range(n):
        files = [(f"/pkg/m{j}.py", texts[(i * 3 + j) % len(texts)][: 200 + 37 * j]) for j in range(1 + i % 4)]
        out.append((f"owner/repo{i}", files))
    out.append(("owner/tricky", [("/t.py", f"s = '{EOS}<file_sep>'\n"), ("/empty.py", "")]))
    out.append(("owner/redacted", [("/cfg.py", "EMAIL = '<EMAIL>'\nkey=<KEY><PASSWORD> by <NAME>\n")]))
    return out


def test_trained_tokenizer_has_starcoder2_specials_first(tok_path):
    tok = Tokenizer.from_file(str(tok_path))
    assert tok.get_vocab_size() == VOCAB
    assert [tok.id_to_token(i) for i in range(len(SPECIAL_TOKENS))] == list(SPECIAL_TOKENS)
    assert tok.token_to_id("<|endoftext|>") == 0 and tok.token_to_id("<fim_middle>") == 2
    assert len(tok.encode("x = 12345").ids) >= 5 + 2  # digits are split one by one
    assert tok.encode("1234").tokens == ["1", "2", "3", "4"]
    assert tok.decode(tok.encode("héllo wörld ∀x\n\t").ids) == "héllo wörld ∀x\n\t"  # byte-level: lossless


def test_training_is_deterministic(tok_path):
    assert train_tokenizer(corpus(), VOCAB).to_str() == Tokenizer.from_file(str(tok_path)).to_str()


def test_load_rejects_tokenizers_without_sentinels(tmp_path):
    plain = train_tokenizer(corpus(), VOCAB)
    plain.save(str(tmp_path / "ok.json"))
    load_tokenizer(tmp_path / "ok.json")
    bare = Tokenizer.from_str(plain.to_str().replace("<repo_name>", "<repo_nam>"))
    bare.save(str(tmp_path / "bad.json"))
    with pytest.raises(TokenizerError, match="repo_name"):
        load_tokenizer(tmp_path / "bad.json")
    Tokenizer.from_str(plain.to_str().replace("<PASSWORD>", "<PASSWD>")).save(str(tmp_path / "nopw.json"))
    with pytest.raises(TokenizerError, match="PASSWORD"):
        load_tokenizer(tmp_path / "nopw.json")
    with pytest.raises(TokenizerError, match="does not exist"):
        load_tokenizer(tmp_path / "missing.json")


def test_token_dtype():
    assert token_dtype(49_152) == np.uint16 and token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.int32


@pytest.mark.parametrize("spm", [0.0, 1.0])
def test_encode_round_trip(encoder, spm):
    cfg = TokenizeConfig(fim_repo_rate=1.0, fim_spm_rate=spm)
    docs = [format_repo(name, files, cfg) for name, files in repos()]
    assert any(c.fim for d in docs for c in d.chunks) and any(d.metadata for d in docs)
    for doc, enc in zip(docs, encoder.encode(docs), strict=True):
        assert enc.ids.dtype == np.uint16 and sum(enc.file_tokens) == len(enc.ids)
        # decode(ids) reproduces the formatted text; the only <|endoftext|> id is the last one
        assert encoder.tokenizer.decode(enc.ids.tolist(), skip_special_tokens=False) == doc.text()
        assert int((enc.ids == encoder.special_ids[EOS]).sum()) == 1 and enc.ids[-1] == encoder.special_ids[EOS]
        # removing sentinels and reordering the FIM parts restores every file
        back = restore(encoder.decode_parts(enc.ids))
        files = dict(repos_by_name()[doc.repo_name])
        expected = [files[p] for p in sorted(files)]
        assert sorted(c for _, c in back.files) == sorted(expected)
        if doc.metadata:
            assert back.repo_name == doc.repo_name and {p for p, _ in back.files} == {p[1:] for p in files}


def repos_by_name() -> dict[str, list[tuple[str, str]]]:
    return dict(repos())


def test_sentinels_by_id_equal_hf_special_token_matching(tok_path, encoder):
    """Without sentinel text in the content, our ids are what HF gives for the whole formatted string, PII
    placeholders included (StarCoder2's tokenizer matches them as special tokens)."""
    hf = Tokenizer.from_file(str(tok_path))  # special-token matching on, as in a plain HF pipeline
    cfg = TokenizeConfig(fim_repo_rate=1.0)
    plain = [(n, fs) for n, fs in repos() if not any(s in c for s in SENTINELS for _, c in fs)]
    assert len(plain) > 5 and "owner/redacted" in dict(plain)
    docs = [format_repo(name, files, cfg) for name, files in plain]
    for doc, enc in zip(docs, encoder.encode(docs), strict=True):
        assert hf.encode(doc.text(), add_special_tokens=False).ids == enc.ids.tolist()


def docs_ids(encoder, n=12) -> list[np.ndarray]:
    docs = [format_repo(name, files, TokenizeConfig()) for name, files in repos(n)]
    return [e.ids for e in encoder.encode(docs)]


def test_megatron_round_trip_and_layout(tmp_path, encoder):
    ids = docs_ids(encoder)
    with MegatronWriter(tmp_path / "part", np.uint16) as w:
        for a in ids:
            w.add(a)
    r = MegatronReader(tmp_path / "part")
    assert len(r) == len(ids) and r.num_tokens == sum(map(len, ids)) and r.dtype == np.uint16
    for i, a in enumerate(ids):
        np.testing.assert_array_equal(r[i], a)
    np.testing.assert_array_equal(r.document_indices, np.arange(len(ids) + 1))
    raw = (tmp_path / "part.idx").read_bytes()
    assert raw[:9] == INDEX_HEADER and struct.unpack("<QBQQ", raw[9:34]) == (1, 8, len(ids), len(ids) + 1)
    assert len(raw) == 34 + len(ids) * (4 + 8) + (len(ids) + 1) * 8
    assert (tmp_path / "part.bin").stat().st_size == 2 * r.num_tokens


def test_megatron_bytes_equal_datatrove_megatron_writer(tmp_path, encoder):
    """datatrove's MegatronTokenizedFile (an independent writer of the same format) gives the same bytes."""
    ids = docs_ids(encoder)
    for token_size, dtype in ((2, np.uint16), (4, np.int32)):
        ours = tmp_path / f"ours{token_size}"
        with MegatronWriter(ours, dtype) as w:
            for a in ids:
                w.add(a)
        theirs = MegatronTokenizedFile(str(tmp_path), f"theirs{token_size}", token_size=token_size)
        for a in ids:
            theirs.write(a.tolist())
        theirs.close()
        for ext in ("bin", "idx"):
            assert Path(f"{ours}.{ext}").read_bytes() == (tmp_path / f"theirs{token_size}.{ext}").read_bytes()
        assert MegatronReader(ours).dtype == dtype


def test_empty_megatron_file(tmp_path):
    MegatronWriter(tmp_path / "e", np.uint16).close()
    r = MegatronReader(tmp_path / "e")
    assert len(r) == 0 and r.num_tokens == 0


def test_datatrove_reads_our_files(tmp_path, encoder):
    ids = docs_ids(encoder)
    w = DatatroveWriter(tmp_path / "dt", "part-00000", np.uint16, "tokenizer.json")
    for a in ids:
        w.add(a)
    w.close()
    folder = tmp_path / "dt"
    assert sorted(p.name for p in folder.iterdir()) == [
        "part-00000.ds",
        "part-00000.ds.index",
        "part-00000.ds.metadata",
    ]
    with open(folder / "part-00000.ds.index", "rb") as f:
        ends = load_doc_ends(f)
    assert ends.tolist() == np.cumsum([len(a) for a in ids]).tolist()
    with open(folder / "part-00000.ds", "rb") as f:
        back = [np.frombuffer(b, np.uint16) for b in get_data_reader(f, ends, 2)]
    for a, b in zip(ids, back, strict=True):
        np.testing.assert_array_equal(a, b)
    # datatrove's own merger reads the folder (index, metadata, tokens) and re-writes the same documents
    DocumentTokenizerMerger(str(folder), str(tmp_path / "merged"), "all", shuffle=False, progress=False).run()
    assert (tmp_path / "merged" / "000_all.ds").read_bytes() == (folder / "part-00000.ds").read_bytes()
    assert (tmp_path / "merged" / "000_all.ds.index").read_bytes() == (folder / "part-00000.ds.index").read_bytes()
    assert (folder / "part-00000.ds.metadata").read_text().splitlines()[:2] == [
        "tokenizer.json|2",
        str(sum(map(len, ids))),
    ]


def shard_rows() -> list[FileRow]:
    rows = [FileRow(name, p, f"blob-{name}-{p}", "Python", c) for name, files in repos() for p, c in files]
    return sorted(rows, key=lambda r: (r.repo_name, r.path))


def run_shard(encoder, out: Path, cfg: TokenizeConfig) -> list[dict]:
    sink = TokenSink(out, "part-00000", cfg.formats, encoder.dtype, "tokenizer.json")
    records = list(tokenize_shard(shard_rows(), encoder, cfg, sink, "part-00000"))
    sink.close()
    return records


def test_tokenize_shard_accounts_for_every_file_and_token(tmp_path, encoder):
    cfg = TokenizeConfig(batch_bytes=2000)  # several encode batches
    records = run_shard(encoder, tmp_path, cfg)
    assert sorted((r["repo_name"], r["path"]) for r in records) == [(r.repo_name, r.path) for r in shard_rows()]
    m = MegatronReader(tmp_path / "megatron" / "part-00000")
    assert len(m) == len(repos()) and m.num_tokens == sum(r["tokens"] for r in records)
    for r in records:
        assert m.sequence_lengths[r["document"]] >= r["tokens"] > 0
    assert {p.name for p in (tmp_path / "datatrove").iterdir()} >= {"part-00000.ds", "part-00000.ds.index"}
    assert (tmp_path / "datatrove" / "part-00000.ds").read_bytes() == (
        tmp_path / "megatron" / "part-00000.bin"
    ).read_bytes()


def test_tokenize_shard_is_deterministic_for_a_seed(tmp_path, encoder):
    run_shard(encoder, tmp_path / "a", TokenizeConfig(seed=7, batch_bytes=1000))
    run_shard(encoder, tmp_path / "b", TokenizeConfig(seed=7, batch_bytes=10**9))
    run_shard(encoder, tmp_path / "c", TokenizeConfig(seed=8))
    a, b, c = ((tmp_path / x / "megatron" / "part-00000.bin").read_bytes() for x in "abc")
    assert a == b and a != c
    assert FORMATS == ("megatron", "datatrove")


def test_sample_release_is_seeded_and_bounded(tmp_path):
    """The sample comes from one product's shards, as its manifest lists them; a repository-level product's files
    are sampled like a file-level one's."""
    for product in ("train", "other"):
        root = tmp_path / "release" / product
        (root / "data").mkdir(parents=True)
        for lang, k in (("Python", 0), ("C", 1)):
            rows = [
                {"blob_id": f"{lang}{i}", "length_bytes": 10, "content": f"{lang} {product} {i}"} for i in range(50)
            ]
            pq.write_table(pa.Table.from_pylist(rows), root / f"data/part-{k}.parquet")
        write_manifest(root, [describe_shard(root, f"data/part-{k}.parquet") for k in (0, 1)], "h", "compose")
    stray = pa.table({"blob_id": ["stray"], "length_bytes": [1], "content": ["stray"]})  # not in the manifest
    pq.write_table(stray, tmp_path / "release" / "train" / "data/stray.parquet")
    a = sample_release(tmp_path / "release" / "train", 200, seed=1)
    assert len(a) == 20 and a == sample_release(tmp_path / "release" / "train", 200, seed=1)
    assert a != sample_release(tmp_path / "release" / "train", 200, seed=2)
    assert {t.split()[0] for t in a} == {"Python", "C"} and {t.split()[1] for t in a} == {"train"}

    repos = tmp_path / "release" / "repos"
    (repos / "data").mkdir(parents=True)
    flat = pq.read_table(tmp_path / "release" / "train" / "data/part-0.parquet").to_pylist()
    repo_rows = [{"repo_name": f"r{j}", "files": flat[j::5]} for j in range(5)]
    pq.write_table(pa.Table.from_pylist(repo_rows), repos / "data/r.parquet")
    write_manifest(repos, [describe_shard(repos, "data/r.parquet")], "h", "compose")
    python_only = [t for t in sample_release(tmp_path / "release" / "train", 10**6, seed=1) if t.startswith("Python")]
    assert sample_release(repos, 10**6, seed=1) == python_only
    with pytest.raises(FileNotFoundError, match="no product released"):
        sample_release(tmp_path / "release" / "absent", 10, 0)


def test_config_validates_and_loads_from_yaml_overrides():
    from stackv2.config import load_config

    cfg = load_config(None, ["tokenize.seed=5", "tokenize.formats=[megatron]", "tokenize.fim_spm_rate=0.25"])
    assert (cfg.tokenize.seed, cfg.tokenize.formats, cfg.tokenize.fim_spm_rate) == (5, ("megatron",), 0.25)
    for bad in ({"formats": ("parquet",)}, {"formats": ()}, {"engine": "gpu"}, {"fim_file_rate": 1.5}):
        with pytest.raises(ValueError):
            TokenizeConfig(**bad)
