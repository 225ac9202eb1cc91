"""Editing written token shards without rerunning the stage: drop some repositories' documents, re-tokenize others
(``stackv2 optout apply``; docs/optout.md).

A token shard is a sequence of documents, one per repository (``stackv2.tokenize.stream``). An edit keeps every
other document's ids as they are (copied, not re-encoded), drops the documents of the repositories to remove,
replaces the document of each changed repository in place by its new encoding (same seeded formatting as the stage:
``format_repo`` draws from ``repo_rng(seed, repo_name)``, so a document depends only on its repository's files), and
appends the documents of repositories the shards did not hold to the shard with the fewest tokens. Only the shards
that change are written, complete, into a staging folder; the caller moves them into place
(``stackv2.optout.release``'s journal). The per-file table (``schema.TOKENIZED_FILES``) is edited to match: rows of
dropped documents leave, changed repositories get their new rows, later documents of a touched shard are renumbered.

``check_shards`` is the proof ``optout verify`` relies on: every document of every shard is accounted for by the
per-file table, token for token, and documents that carry their repository's name say the same name.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stackv2.config import from_dict
from stackv2.schema import TOKENIZED_FILES
from stackv2.tokenize.config import DATATROVE, MEGATRON, TokenizeConfig
from stackv2.tokenize.fast import make_encoder
from stackv2.tokenize.format import EOS, FILE_SEP, JUPYTER_SCRIPT, JUPYTER_START, REPO_NAME
from stackv2.tokenize.megatron import MegatronReader
from stackv2.tokenize.stream import FileRow, TokenSink, holds_repositories, tokenize_shard
from stackv2.tokenize.tokenizer import DocumentEncoder, load_tokenizer

#: The token folder's manifest and tokenizer, as the ``tokenize`` stage writes them.
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"


def read_manifest(tokens: Path) -> dict[str, Any]:
    return json.loads((tokens / MANIFEST).read_text())


def token_config(manifest: Mapping[str, Any]) -> TokenizeConfig:
    """The stage's settings, recorded in the manifest (``tokenize``): the seed and rates every document used."""
    return from_dict(TokenizeConfig, manifest["tokenize"])


class DatatroveReader:
    """``<name>.ds`` documents by index (``.ds.index`` holds their ends, ``.ds.metadata`` the token size)."""

    def __init__(self, folder: Path, name: str):
        meta = (folder / f"{name}.ds.metadata").read_text().splitlines()[0]
        self.tokenizer_name, size = meta.rsplit("|", 1)
        self.dtype = np.dtype(np.uint32 if int(size) == 4 else np.uint16).newbyteorder("<")
        self.ends = np.fromfile(folder / f"{name}.ds.index", dtype="<u8").astype(np.int64)
        path = folder / f"{name}.ds"
        self.ids = np.memmap(path, mode="r", dtype=self.dtype) if path.stat().st_size else np.zeros(0, self.dtype)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[(self.ends[i - 1] if i else 0) : self.ends[i]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.ends, prepend=0)


def open_shard(tokens: Path, name: str, fmt: str) -> MegatronReader | DatatroveReader:
    if fmt == MEGATRON:
        return MegatronReader(tokens / MEGATRON / name)
    return DatatroveReader(tokens / DATATROVE, name)


def shard_files(tokens: Path, name: str, formats: Iterable[str]) -> list[Path]:
    """Every file of one token shard, relative to the tokens folder."""
    out = []
    for fmt in formats:
        suffixes = (".bin", ".idx") if fmt == MEGATRON else (".ds", ".ds.index", ".ds.metadata")
        out += [Path(fmt) / f"{name}{s}" for s in suffixes]
    return out


def _lengths(reader: MegatronReader | DatatroveReader) -> np.ndarray:
    return reader.sequence_lengths if isinstance(reader, MegatronReader) else reader.lengths


# ----------------------------------------------------------------------------------------------------- rewrite


