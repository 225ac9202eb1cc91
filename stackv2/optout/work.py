"""The work folder's tables under opt-out: every table that names a repository, how ``apply`` purges it and how
``verify`` scans it (docs/optout.md).

A table is a folder ``<work>/<stage>/<name>`` of Parquet files. It names repositories when it has ``repo_name``
(file indexes, every stage's ``data`` and ``rejected``, ``near_dedup/clusters``, the shards row table, the
tokenize per-file table) or an ``origin`` URL (``extract/rejected``: a GitHub URL names ``owner/name``, as the
extract stage derives ``repo_name``), or when its rows are files of its stage's ``data`` by
``(directory_id, path)`` without a name of their own (``pii/spans``): those rows belong to whoever owns the
``data`` row they join.

Every folder and file is a ``stackv2.storage.Location``: the work folder may be local or on an object store.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stackv2.optout.registry import Matcher
from stackv2.stats import StageStats
from stackv2.storage import Location, parquet_file, read_schema, read_table
from stackv2.workdir import (
    DATA,
    OPTOUT_AUDIT,
    REJECTED,
    STATS,
    SUCCESS,
    ManifestError,
    committed_files,
    read_manifest,
)

#: The columns that tie a row without ``repo_name`` to its stage's ``data`` row.
FILE_KEY = ("directory_id", "path")
#: Columns naming a row's repository: ``repo_name`` (and ``github_id``), or the ``origin`` URL.
NAME_COLUMNS = ("repo_name", "github_id", "origin")
_GITHUB_ORIGIN = r"^https://github\.com/(?P<name>[^/]+/[^/]+?)(?:/|$)"
_SEP = "\x00"


def repo_names(t: pa.Table) -> pa.ChunkedArray | pa.Array:
    """Each row's ``owner/name``: its ``repo_name``, or the first two path segments of a GitHub ``origin``."""
    if "repo_name" in t.column_names:
        return t["repo_name"]
    return pc.struct_field(pc.extract_regex(t["origin"], _GITHUB_ORIGIN), "name")


def match_rows(t: pa.Table, matcher: Matcher) -> pa.ChunkedArray | pa.Array:
    """The request removing each row of a table with ``NAME_COLUMNS``, or null."""
    return matcher.match(repo_names(t), t["github_id"] if "github_id" in t.column_names else None)


def by_parts(loc: Location) -> list[str]:
    """Sort key: a path's parts in order, as ``pathlib`` sorts paths (``a/b`` before ``a-b``)."""
    return loc.path.split("/")


def table_files(table_dir: Location) -> list[Location]:
    """The Parquet files of a stage's table: those its stage's manifest lists (``stackv2.workdir.committed_files``);
    for a stage that has not completed (or wrote no manifest), its folder's non-hidden Parquet files."""
    try:
        return committed_files(table_dir)
    except (FileNotFoundError, ManifestError):
        found = table_dir.files(recursive=False)
        return [f for f in found if f.suffix == ".parquet" and not f.name.startswith(".")]


@dataclass(frozen=True)
class Table:
    folder: Location
    files: tuple[Location, ...]
    columns: tuple[str, ...]

    @property
    def named(self) -> bool:
        """Rows carry ``repo_name`` or ``origin`` (else they are tied to their stage's ``data`` by ``FILE_KEY``)."""
        return "repo_name" in self.columns or "origin" in self.columns


def work_tables(work: Location, exclude: Iterable[Location] = ()) -> list[Table]:
    """Every table of the work folder that names repositories, directly or through its stage's ``data``."""
    skip = list(exclude)
    out = []
    for folder in sorted((t for stage in work.folders() for t in stage.folders()), key=by_parts):
        if any(folder.is_relative_to(s) for s in skip):
            continue
        files = table_files(folder)
        if not files:
            continue
        columns = tuple(read_schema(files[0]).names)
        if {"repo_name", "origin"} & set(columns) or (set(FILE_KEY) <= set(columns) and folder.name != DATA):
            out.append(Table(folder, tuple(files), columns))
    return out


def _read(path: Location, columns: Iterable[str]) -> pa.Table:
    names = read_schema(path).names
    return read_table(path, columns=[c for c in columns if c in names])


def _keys(t: pa.Table) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(t["directory_id"], t["path"], _SEP)


