"""``stackv2 reproduce``: The Stack v2's published id tables in, the same rows with their ``content`` out (pure
Python; ``pipelines.reproduce`` runs the shards as Spark tasks).

    stackv2 reproduce --ids the-stack-v2/data/Python --out stack-python --no-sign-request

1. plan (driver): read the id tables (file or repo level, local or S3), assign every row to one output shard in
   the Hugging Face layout (``stackv2.idtables.plan_shards``) and write each shard's input rows to
   ``OUT/_plan/``;
2. fetch (one task per shard: ``run_shard``, mapped over the shards by the caller's ``map_shards``: Spark tasks,
   or this process with ``--no-spark``): each unique blob of the shard
   is read once with the lean S3 reader (``stackv2.swh.s3fetch``), verified and decoded with the row's
   ``src_encoding``; rows go to ``OUT/data/...`` with ``content`` added, or to ``OUT/rejected/...`` with a
   ``reason`` and ``detail``;
3. commit per shard, atomically: both files are written under temporary names and renamed, then a marker
   ``OUT/_shards/<shard>.json`` (its counts, and a digest of its input rows and settings) is written last. A
   rerun skips shards whose marker matches and redoes the rest, so a run killed at any point and rerun ends
   with every input row exactly once in ``data`` or ``rejected``, byte-identical to an uninterrupted run.

Progress lines (objects/s, MB/s, rejects by reason) come from each shard; a summary ends the run, and
``OUT/_summary.json`` keeps it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from stackv2.atomic import atomic_path, write_json
from stackv2.config import from_dict, to_dict
from stackv2.reproduce.config import ReproduceConfig
from stackv2.reproduce.idtables import FILE_LEVEL, Shard, plan_shards, read_id_tables
from stackv2.stats import AccountingError
from stackv2.swh.s3fetch import Progress, S3Reader, fetch
from stackv2.text.decode import FETCH_ERROR, BlobOutcome

DATA, REJECTED, PLAN, MARKERS = "data", "rejected", "_plan", "_shards"
SUMMARY = "_summary.json"
#: Fetch settings that change what a shard's output holds (the others only change speed).
_OUTPUT_SETTINGS = ("max_length", "max_compressed", "verify_hashes")


def shard_digest(shard: Shard, level: str, cfg: ReproduceConfig) -> str:
    """What a shard's output depends on: its input rows (in order) and the output-changing settings."""
    h = hashlib.sha256()
    settings = {"bucket": cfg.bucket, "prefix": cfg.prefix, **{k: getattr(cfg.fetch, k) for k in _OUTPUT_SETTINGS}}
    h.update(json.dumps([level, shard.rel_path, settings]).encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, shard.rows.schema) as w:
        w.write_table(shard.rows)
    h.update(sink.getvalue())
    return h.hexdigest()[:32]


def _atomic_parquet(path: Path, schema: pa.Schema, tables: Callable[[], Any]) -> None:
    """Write the tables yielded by ``tables()`` to ``path``, atomically."""
    with atomic_path(path, os.getpid()) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as w:
        for t in tables():
            w.write_table(t)


class _ShardFetcher:
    """Pairs each input row (or repo file) with its blob's outcome; each unique blob is fetched once."""

    def __init__(
        self, reader: S3Reader, blob_requests: list[tuple[str, str | None, str | None]], progress: Progress
    ) -> None:
        self.counts = Counter(r[0] for r in blob_requests)
        unique = list({r[0]: r for r in reversed(blob_requests)}.values())[::-1]
        self._outcomes = fetch(reader, unique, progress=progress)
        self._cache: dict[str, BlobOutcome] = {}

    def next(self, blob_id: str) -> BlobOutcome:
        """Outcome for the next row; rows must be visited in the order their requests were given."""
        if blob_id in self._cache:
            out = self._cache[blob_id]
        else:
            out = next(self._outcomes)
            if self.counts[blob_id] > 1:
                self._cache[blob_id] = out
        self.counts[blob_id] -= 1
        if not self.counts[blob_id]:
            self._cache.pop(blob_id, None)
        return out