@dataclass
class TokenRewrite:
    """What an edit changes: the shards to write (name -> their documents, old index or new repository), the new
    per-file table, and the manifest's new shard totals."""

    #: shard name -> its documents in order: an int (old document index, copied) or a str (repository, encoded)
    shards: dict[str, list[int | str]] = field(default_factory=dict)
    #: The per-file table after the edit (``schema.TOKENIZED_FILES`` + ``_part``: where the row is kept).
    files: pa.Table | None = None
    #: Repositories whose documents were dropped / re-tokenized / added.
    dropped: list[str] = field(default_factory=list)
    #: How many documents were dropped (a repository's, its notebooks').
    documents_dropped: int = 0
    retokenized: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


def plan_rewrite(
    manifest: Mapping[str, Any], files: pa.Table, drop: pa.ChunkedArray | pa.Array, changed: Mapping[str, Any]
) -> TokenRewrite:
    """Plan an edit from the per-file table ``files`` (with a ``_part`` column): ``drop`` marks the rows whose
    repositories leave; ``changed`` names the repositories to re-tokenize (or add, when the shards lack them).
    Notebook documents are only ever dropped: a changed repository's training files are its repository document."""
    plan = TokenRewrite()
    drop = pc.fill_null(drop, False)
    in_repo_shard = pa.array([holds_repositories(s) for s in files["shard"].to_pylist()], pa.bool_())
    is_changed = pc.and_(pc.is_in(files["repo_name"], value_set=pa.array(sorted(changed), pa.string())), in_repo_shard)
    gone = pc.or_(drop, is_changed)
    edits: dict[str, dict[int, str | None]] = defaultdict(dict)  # shard -> old document -> None (drop) / repo
    touched = files.filter(gone).select(["repo_name", "shard", "document"]).to_pylist()
    dropped = set(files["repo_name"].filter(drop).to_pylist())
    for r in touched:
        edits[r["shard"]][r["document"]] = None if r["repo_name"] in dropped else r["repo_name"]
    plan.dropped = sorted(dropped)
    plan.documents_dropped = sum(repo is None for doc in edits.values() for repo in doc.values())
    held = {repo for doc in edits.values() for repo in doc.values() if repo}
    plan.retokenized = sorted(held)
    plan.added = sorted(set(changed) - held - dropped)
    documents = {s["name"]: s["documents"] for s in manifest["shards"]}
    repo_shards = [s for s in manifest["shards"] if holds_repositories(s["name"])]
    lightest = min(repo_shards, key=lambda s: (s["tokens"], s["name"]), default={"name": "part-00000"})["name"]
    if plan.added:
        edits.setdefault(lightest, {})
    for name, doc_edits in sorted(edits.items()):
        docs: list[int | str] = [
            e for e in (doc_edits.get(d, d) for d in range(documents.get(name, 0))) if e is not None
        ]
        plan.shards[name] = docs + plan.added if name == lightest else docs
    # Renumber the documents of the touched shards in the rows that stay.
    kept = files.filter(pc.invert(gone))
    numbering = [
        (name, old, new) for name, docs in plan.shards.items() for new, old in enumerate(docs) if isinstance(old, int)
    ]
    if numbering:
        key = pc.binary_join_element_wise(kept["shard"], pc.cast(kept["document"], pa.string()), "\x00")
        old_keys = pa.array([f"{n}\x00{o}" for n, o, _ in numbering], pa.string())
        pos = pc.index_in(key, value_set=old_keys)
        new_docs = pc.take(pa.array([n for _, _, n in numbering], pa.int64()), pos)
        kept = kept.set_column(
            kept.schema.get_field_index("document"), "document", pc.coalesce(new_docs, kept["document"])
        )
    plan.files = kept
    return plan


def _encoder(tokens: Path, cfg: TokenizeConfig) -> DocumentEncoder:
    return make_encoder(load_tokenizer(tokens / TOKENIZER), cfg.engine, cfg.verify_bytes)


class _Collect:
    """A sink that keeps each document's ids in memory (the repositories re-tokenized: a handful)."""

    def __init__(self) -> None:
        self.docs: list[np.ndarray] = []

    def add(self, ids: np.ndarray) -> int:
        self.docs.append(ids)
        return len(self.docs) - 1