def owned_keys(data: Table, matcher: Matcher) -> tuple[set[str], set[str]]:
    """(keys of the opted-out rows of a ``data`` table, keys of its other rows)."""
    mine, others = set(), set()
    for f in data.files:
        t = _read(f, ("repo_name", "github_id", *FILE_KEY))
        hit = pc.is_valid(matcher.match_table(t))
        keys = _keys(t)
        mine.update(keys.filter(hit).to_pylist())
        others.update(keys.filter(pc.invert(hit)).to_pylist())
    return mine, others


def _data_of(table: Table, tables: list[Table]) -> Table | None:
    return next((t for t in tables if t.folder == table.folder.parent / DATA and t.named), None)


def hits(table: Table, f: Location, matcher: Matcher, keys: set[str]) -> pa.ChunkedArray | pa.Array:
    """Per row of file ``f`` of ``table``: whether it belongs to an opted-out repository."""
    if table.named:
        return pc.is_valid(match_rows(_read(f, NAME_COLUMNS), matcher))
    return pc.is_in(_keys(_read(f, FILE_KEY)), value_set=pa.array(sorted(keys), pa.string()))


def _write_options(meta: pq.FileMetaData) -> dict[str, Any]:
    """Write a rewritten file like the original: codec, row-group size, and Spark's INT96 timestamps where the
    original has them (Spark cannot read the nanosecond timestamps pyarrow would write instead)."""
    if not meta.num_row_groups:
        return {"compression": "zstd"}
    first = meta.row_group(0)
    codec = first.column(0).compression.lower() if first.num_columns else "zstd"
    return {
        "compression": "none" if codec == "uncompressed" else codec,
        "row_group_size": max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)),
        "use_deprecated_int96_timestamps": any(
            meta.schema.column(i).physical_type == "INT96" for i in range(meta.num_columns)
        ),
    }


def write_like(path: Location, table: pa.Table, like: Location | None = None) -> Location:
    """Write ``table`` to ``path``'s temporary name with ``like``'s (default: ``path``'s) options; return it."""
    like = like if like is not None else path
    options = _write_options(parquet_file(like).metadata) if like.exists() else {"compression": "zstd"}
    tmp = path.temp()
    with tmp.open_output() as out:
        pq.write_table(table, out, **options)
    return tmp


def manifest_after(stage_dir: Location, replaced: dict[str, dict[Location, Location]]) -> dict[str, Any] | None:
    """The stage's manifest (``_SUCCESS``, JSON) once staged files have replaced committed ones, so the stage still
    checks after the change (docs/resume.md): ``replaced`` maps an output to {committed file: the staged file taking
    its place}. None when the stage has no manifest."""
    try:
        manifest = read_manifest(stage_dir)
    except ManifestError:
        return None
    if manifest is None:
        return None
    for output, files in replaced.items():
        if output in manifest.outputs:
            manifest.redescribe(output, {f.name: new for f, new in files.items()})
    return manifest.to_dict()


@dataclass
class WorkChange:
    """New files staged beside their originals, the stages' recounted stats and manifests (JSON files to write, by
    path), and rows purged per table."""

    renames: list[tuple[Location, Location]] = field(default_factory=list)
    stats: dict[Location, dict[str, Any]] = field(default_factory=dict)
    purged: dict[str, int] = field(default_factory=dict)


def recount(stats: StageStats, table: str, files: list[Location], purged: int) -> None:
    """Recount a stage's stats from one of its tables as it will be (``files``), so they keep adding up."""
    if table == DATA:
        stats.rows_out = sum(parquet_file(f).metadata.num_rows for f in files)
    elif table == REJECTED:
        reasons: Counter[str] = Counter()
        for f in files:
            reasons.update(read_table(f, columns=["reason"])["reason"].to_pylist())
        stats.rejected = dict(sorted(reasons.items()))
    stats.rows_in = stats.rows_out + stats.rows_rejected
    done = stats.extra.setdefault("optout_purged", {})
    done[table] = done.get(table, 0) + purged


