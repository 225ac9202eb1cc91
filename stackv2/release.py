"""The released dataset on disk (spec §2.2, §2.3): shard layout, shard files, manifest, dataset card.

Layout of ``<work_dir>/release`` (the ``shards`` stage writes it, ``stackv2 optout apply`` edits it):

* ``data/<Language>/train-NNNNN-of-MMMMM.parquet``: file-level rows, exactly ``schema.RELEASE`` (the 26
  published columns + ``content``), sorted by ``SORT_KEY``. ``<Language>`` is the go-enry name as published
  (``data/Python``, ``data/C++``); see ``language_dir`` for unknown languages and unsafe characters.
* ``repos/train-NNNNN-of-MMMMM.parquet``: one row per repository, ``schema.RELEASE_REPOS``
  (like ``the-stack-v2-train-*-ids``, plus each file's ``content``), sorted by repository.
* ``manifest.json``: ``{"format", "pipeline_version", "config_hash", "created_from" (the input stage, or the
  ``input`` dataset), "shards": [{"path", "rows", "bytes", "sha256"}, ...]}``, shards sorted by path, paths
  relative to the release folder. Whoever rewrites a shard recomputes its entry with ``describe_shard`` and
  saves with ``write_manifest``; ``verify_release`` checks every entry against the files. No timestamp, so the
  same build gives the same manifest bytes.
* ``README.md``: the dataset card (``dataset_card``).

Shard sizes are planned on *uncompressed* bytes (``length_bytes`` + a fixed per-row allowance), the quantity known
before writing, as ``datasets.push_to_hub(max_shard_size=...)`` does. Shards are filled with whole repositories in
key order, so a repository's files of one language are in one shard, and a shard holds at most the target plus
its last repository. Row groups are cut by the same measure (``row_group_bytes``), from the row sequence alone:
the bytes of a file do not depend on how Spark batched the rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stackv2 import __version__
from stackv2.stats import StageStats

MB = 1_000_000
#: Bytes counted per row on top of its content (ids, path, metadata), for planning shards and row groups.
ROW_OVERHEAD_BYTES = 256
#: Folder of rows whose language go-enry could not tell (null or ""); no linguist language has this name.
UNKNOWN_LANGUAGE_DIR = "unknown"
DATA_DIR = "data"
REPOS_DIR = "repos"
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
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
    ]
)

_UNSAFE = re.compile(r'[\s/\\:*?"<>|]+')


@dataclass(frozen=True)
class ShardsConfig:
    #: Uncompressed bytes per shard (HF's ``push_to_hub`` measures ``max_shard_size`` the same way).
    target_shard_bytes: int = 256 * MB
    #: Uncompressed bytes per Parquet row group: the Hub's viewer wants 100-300 MB and rejects > 286 MiB;
    #: a streaming reader holds one row group at a time, so take the low end.
    row_group_bytes: int = 100 * MB
    compression: str = "zstd"
    #: zstd level 3, Spark's (parquet-mr's) default: pyarrow's own default (1) writes larger files on code.
    compression_level: int | None = 3


def language_dir(language: str | None) -> str:
    """Folder of a language: its go-enry name, as published (``C++``, ``C#``); whitespace and characters that
    break paths or globs (``/ \\ : * ? " < > |``, e.g. ``F*``) become ``_``; null or empty is ``unknown``."""
    if not language:
        return UNKNOWN_LANGUAGE_DIR
    return _UNSAFE.sub("_", language)


def shard_count(nbytes: int, target: int) -> int:
    """Shards expected for ``nbytes`` of rows (sets the write's parallelism): at least one."""
    return max(1, math.ceil(nbytes / target))


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

    def __init__(self, path: Path, schema: pa.Schema, cfg: ShardsConfig):
        self.path, self.schema, self.cfg = path, schema, cfg
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(
            path, schema, compression=cfg.compression, compression_level=cfg.compression_level
        )
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0
        self.rows = 0

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

    def close(self) -> dict[str, Any]:
        if self._pending:
            self._flush(pa.concat_tables(self._pending))
        self._writer.close()
        return {
            "path": str(self.path),
            "rows": self.rows,
            "bytes": self.path.stat().st_size,
            "sha256": sha256_file(self.path),
        }


def _runs(table: pa.Table) -> list[tuple[int, int]]:
    """(start, stop) of the runs of equal (``DIR_COL``, ``SHARD_COL``) in a table sorted on them."""
    dirs = pc.dictionary_encode(table[DIR_COL]).combine_chunks().indices.to_numpy(zero_copy_only=False)
    shards = table[SHARD_COL].to_numpy()
    starts = [0, *(np.flatnonzero((dirs[1:] != dirs[:-1]) | (shards[1:] != shards[:-1])) + 1).tolist()]
    return list(zip(starts, [*starts[1:], table.num_rows], strict=True))


def write_shards(
    batches: Iterable[pa.RecordBatch], root: str, schema: pa.Schema, cfg: ShardsConfig
) -> Iterator[pa.RecordBatch]:
    """Write rows sorted by (``DIR_COL``, ``SHARD_COL``, sort key) to one file per (dir, shard) run.

    The body of a Spark ``mapInArrow``: all rows of a shard are in one partition, contiguous. Files go to
    ``<root>/<dir>/shard-<number>.parquet`` (renamed later by ``final_paths``); yields one ``WRITTEN`` row per file.
    A retried task rewrites the same file with the same bytes.
    """
    open_: tuple[tuple[str, int], ShardWriter] | None = None
    for batch in batches:
        table = pa.Table.from_batches([batch])
        for start, stop in _runs(table) if table.num_rows else ():
            key = (table[DIR_COL][start].as_py(), table[SHARD_COL][start].as_py())
            if open_ is None or open_[0] != key:
                if open_ is not None:
                    yield _close(*open_)
                open_ = key, ShardWriter(Path(root) / key[0] / f"shard-{key[1]:05d}.parquet", schema, cfg)
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


def describe_shard(release: Path, rel_path: str) -> ShardEntry:
    """The manifest entry of a shard as it is on disk now (call after rewriting a shard)."""
    p = release / rel_path
    return ShardEntry(rel_path, pq.ParquetFile(p).metadata.num_rows, p.stat().st_size, sha256_file(p))


def write_manifest(
    release: Path, shards: Iterable[ShardEntry], config_hash: str, created_from: str, **extra: Any
) -> dict[str, Any]:
    manifest = {
        "format": MANIFEST_FORMAT,
        "pipeline_version": __version__,
        "config_hash": config_hash,
        "created_from": created_from,
        **extra,
        "shards": [asdict(s) for s in sorted(shards, key=lambda s: s.path)],
    }
    (release / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(release: Path) -> dict[str, Any]:
    return json.loads((release / MANIFEST).read_text())


def manifest_entries(manifest: Mapping[str, Any]) -> list[ShardEntry]:
    return [ShardEntry(**s) for s in manifest["shards"]]


def verify_release(release: Path) -> list[str]:
    """Problems between the manifest and the files: missing, unlisted, differing bytes/sha256, or rows (read only
    where the bytes differ: same sha256 means same rows)."""
    entries = manifest_entries(read_manifest(release))
    listed = {e.path for e in entries}
    on_disk = {
        p.relative_to(release).as_posix() for d in (DATA_DIR, REPOS_DIR) for p in (release / d).rglob("*.parquet")
    }
    problems = [f"{p}: on disk, not in the manifest" for p in sorted(on_disk - listed)]
    for e in entries:
        p = release / e.path
        if e.path not in on_disk:
            problems.append(f"{e.path}: in the manifest, missing on disk")
            continue
        size, sha = p.stat().st_size, sha256_file(p)
        if sha == e.sha256:
            continue
        problems.append(f"{e.path}: sha256 is {sha}, manifest says {e.sha256}")
        if size != e.bytes:
            problems.append(f"{e.path}: {size} bytes, manifest says {e.bytes}")
        try:
            rows = pq.ParquetFile(p).metadata.num_rows
        except (pa.ArrowInvalid, OSError) as err:
            problems.append(f"{e.path}: not a readable Parquet file ({err})")
            continue
        if rows != e.rows:
            problems.append(f"{e.path}: {rows} rows, manifest says {e.rows}")
    return problems


# --- summary and dataset card ---------------------------------------------------------------------------------


@dataclass
class ReleaseSummary:
    """What the card and the report say about the released rows; plain values (kept in the stage's stats)."""

    #: language (``None`` -> ``"unknown"``) -> {"files": n, "bytes": n}
    languages: dict[str, dict[str, int]] = field(default_factory=dict)
    license_types: dict[str, int] = field(default_factory=dict)
    #: floor(log2(length_bytes)) -> files (bin -1 holds empty files)
    length_histogram: dict[int, int] = field(default_factory=dict)
    repos: int = 0
    shards: int = 0
    repo_shards: int = 0
    shard_bytes: int = 0

    @property
    def files(self) -> int:
        return sum(v["files"] for v in self.languages.values())

    @property
    def bytes(self) -> int:
        return sum(v["bytes"] for v in self.languages.values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["length_histogram"] = {str(k): v for k, v in sorted(self.length_histogram.items())}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReleaseSummary:
        d = dict(d)
        d["length_histogram"] = {int(k): int(v) for k, v in d.get("length_histogram", {}).items()}
        return cls(**d)


def summarize(groups: Iterable[Mapping[str, Any]]) -> ReleaseSummary:
    """Fold rows of (language, license_type, length_bin, files, bytes) — one aggregation — into a summary."""
    s = ReleaseSummary()
    for g in groups:
        lang = g["language"] or UNKNOWN_LANGUAGE_DIR
        entry = s.languages.setdefault(lang, {"files": 0, "bytes": 0})
        entry["files"] += g["files"]
        entry["bytes"] += g["bytes"]
        lt = g["license_type"] or "unknown"
        s.license_types[lt] = s.license_types.get(lt, 0) + g["files"]
        s.length_histogram[g["length_bin"]] = s.length_histogram.get(g["length_bin"], 0) + g["files"]
    s.languages = dict(sorted(s.languages.items(), key=lambda kv: (-kv[1]["bytes"], kv[0])))
    s.license_types = dict(sorted(s.license_types.items()))
    s.length_histogram = dict(sorted(s.length_histogram.items()))
    return s


def registry_date(optout: StageStats | None) -> str | None:
    """The opt-out registry date the ``optout`` stage recorded (``extra["registry_date"]``), if it ran."""
    if optout is None:
        return None
    value = optout.extra.get("registry_date")
    return str(value) if value else None


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    return next((label for bound, label in bounds if n < bound), "1B<n<10B")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


CITATION = """@article{lozhkov2024starcoder,
  title   = {StarCoder 2 and The Stack v2: The Next Generation},
  author  = {Lozhkov, Anton and Li, Raymond and Ben Allal, Loubna and others},
  journal = {arXiv preprint arXiv:2402.19173},
  year    = {2024}
}"""


def dataset_card(
    summary: ReleaseSummary,
    funnel: Sequence[StageStats],
    *,
    config_hash: str,
    registry: str | None,
    name: str = "stackv2",
) -> str:
    """The release's ``README.md``: a Hub card (YAML header with one config per language) and the numbers."""
    yaml_lines = [
        "---",
        "license: other",
        "language:",
        "- code",
        "multilinguality:",
        "- multilingual",
        f"pretty_name: {json.dumps(name)}",
        "size_categories:",
        f"- {json.dumps(_size_category(summary.files))}",
        "task_categories:",
        "- text-generation",
        "configs:",
        "- config_name: default",
        "  default: true",
        "  data_files:",
        "  - split: train",
        f"    path: {json.dumps(DATA_DIR + '/*/*.parquet')}",
    ]
    for lang in sorted(summary.languages):
        yaml_lines += [
            f"- config_name: {json.dumps(lang)}",
            "  data_files:",
            "  - split: train",
            f"    path: {json.dumps(f'{DATA_DIR}/{language_dir(lang)}/*.parquet')}",
        ]
    if summary.repo_shards:
        yaml_lines += [
            "- config_name: repos",
            "  data_files:",
            "  - split: train",
            f"    path: {json.dumps(REPOS_DIR + '/*.parquet')}",
        ]
    yaml_lines.append("---")

    lang_rows = [
        (lang, language_dir(lang), f"{v['files']:,}", f"{v['bytes']:,}", human_bytes(v["bytes"]))
        for lang, v in summary.languages.items()
    ]
    lic_rows = [(k, f"{v:,}", f"{100 * v / max(summary.files, 1):.1f} %") for k, v in summary.license_types.items()]
    funnel_rows = []
    for st in funnel:
        reasons = ", ".join(f"{r}: {n:,}" for r, n in sorted(st.rejected.items())) or "-"
        funnel_rows.append((st.stage, f"{st.rows_in:,}", f"{st.rows_out:,}", f"{st.rows_rejected:,}", reasons))
    optout = (
        f"Repositories whose owners opted out in the registry dated **{registry}** were removed before download."
        if registry
        else "No opt-out registry was applied to this build."
    )
    body = f"""
# {name}

A code dataset in the layout of [The Stack v2](https://huggingface.co/datasets/bigcode/the-stack-v2), rebuilt from
the Software Heritage archive by `stackv2` {__version__}: **{summary.files:,} files** ({human_bytes(summary.bytes)}
of UTF-8 text) from **{summary.repos:,} repositories** in **{len(summary.languages)} languages**.
Unlike the published id tables, every row carries its `content` (after PII redaction).

## Layout

- `{DATA_DIR}/<Language>/train-NNNNN-of-MMMMM.parquet` ({summary.shards} shard(s)): one row per file, the 26 columns of
  `bigcode/the-stack-v2` in their published order, plus `content`. Rows of unknown language are in
  `{DATA_DIR}/{UNKNOWN_LANGUAGE_DIR}/`.
- `{REPOS_DIR}/train-NNNNN-of-MMMMM.parquet` ({summary.repo_shards} shard(s)): one row per repository with its
  `files` (per-file fields of `the-stack-v2-train-*-ids` plus `content`) and `num_files`.
- `{MANIFEST}`: every shard's path, rows, bytes and sha256 (`stackv2 optout verify` and the release tools check it).

```python
from datasets import load_dataset
ds = load_dataset("path/to/this/folder", "Python", split="train", streaming=True)
```

## Languages

{_table(("language", "folder", "files", "bytes", "size"), lang_rows)}

## License types

{_table(("license_type", "files", "share"), lic_rows)}

## How the rows were selected

Every stage keeps the rows it does not pass on, with a reason; rows in = rows out + rows rejected.

{_table(("stage", "rows in", "rows out", "rejected", "by reason"), funnel_rows)}

## Opt-out

{optout}

## Reproduce

Run `stackv2 run --config <the run's config>` on the same SWH graph export and content store. The stages' config
hash of this release is `{config_hash}`; a rerun with the same inputs and config writes the same shard bytes
(check them against `{MANIFEST}`).

## Citation

```bibtex
{CITATION}
```
"""
    return "\n".join(yaml_lines) + "\n" + body