def encode_repos(
    tokens: Path, cfg: TokenizeConfig, changed: Mapping[str, list[FileRow]]
) -> tuple[dict[str, np.ndarray], dict[str, list[dict[str, Any]]]]:
    """Each changed repository's document ids and its per-file records (shard and document left to fill)."""
    if not changed:
        return {}, {}
    sink = _Collect()
    rows = [r for repo in sorted(changed) for r in sorted(changed[repo], key=lambda f: f.path)]
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in tokenize_shard(rows, _encoder(tokens, cfg), cfg, sink, ""):  # type: ignore[arg-type]
        records[rec["repo_name"]].append(rec)
    ids = {repo: sink.docs[recs[0]["document"]] for repo, recs in records.items()}
    return ids, dict(records)


def stage_rewrite(
    tokens: Path, manifest: Mapping[str, Any], plan: TokenRewrite, changed: Mapping[str, list[FileRow]], staging: Path
) -> tuple[list[Path], dict[str, Any]]:
    """Write the touched shards complete under ``staging`` (same file names as under ``tokens``); return the
    staged files (relative paths) and the new manifest. Fills the per-file table's rows of the encoded
    repositories into ``plan.files``."""
    cfg = token_config(manifest)
    formats = tuple(manifest["formats"])
    ids, records = encode_repos(tokens, cfg, {r: changed[r] for r in (*plan.retokenized, *plan.added)})
    totals = {s["name"]: dict(s) for s in manifest["shards"]}
    staged: list[Path] = []
    new_rows: list[dict[str, Any]] = []
    for name, docs in sorted(plan.shards.items()):
        readers = {
            fmt: open_shard(tokens, name, fmt) for fmt in formats if name in totals and totals[name]["documents"]
        }
        source = next(iter(readers.values()), None)
        dtype = source.dtype if source is not None else _encoder(tokens, cfg).dtype
        tok_name = readers[DATATROVE].tokenizer_name if DATATROVE in readers else TOKENIZER
        sink = TokenSink(staging, name, formats, np.dtype(dtype).newbyteorder("="), tok_name)
        for doc in docs:
            if isinstance(doc, int):
                sink.add(np.asarray(source[doc]))  # type: ignore[index]
            else:
                index = sink.add(ids[doc])
                new_rows += [{**r, "shard": name, "document": index} for r in records[doc]]
        sink.close()
        totals[name] = {"name": name, "documents": sink.documents, "tokens": sink.tokens}
        staged += shard_files(staging, name, formats)
    if new_rows:
        parts = dict(zip(plan.files["repo_name"].to_pylist(), plan.files["_part"].to_pylist(), strict=True))
        added = pa.Table.from_pylist(new_rows, schema=TOKENIZED_FILES)
        part = pa.array([parts.get(r["repo_name"]) for r in new_rows], pa.int64())
        plan.files = pa.concat_tables([plan.files, added.append_column("_part", part)])
    new_manifest = {**manifest, "shards": [totals[n] for n in sorted(totals)]}
    return staged, new_manifest


def file_stats(files: pa.Table) -> dict[str, Any]:
    """The ``tokenize`` stage's token counts (``_stats.json`` extra) from its per-file table."""
    first = pc.equal(files["position"], 0)
    by_language: dict[str, int] = defaultdict(int)
    for lang, n in zip(files["language"].to_pylist(), files["tokens"].to_pylist(), strict=True):
        by_language[lang or "unknown"] += n
    return {
        "tokens": pc.sum(files["tokens"]).as_py() or 0,
        "documents": pc.sum(first.cast(pa.int64())).as_py() or 0,
        "fim_files": pc.sum(pc.is_valid(files["fim"]).cast(pa.int64())).as_py() or 0,
        "documents_with_metadata": pc.sum(pc.and_(first, files["metadata"]).cast(pa.int64())).as_py() or 0,
        "tokens_by_language": dict(sorted(by_language.items())),
    }


# ------------------------------------------------------------------------------------------------------ check


