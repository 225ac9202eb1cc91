"""Shard layout, shard files and the manifest of a release (the package docstring describes the layout).

A release may live in a local folder or on an object store: files are written and read through
``stackv2.storage`` (a ``Path`` or a ``Location`` is accepted wherever a folder is named)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stackv2 import __version__
from stackv2.atomic import write_text
from stackv2.release.config import ShardsConfig
from stackv2.schema import REPO_FILE
from stackv2.storage import HashingWriter, Location, location, parquet_file

#: Bytes counted per row on top of its content (ids, path, metadata), for planning shards and row groups.
ROW_OVERHEAD_BYTES = 256
#: Folder of rows whose language go-enry could not tell (null or ""); no linguist language has this name.
UNKNOWN_LANGUAGE_DIR = "unknown"
DATA_DIR = "data"
MANIFEST = "manifest.json"
CARD = "README.md"
MANIFEST_FORMAT = "stackv2-release/1"
#: Row order inside a shard: a repository's files together (better compression, repo-context readers).
SORT_KEY = ("repo_name", "snapshot_id", "path", "blob_id")
#: Row order of the repo-grouped shards.
REPO_SORT_KEY = ("repo_name", "snapshot_id")

#: Helper columns the writer expects in front of the payload (see ``write_shards``).
DIR_COL, SHARD_COL, NBYTES_COL = "_dir", "_shard", "_nbytes"
#: What ``write_shards`` yields per file it wrote.
WRITTEN = pa.schema(
    [
        ("dir", pa.string()),
        ("shard", pa.int64()),
        ("path", pa.string()),
        ("rows", pa.int64()),
        ("files", pa.int64()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
    ]
)

_UNSAFE = re.compile(r'[\s/\\:*?"<>|]+')


def language_dir(language: str | None) -> str:
    """Folder of a language: its go-enry name, as published (``C++``, ``C#``); whitespace and characters that
    break paths or globs (``/ \\ : * ? " < > |``, e.g. ``F*``) become ``_``; null or empty is ``unknown``."""
    if not language:
        return UNKNOWN_LANGUAGE_DIR
    return _UNSAFE.sub("_", language)


def shard_count(nbytes: int, target: int) -> int:
    """Shards expected for ``nbytes`` of rows (sets the write's parallelism): at least one."""
    return max(1, math.ceil(nbytes / target))


class ShardStarts:
    """Where each shard of each folder starts: the key of its first repository. A folder's shards hold consecutive
    repositories in key order, so a repository's shard is the last one starting at or before its key: one small
    table per shard, not per repository, is all a task needs to place its rows (``shard_of``)."""

    def __init__(self, starts: Iterable[tuple[str, int, str]]) -> None:
        """``starts``: (folder, shard, first repository key) of every shard."""
        by_dir: dict[str, list[tuple[str, int]]] = {}
        for folder, shard, key in starts:
            by_dir.setdefault(folder, []).append((key, shard))
        self._keys = {d: [k for k, _ in sorted(v)] for d, v in by_dir.items()}
        self._shards = {d: [s for _, s in sorted(v)] for d, v in by_dir.items()}

    def shard_of(self, folder: str, key: str) -> int:
        """The shard of the repository ``key`` in ``folder`` (a repository the table was built from; a key before
        the folder's first is an error)."""
        i = bisect_right(self._keys[folder], key) - 1
        if i < 0:
            raise KeyError(f"{folder}: {key!r} comes before the folder's first shard")
        return self._shards[folder][i]


def shard_name(index: int, count: int) -> str:
    return f"train-{index:05d}-of-{count:05d}.parquet"


def final_paths(written: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Map each written temporary file to its release path: per folder, shards numbered 0..n-1 in shard order.
    Shard numbers that got no row leave no gap, so ``-of-MMMMM`` is always the number of files present."""
    by_dir: dict[str, list[tuple[int, str]]] = {}
    for w in written:
        by_dir.setdefault(w["dir"], []).append((w["shard"], w["path"]))
    out = {}
    for d, shards in by_dir.items():
        shards.sort()
        for i, (_, tmp) in enumerate(shards):
            out[tmp] = f"{d}/{shard_name(i, len(shards))}"
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class ShardWriter:
    """Writes one shard from rows arriving in order, in batches of any size.

    Row groups end at the first row where the group's planned bytes (``NBYTES_COL``) reach
    ``cfg.row_group_bytes``, so group boundaries depend on the rows only.
    """

    def __init__(self, path: Path | Location, schema: pa.Schema, cfg: ShardsConfig):
        self.path, self.schema, self.cfg = location(path), schema, cfg
        self._out = HashingWriter(self.path.open_output())
        self._writer = pq.ParquetWriter(
            self._out, schema, compression=cfg.compression, compression_level=cfg.compression_level
        )
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0
        self.rows = 0
        #: Files written: one per row, or a repository row's ``num_files``.
        self.files = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_bytes += pc.sum(table[NBYTES_COL]).as_py() or 0
        while self._pending_bytes >= self.cfg.row_group_bytes:
            buf = pa.concat_tables(self._pending)
            cum = pc.cumulative_sum(buf[NBYTES_COL]).to_numpy()
            cut = int((cum < self.cfg.row_group_bytes).sum()) + 1
            self._flush(buf.slice(0, cut))
            rest = buf.slice(cut)
            self._pending = [rest]
            self._pending_bytes = int(cum[-1] - cum[cut - 1])

    def _flush(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table.select(self.schema.names).cast(self.schema), row_group_size=table.num_rows)
            self.rows += table.num_rows
            self.files += pc.sum(table["num_files"]).as_py() if "num_files" in table.column_names else table.num_rows

    def close(self) -> dict[str, Any]:
        if self._pending:
            self._flush(pa.concat_tables(self._pending))
        self._writer.close()
        self._out.close()
        return {
            "path": self.path.uri,
            "rows": self.rows,
            "files": self.files,
            "bytes": self._out.bytes,
            "sha256": self._out.sha256,
        }


def _runs(table: pa.Table) -> list[tuple[int, int]]:
    """(start, stop) of the runs of equal (``DIR_COL``, ``SHARD_COL``) in a table sorted on them."""
    dirs = pc.dictionary_encode(table[DIR_COL]).combine_chunks().indices.to_numpy(zero_copy_only=False)
    shards = table[SHARD_COL].to_numpy()
    starts = [0, *(np.flatnonzero((dirs[1:] != dirs[:-1]) | (shards[1:] != shards[:-1])) + 1).tolist()]
    return list(zip(starts, [*starts[1:], table.num_rows], strict=True))


def write_shards(
    batches: Iterable[pa.RecordBatch], root: str, schema: pa.Schema, cfg: ShardsConfig, tag: str = ""
) -> Iterator[pa.RecordBatch]:
    """Write rows sorted by (``DIR_COL``, ``SHARD_COL``, sort key) to one file per (dir, shard) run.

    The body of a Spark ``mapInArrow``: all rows of a shard are in one partition, contiguous. Files go to
    ``<root>/<dir>/shard-<number>[-<tag>].parquet`` (``root`` a local path or a URI; ``tag`` names the task attempt,
    so two attempts never write one file), given their release names later (``final_paths``); yields one
    ``WRITTEN`` row per file. A retried task writes the same bytes.
    """
    open_: tuple[tuple[str, int], ShardWriter] | None = None
    for batch in batches:
        table = pa.Table.from_batches([batch])
        for start, stop in _runs(table) if table.num_rows else ():
            key = (table[DIR_COL][start].as_py(), table[SHARD_COL][start].as_py())
            if open_ is None or open_[0] != key:
                if open_ is not None:
                    yield _close(*open_)
                name = f"shard-{key[1]:05d}{f'-{tag}' if tag else ''}.parquet"
                open_ = key, ShardWriter(location(root) / key[0] / name, schema, cfg)
            open_[1].write(table.slice(start, stop - start))
    if open_ is not None:
        yield _close(*open_)


def _close(key: tuple[str, int], writer: ShardWriter) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"dir": key[0], "shard": key[1], **writer.close()}], schema=WRITTEN)


# --- manifest -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardEntry:
    path: str
    rows: int
    bytes: int
    sha256: str


def describe_shard(release: Path | Location, rel_path: str) -> ShardEntry:
    """The manifest entry of a shard as it is on disk now (call after rewriting a shard)."""
    p = location(release) / rel_path
    return ShardEntry(rel_path, parquet_file(p).metadata.num_rows, p.size(), p.sha256())


def write_manifest(
    release: Path | Location, shards: Iterable[ShardEntry], config_hash: str, created_from: str, **extra: Any
) -> dict[str, Any]:
    manifest = {
        "format": MANIFEST_FORMAT,
        "pipeline_version": __version__,
        "config_hash": config_hash,
        "created_from": created_from,
        **extra,
        "shards": [asdict(s) for s in sorted(shards, key=lambda s: s.path)],
    }
    write_text(location(release) / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(release: Path | Location) -> dict[str, Any]:
    return json.loads((location(release) / MANIFEST).read_text())


def manifest_entries(manifest: Mapping[str, Any]) -> list[ShardEntry]:
    return [ShardEntry(**s) for s in manifest["shards"]]


#: The fields of one file in a repository-level row's ``files``.
_FILE_FIELDS = frozenset(f.name for f in REPO_FILE)


def shard_files(product: Path | Location) -> list[Location]:
    """A product's shard files, as its manifest lists them."""
    product = location(product)
    if not (product / MANIFEST).exists():
        raise FileNotFoundError(f"no product released in {product} (no {MANIFEST}): check its name, or run shards")
    return [product / e.path for e in manifest_entries(read_manifest(product))]


def file_columns(shard: Path | Location, columns: Iterable[str]) -> Iterator[pa.Table]:
    """``columns`` of the files of one shard, one table per row group: a repository-level shard's ``files`` are
    flattened, each with its repository's own fields. Only these columns are read."""
    f = parquet_file(shard)
    columns = list(columns)
    if "files" not in f.schema_arrow.names:
        for i in range(f.num_row_groups):
            yield f.read_row_group(i, columns=columns)
        return
    # one field at least, to count each repository's files
    inner = [c for c in columns if c in _FILE_FIELDS] or [f.schema_arrow.field("files").type.value_type[0].name]
    outer = [c for c in columns if c not in _FILE_FIELDS]
    for i in range(f.num_row_groups):
        group = f.read_row_group(i, columns=[*outer, *(f"files.list.element.{c}" for c in inner)])
        files = group.column("files").combine_chunks()
        flat, parents = pc.list_flatten(files), pc.list_parent_indices(files)
        yield pa.table({c: flat.field(c) if c in _FILE_FIELDS else group.column(c).take(parents) for c in columns})


def verify_release(release: Path | Location) -> list[str]:
    """Problems between the manifest and the files: missing, unlisted, differing bytes/sha256, or rows (read only
    where the bytes differ: same sha256 means same rows)."""
    release = location(release)
    entries = manifest_entries(read_manifest(release))
    listed = {e.path for e in entries}
    on_disk = {p.relative_to(release) for p in (release / DATA_DIR).files() if p.name.endswith(".parquet")}
    problems = [f"{p}: on disk, not in the manifest" for p in sorted(on_disk - listed)]
    for e in entries:
        p = release / e.path
        if e.path not in on_disk:
            problems.append(f"{e.path}: in the manifest, missing on disk")
            continue
        size, sha = p.size(), p.sha256()
        if sha == e.sha256:
            continue
        problems.append(f"{e.path}: sha256 is {sha}, manifest says {e.sha256}")
        if size != e.bytes:
            problems.append(f"{e.path}: {size} bytes, manifest says {e.bytes}")
        try:
            rows = parquet_file(p).metadata.num_rows
        except (pa.ArrowInvalid, OSError) as err:
            problems.append(f"{e.path}: not a readable Parquet file ({err})")
            continue
        if rows != e.rows:
            problems.append(f"{e.path}: {rows} rows, manifest says {e.rows}")
    return problems