def _file_level(
    rows: pa.Table, fetcher: _ShardFetcher, group: int, counts: Counter
) -> tuple[pa.Schema, pa.Schema, Callable, Callable]:
    """Writers of a file-level shard: input columns + ``content`` (and ``src_encoding``/``length_bytes`` when the
    input lacks them); rejected rows keep the input columns + ``reason`` + ``detail``."""
    extra = [
        f
        for f in (pa.field("src_encoding", pa.string()), pa.field("length_bytes", pa.int64()))
        if f.name not in rows.schema.names
    ]
    data_schema = pa.schema([*rows.schema, *extra, pa.field("content", pa.string())])
    rej_schema = pa.schema([*rows.schema, pa.field("reason", pa.string()), pa.field("detail", pa.string())])
    rejected_parts: list[pa.Table] = []

    def batches():
        for start in range(0, rows.num_rows, group):
            part = rows.slice(start, group)
            ok, rej, outs = [], [], []
            for i, b in enumerate(part["blob_id"].to_pylist()):
                o = fetcher.next(b)
                (ok if o.reason is None else rej).append(i)
                outs.append(o)
                counts[o.reason or "ok"] += 1
            good = part.take(pa.array(ok, pa.int64()))
            cols = {
                "src_encoding": [outs[i].src_encoding for i in ok],
                "length_bytes": [outs[i].length_bytes for i in ok],
            }
            for f in extra:
                good = good.append_column(f, pa.array(cols[f.name], f.type))
            good = good.append_column("content", pa.array([outs[i].content for i in ok], pa.string()))
            bad = part.take(pa.array(rej, pa.int64()))
            bad = bad.append_column("reason", pa.array([outs[i].reason for i in rej], pa.string()))
            bad = bad.append_column("detail", pa.array([outs[i].detail for i in rej], pa.string()))
            rejected_parts.append(bad)
            yield good

    def rejected():
        yield from rejected_parts

    return data_schema, rej_schema, batches, rejected


def _repo_level(
    rows: pa.Table, fetcher: _ShardFetcher, group: int, counts: Counter
) -> tuple[pa.Schema, pa.Schema, Callable, Callable]:
    """Writers of a repo-level shard: each repository keeps its ``files`` list, every file with ``content``;
    files that cannot be fetched leave the list (``num_files`` follows) and go to rejected as one row each."""
    file_type = rows.schema.field("files").type.value_type
    out_file = pa.struct([*file_type, pa.field("content", pa.string())])
    data_schema = rows.schema.set(rows.schema.get_field_index("files"), pa.field("files", pa.list_(out_file)))
    repo_keys = [c for c in ("repo_name", "snapshot_id", "revision_id") if c in rows.schema.names]
    rej_schema = pa.schema(
        [
            *(rows.schema.field(c) for c in repo_keys),
            *file_type,
            pa.field("reason", pa.string()),
            pa.field("detail", pa.string()),
        ]
    )
    rejected_rows: list[dict] = []

    def batches():
        out: list[dict] = []
        nfiles = 0
        for repo in rows.to_pylist():
            kept = []
            for f in repo["files"] or []:
                o = fetcher.next(f["blob_id"])
                counts[o.reason or "ok"] += 1
                if o.reason is None:
                    kept.append({**f, "content": o.content})
                else:
                    rejected_rows.append(
                        {**{c: repo[c] for c in repo_keys}, **f, "reason": o.reason, "detail": o.detail}
                    )
            repo["files"] = kept
            if "num_files" in repo:
                repo["num_files"] = len(kept)
            out.append(repo)
            nfiles += len(kept)
            if nfiles >= group:
                yield pa.Table.from_pylist(out, data_schema)
                out, nfiles = [], 0
        if out:
            yield pa.Table.from_pylist(out, data_schema)

    def rejected():
        yield pa.Table.from_pylist(rejected_rows, rej_schema)

    return data_schema, rej_schema, batches, rejected