def check_shards(tokens: Path, files: pa.Table) -> tuple[list[str], list[tuple[str, int, str]]]:
    """Prove the token files hold exactly the documents the per-file table names: (problems, and per document that
    carries its repository's name, (shard, document, name decoded from its header)).

    Per shard: the manifest's totals equal the index files'; every format holds the same ids; each document is
    named by the table, with its files' tokens adding up to the document's length; it ends with
    ``<|endoftext|>`` and holds one ``<file_sep>`` per file of the table (a notebook shard's documents: one file,
    no ``<file_sep>``, starting with a notebook sentinel). The repository names decoded from the documents'
    headers are returned for the caller to match against the registry and the table.
    """
    manifest = read_manifest(tokens)
    formats = tuple(manifest["formats"])
    encoder = DocumentEncoder(load_tokenizer(tokens / TOKENIZER))
    eos, sep, name_id = (encoder.special_ids[t] for t in (EOS, FILE_SEP, REPO_NAME))
    notebook_starts = {encoder.special_ids[t] for t in (JUPYTER_SCRIPT, JUPYTER_START)}
    problems: list[str] = []
    headers: list[tuple[str, int, str]] = []
    listed = {s["name"] for s in manifest["shards"]}
    for fmt in formats:
        on_disk = {p.name.split(".")[0] for p in (tokens / fmt).glob("*") if not p.name.startswith(".")}
        problems += [f"{fmt}/{n}: on disk, not in the manifest" for n in sorted(on_disk - listed)]
    per_doc = (
        files.group_by(["shard", "document"])
        .aggregate([("tokens", "sum"), ("repo_name", "min"), ("repo_name", "max"), ("metadata", "min")])
        .to_pylist()
    )
    table_docs: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    file_counts: dict[tuple[str, int], int] = defaultdict(int)
    for s, d in zip(files["shard"].to_pylist(), files["document"].to_pylist(), strict=True):
        file_counts[(s, d)] += 1
    for r in per_doc:
        table_docs[r["shard"]][r["document"]] = r
    problems += [f"{n}: in the per-file table, not in the manifest" for n in sorted(set(table_docs) - listed)]
    for entry in manifest["shards"]:
        name = entry["name"]
        try:
            readers = [open_shard(tokens, name, fmt) for fmt in formats]
        except (OSError, ValueError) as e:
            problems.append(f"{name}: unreadable ({e})")
            continue
        lengths = _lengths(readers[0])
        if (len(lengths), int(lengths.sum())) != (entry["documents"], entry["tokens"]):
            problems.append(f"{name}: {len(lengths)} documents, {int(lengths.sum())} tokens; manifest says {entry}")
        for other, fmt in zip(readers[1:], formats[1:], strict=True):
            if not np.array_equal(_lengths(other), lengths) or not all(
                np.array_equal(readers[0][i], other[i]) for i in range(len(lengths))
            ):
                problems.append(f"{name}: {fmt} does not hold the same documents as {formats[0]}")
        docs = table_docs.get(name, {})
        unnamed = sorted(set(range(len(lengths))) - set(docs))
        if unnamed:
            problems.append(f"{name}: {len(unnamed)} document(s) no row of the per-file table names: {unnamed[:5]}")
        for d, r in sorted(docs.items()):
            if d >= len(lengths):
                problems.append(f"{name}: the per-file table names document {d}, the shard has {len(lengths)}")
                continue
            ids = np.asarray(readers[0][d])
            why = []
            if r["repo_name_min"] != r["repo_name_max"]:
                why.append("rows of two repositories")
            if r["tokens_sum"] != len(ids):
                why.append(f"{len(ids)} tokens, the table's files {r['tokens_sum']}")
            if not len(ids) or ids[-1] != eos:
                why.append("no <|endoftext|> at the end")
            if holds_repositories(name):
                if int((ids == sep).sum()) != file_counts[(name, d)]:
                    why.append(f"{int((ids == sep).sum())} <file_sep>, {file_counts[(name, d)]} files in the table")
            elif file_counts[(name, d)] != 1 or (ids == sep).any() or not len(ids) or ids[0] not in notebook_starts:
                why.append(f"not one notebook: {file_counts[(name, d)]} files in the table")
            has_header = bool(len(ids)) and ids[0] == name_id
            if has_header:
                end = int(np.argmax(ids == sep)) if (ids == sep).any() else len(ids)
                headers.append((name, d, encoder.tokenizer.decode([int(i) for i in ids[1:end]])))
            if has_header != bool(r["metadata_min"]):
                why.append(f"<repo_name> header: {has_header}, the table says {bool(r['metadata_min'])}")
            if why:
                problems.append(f"{name} document {d} ({r['repo_name_min']}): " + "; ".join(why))
    return problems, headers
