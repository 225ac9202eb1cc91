"""The published id tables of The Stack v2 (docs/spec.md §2.2, §2.3): reading them and planning their download.

Two shapes exist, told apart by their columns:

* file level (``bigcode/the-stack-v2``, ``-dedup``): one row per file, the 26 columns, no ``content``;
* repo level (``bigcode/the-stack-v2-train-{full,smol}-ids``): one row per repository with a ``files`` list of
  structs (``blob_id``, ``path``, ``content_id``, ``src_encoding``, ``language`` ...).

Tables are Parquet files or folders of them, local or on S3 (read with boto3, so the same endpoint and
credential settings apply). ``plan_shards`` assigns every row to one output shard in the Hugging Face layout
(``data/<language>/train-NNNNN-of-MMMMM.parquet``; repo level: ``data/train-...``), from the row's own ids
only, so the plan — and the output — is the same whatever order the inputs were read in. File-level rows go
to a shard of their language by ``blob_id``, so rows sharing a blob (and a language: go-enry decides by file
name, so one blob can be ``C`` in one repo and ``C++`` in another) land in one shard and the blob is fetched
once. ``the-stack-v2`` itself is exact-deduplicated by ``blob_id``, so there every blob is fetched once.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stackv2.release.layout import language_dir, shard_name
from stackv2.reproduce.config import ReproduceConfig

FILE_LEVEL = "file"
REPO_LEVEL = "repo"
#: Columns a file-level table must have, and each element of a repo-level ``files`` list.
REQUIRED_FILE_COLUMNS = ("blob_id",)
#: Sort key inside a shard: deterministic, and puts rows sharing a blob next to each other.
FILE_SORT_KEY = ("blob_id", "repo_name", "path")
REPO_SORT_KEY = ("repo_name", "snapshot_id")


class IdTableError(ValueError):
    """An input that is not a Stack v2 id table."""


def list_parquet(path: str, s3_client=None) -> list[str]:
    """Parquet files under ``path`` (a file, a folder, ``s3://bucket/key`` or ``s3://bucket/prefix/``), sorted."""
    parsed = urlparse(path)
    if parsed.scheme in ("s3", "s3a"):
        if path.endswith(".parquet"):
            return [path]
        keys: list[str] = []
        prefix = parsed.path.lstrip("/")
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".parquet")]
        if not keys:
            raise IdTableError(f"{path}: no .parquet objects under this prefix")
        return [f"s3://{parsed.netloc}/{k}" for k in sorted(keys)]
    p = Path(path)
    if p.is_file():
        return [str(p)]
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*.parquet") if not f.name.startswith((".", "_")))
        if not files:
            raise IdTableError(f"{path}: folder holds no .parquet files")
        return files
    raise IdTableError(f"{path}: no such file or folder")


def read_id_table(path: str, s3_client=None) -> pa.Table:
    parsed = urlparse(path)
    if parsed.scheme in ("s3", "s3a"):
        body = s3_client.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
        return pq.read_table(io.BytesIO(body))
    return pq.read_table(path)


def table_level(schema: pa.Schema, where: str = "input") -> str:
    """``file`` or ``repo``, from the columns; a clear error for anything else."""
    if "files" in schema.names:
        files = schema.field("files").type
        if not (pa.types.is_list(files) or pa.types.is_large_list(files)) or not pa.types.is_struct(files.value_type):
            raise IdTableError(f"{where}: column 'files' must be a list of structs, got {files}")
        names = {f.name for f in files.value_type}
        missing = [c for c in REQUIRED_FILE_COLUMNS if c not in names]
        if missing:
            raise IdTableError(f"{where}: 'files' elements lack {missing} (repo-level id table expected)")
        return REPO_LEVEL
    missing = [c for c in REQUIRED_FILE_COLUMNS if c not in schema.names]
    if missing:
        raise IdTableError(
            f"{where}: no column {missing} and no 'files' list: not a Stack v2 id table (columns: {schema.names[:12]})"
        )
    return FILE_LEVEL


def read_id_tables(paths: list[str], s3_client=None) -> tuple[str, pa.Table]:
    """All rows of the given id tables as one table, and their level; all inputs must share level and schema."""
    files = [f for p in paths for f in list_parquet(p, s3_client)]
    if not files:
        raise IdTableError("no id tables given")
    tables = []
    level = None
    for f in files:
        t = read_id_table(f, s3_client)
        lv = table_level(t.schema, f)
        _require_blob_ids(t, lv, f)
        if level is not None and lv != level:
            raise IdTableError(f"{f}: a {lv}-level table mixed with {level}-level ones")
        level = lv
        tables.append(t)
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise IdTableError(f"id tables do not share one schema: {e}") from None
    return level, table


def _require_blob_ids(table: pa.Table, level: str, where: str) -> None:
    """Every file needs its ``blob_id``: it names the object to fetch and the shard the row goes to."""
    ids = table["blob_id"] if level == FILE_LEVEL else pc.struct_field(pc.list_flatten(table["files"]), "blob_id")
    if ids.null_count:
        raise IdTableError(f"{where}: blob_id is null in {ids.null_count} of {len(ids)} files; every file needs one")


@dataclass(frozen=True)
class Shard:
    """One output file and the input rows that go into it (already in output order)."""

    rel_path: str
    rows: pa.Table

    @property
    def name(self) -> str:
        return self.rel_path.removesuffix(".parquet").replace("/", "__")


def _bucket(keys: list[str], n: int) -> list[int]:
    return [zlib.crc32(k.encode("utf-8", "surrogatepass")) % n for k in keys]


def _split(
    table: pa.Table, folder: str, keys: list[str], per_shard: int, sort_key: tuple[str, ...]
) -> Iterator[Shard]:
    n = max(1, -(-table.num_rows // per_shard))
    table = table.append_column("__shard", pa.array(_bucket(keys, n), pa.int32()))
    sort = [(c, "ascending") for c in sort_key if c in table.column_names]
    for i in range(n):
        part = table.filter(pc.equal(table["__shard"], i)).drop_columns(["__shard"])
        yield Shard(f"{folder}/{shard_name(i, n)}", part.sort_by(sort))


def plan_shards(level: str, table: pa.Table, cfg: ReproduceConfig) -> list[Shard]:
    """Every input row in exactly one shard; shards and their row order depend only on the rows' ids."""
    if level == FILE_LEVEL:
        langs = table["language"].to_pylist() if "language" in table.column_names else [None] * table.num_rows
        dirs = pa.array([language_dir(x) for x in langs])
        shards = []
        for d in sorted(set(dirs.to_pylist())):
            part = table.filter(pc.equal(dirs, d))
            shards += _split(part, f"data/{d}", part["blob_id"].to_pylist(), cfg.rows_per_shard, FILE_SORT_KEY)
        return shards
    keys = [f"{r}\0{s}" for r, s in zip(_col(table, "repo_name"), _col(table, "snapshot_id"), strict=True)]
    return list(_split(table, "data", keys, cfg.repos_per_shard, REPO_SORT_KEY))


def _col(table: pa.Table, name: str) -> list:
    return table[name].to_pylist() if name in table.column_names else [""] * table.num_rows