def blob_requests(level: str, rows: pa.Table) -> list[tuple[str, str | None, str | None]]:
    """(blob_id, content_id, src_encoding) of every row (file level) or every file of every repo, in order."""
    if level == FILE_LEVEL:
        n = rows.num_rows
        cols = [
            rows[c].to_pylist() if c in rows.column_names else [None] * n
            for c in ("blob_id", "content_id", "src_encoding")
        ]
        return list(zip(*cols, strict=True))
    return [
        (f["blob_id"], f.get("content_id"), f.get("src_encoding"))
        for files in rows["files"].to_pylist()
        for f in files or []
    ]


def run_shard(out: str, rel_path: str, level: str, digest: str, cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """Fetch one planned shard and commit it (data, rejected, then the marker). Runs on an executor."""
    cfg = from_dict(ReproduceConfig, cfg_dict)
    root = Path(out)
    name = rel_path.removesuffix(".parquet").replace("/", "__")
    rows = pq.read_table(root / PLAN / f"{name}.parquet")
    t0 = time.monotonic()
    reader = S3Reader(cfg.fetch, cfg.bucket, cfg.prefix)
    progress = Progress(label=rel_path, every=cfg.progress_every)
    counts: Counter = Counter()
    try:
        fetcher = _ShardFetcher(reader, blob_requests(level, rows), progress)
        build = _file_level if level == FILE_LEVEL else _repo_level
        data_schema, rej_schema, data, rejected = build(rows, fetcher, cfg.row_group_rows, counts)
        _atomic_parquet(root / rel_path, data_schema, data)
        _atomic_parquet(root / REJECTED / Path(rel_path).relative_to(DATA), rej_schema, rejected)
    finally:
        reader.close()
    progress.out(progress.line() + " (committed)")
    marker = {
        "shard": rel_path,
        "digest": digest,
        "level": level,
        "rows_in": rows.num_rows,
        "items_in": sum(counts.values()),
        "items_out": counts.pop("ok", 0),
        "rejected": dict(sorted(counts.items())),
        "objects": progress.files,
        "bytes": progress.bytes,
        "retries": reader.retries,
        "seconds": round(time.monotonic() - t0, 3),
    }
    write_json(root / MARKERS / f"{name}.json", marker, indent=1, sort_keys=True)
    (root / PLAN / f"{name}.parquet").unlink()  # committed: a rerun plans again from the id tables
    return marker


def _done(root: Path, shard: Shard, digest: str, retry_fetch_errors: bool = False) -> bool:
    """Committed for this digest (and, with ``retry_fetch_errors``, without transient ``fetch_error`` rows)."""
    p = root / MARKERS / f"{shard.name}.json"
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    return m.get("digest") == digest and not (retry_fetch_errors and m["rejected"].get(FETCH_ERROR))


def _remove_stale(root: Path, keep: set[str]) -> None:
    """Drop outputs of shards that are not in this plan (a previous run on other inputs or settings)."""
    for sub in (DATA, REJECTED, MARKERS, PLAN):
        base = root / sub
        if not base.is_dir():
            continue
        for f in base.rglob("*"):
            if not f.is_file():
                continue
            rel = f.relative_to(root).as_posix()
            if sub in (MARKERS, PLAN):
                name = f.name.removesuffix(".json").removesuffix(".parquet")
                wanted = name in keep and not f.name.startswith(".")
            else:
                stem = rel.removeprefix(f"{sub}/").removesuffix(".parquet")
                wanted = f"{DATA}__{stem.replace('/', '__')}" in keep and not f.name.startswith(".")
            if not wanted:
                f.unlink()


def reproduce(
    ids: list[str],
    out: str,
    cfg: ReproduceConfig,
    *,
    map_shards: Callable[[list[tuple]], list[dict[str, Any]]] | None = None,
    retry_fetch_errors: bool = False,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Plan, fetch every shard not yet committed, summarise. ``map_shards`` runs ``run_shard(*args)`` for a list
    of argument tuples and returns their results (``pipelines.reproduce.spark_map``: one Spark task per shard);
    None runs them one after another in this process.

    ``retry_fetch_errors`` also redoes committed shards that hold ``fetch_error`` rows (an outage that outlasted
    the retries), so a later run can complete them."""
    from stackv2.swh.content_store import make_s3_client

    t0 = time.monotonic()
    root = Path(out).resolve()
    s3 = None
    if any(p.startswith(("s3://", "s3a://")) for p in ids):
        s3 = make_s3_client(cfg.fetch.endpoint_url, cfg.fetch.region, cfg.fetch.unsigned)
    level, table = read_id_tables(ids, s3)
    shards = plan_shards(level, table, cfg)
    digests = {s.name: shard_digest(s, level, cfg) for s in shards}
    _remove_stale(root, set(digests))
    todo = []
    for s in shards:
        if _done(root, s, digests[s.name], retry_fetch_errors):
            continue
        with atomic_path(root / PLAN / f"{s.name}.parquet", os.getpid()) as tmp:
            pq.write_table(s.rows, tmp, compression="zstd")
        todo.append((str(root), s.rel_path, level, digests[s.name], to_dict(cfg)))
    log(
        f"[reproduce] {level}-level input: {table.num_rows:,} rows in {len(shards)} shards; "
        f"{len(shards) - len(todo)} already committed, {len(todo)} to fetch "
        f"(bucket {cfg.bucket}, {'unsigned' if cfg.fetch.unsigned else 'signed'})"
    )
    t1 = time.monotonic()
    done = map_shards(todo) if todo and map_shards is not None else [run_shard(*t) for t in todo]
    with contextlib.suppress(OSError):
        (root / PLAN).rmdir()  # every shard committed: the plan folder is empty
    this_run = {
        "shards": len(done),
        "objects": sum(m["objects"] for m in done),
        "bytes": sum(m["bytes"] for m in done),
        "seconds": round(time.monotonic() - t1, 2),
    }
    return total_summary(root, shards, digests, this_run, time.monotonic() - t0, log)


def total_summary(
    root: Path,
    shards: list[Shard],
    digests: dict[str, str],
    this_run: dict[str, Any],
    seconds: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Totals over every shard's marker (this run's and earlier runs'); checks items in == out + rejected."""
    total: Counter = Counter()
    rejected: Counter = Counter()
    for s in shards:
        m = json.loads((root / MARKERS / f"{s.name}.json").read_text())
        if m["digest"] != digests[s.name]:
            raise AccountingError(f"shard {s.rel_path} was committed for other inputs")
        for k in ("rows_in", "items_in", "items_out", "objects", "bytes", "retries"):
            total[k] += m[k]
        rejected.update(m["rejected"])
    summary = {
        "shards": len(shards),
        **{k: total[k] for k in ("rows_in", "items_in", "items_out", "objects", "bytes", "retries")},
        "rejected": dict(sorted(rejected.items())),
        "this_run": this_run,
    }
    if summary["items_in"] != summary["items_out"] + sum(rejected.values()):
        raise AccountingError(
            f"reproduce: {summary['items_in']} in != {summary['items_out']} out + {sum(rejected.values())} rejected"
        )
    write_json(root / SUMMARY, summary, indent=1, sort_keys=True)
    dt = max(this_run["seconds"], 1e-9)
    log(
        f"[reproduce] done in {seconds:.1f}s: {summary['items_in']:,} files in, {summary['items_out']:,} written "
        f"to {root / DATA}, {sum(rejected.values()):,} rejected {dict(rejected) or ''}, {summary['retries']:,} "
        f"retries; this run fetched {this_run['shards']} shards, {this_run['objects']:,} objects "
        f"({this_run['objects'] / dt:,.0f} objects/s, {this_run['bytes'] / dt / 1e6:,.1f} MB/s compressed)"
    )
    return summary