def stage_purge(
    work: Location,
    matcher: Matcher,
    exclude: Iterable[Location],
    edits: dict[Location, Any] | None = None,
) -> WorkChange:
    """Stage the work folder's tables without their opted-out rows (new files beside the old, nothing replaced).

    ``edits``: table folder -> a function ``(file, table without its opted-out rows) -> new table`` for tables that
    change otherwise too (rows added by a promotion); it is called for every file of such a table.
    """
    edits = edits or {}
    tables = work_tables(work, exclude)
    change = WorkChange()
    per_stage: dict[Location, list[tuple[str, list[Location], int]]] = {}
    for table in tables:
        keys: set[str] = set()
        if not table.named:
            data = _data_of(table, tables)
            if data is None:
                continue
            mine, others = owned_keys(data, matcher)
            keys = mine - others
        n, new_files = 0, []
        for f in table.files:
            hit = hits(table, f, matcher, keys)
            k = pc.sum(hit.cast(pa.int64())).as_py() or 0
            edit = edits.get(table.folder)
            if not k and edit is None:
                new_files.append(f)
                continue
            t = read_table(f)
            new = t.filter(pc.invert(hit))
            if edit is not None:
                new = edit(f, new)
                if new.equals(t):
                    new_files.append(f)
                    continue
            n += k
            tmp = write_like(f, new)
            change.renames.append((tmp, f))
            new_files.append(tmp)
        if n or any(tmp != f for tmp, f in zip(new_files, table.files, strict=True)):
            if n:
                change.purged[table.folder.relative_to(work)] = n
            per_stage.setdefault(table.folder.parent, []).append((table.folder.name, new_files, n))
    for stage_dir, changed in per_stage.items():
        staged = {
            name: {f: new for f, new in zip(table_files(stage_dir / name), files, strict=True) if new != f}
            for name, files, _ in changed
        }
        manifest = manifest_after(stage_dir, staged)
        if manifest is not None:
            change.stats[stage_dir / SUCCESS] = manifest
        if not (stage_dir / STATS).exists():
            continue
        stats = StageStats.load(stage_dir / STATS)
        for name, files, n in changed:
            recount(stats, name, files, n)
        change.stats[stage_dir / STATS] = stats.to_dict()
    return change


# ----------------------------------------------------------------------------------------------------- scanning


@dataclass
class Leak:
    file: str
    repo_name: str
    request: str
    rows: int


def scan_table(table: Table, tables: list[Table], matcher: Matcher) -> Iterator[tuple[Location, int, list[Leak]]]:
    """Per file of ``table``: (file, rows, leaks)."""
    keys: dict[str, tuple[str, str]] = {}
    if not table.named:  # rows tied to their stage's data: whose row is it?
        data = _data_of(table, tables)
        if data is not None:
            for f in data.files:
                t = _read(f, ("repo_name", "github_id", *FILE_KEY))
                req = matcher.match_table(t)
                hit = pc.is_valid(req)
                for k, repo, r in zip(
                    _keys(t).filter(hit).to_pylist(),
                    t["repo_name"].filter(hit).to_pylist(),
                    req.filter(hit).to_pylist(),
                    strict=True,
                ):
                    keys[k] = (repo, r)
    for f in table.files:
        if table.named:
            t = _read(f, NAME_COLUMNS)
            req = match_rows(t, matcher)
            hit = pc.is_valid(req)
            found = Counter(zip(repo_names(t).filter(hit).to_pylist(), req.filter(hit).to_pylist(), strict=True))
        else:
            t = _read(f, FILE_KEY)
            found = Counter(keys[k] for k in _keys(t).to_pylist() if k in keys)
        yield f, t.num_rows, [Leak(str(f), repo, r, n) for (repo, r), n in sorted(found.items())]


#: ``owner/name`` in free text (JSON values, cards): GitHub's characters for logins and repository names.
_REPO_TEXT = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z0-9][A-Za-z0-9_-]{0,38})/([A-Za-z0-9._-]{1,100})")


def text_files(work: Location, exclude: Iterable[Location]) -> list[Location]:
    """JSON, JSONL, YAML and Markdown files the run wrote (stats, reports, manifests, cards), but the audits."""
    skip = [*exclude, work / OPTOUT_AUDIT]
    return sorted(
        (
            f
            for f in work.files()
            if f.suffix in (".json", ".jsonl", ".yaml", ".md", ".html") and not any(f.is_relative_to(s) for s in skip)
        ),
        key=by_parts,
    )


def scan_text(path: Location, matcher: Matcher) -> list[Leak]:
    """``owner/name`` strings of opted-out repositories in a text file (a report listing repositories)."""
    text = path.read_bytes().decode(errors="replace")
    if path.suffix == ".json":
        with contextlib.suppress(json.JSONDecodeError):  # JSON may escape "/" as "\/": read the strings back
            text = "\n".join(_strings(json.loads(text)))
    names = sorted({f"{a}/{b}".rstrip(".") for a, b in _REPO_TEXT.findall(text)})
    if not names:
        return []
    req = matcher.match(pa.array(names, pa.string()))
    return [Leak(str(path), n, r, 1) for n, r in zip(names, req.to_pylist(), strict=True) if r is not None]


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
