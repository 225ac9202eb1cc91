"""The graph builder: swh-model objects in, the export's ORC tables and a content store out."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.orc as orc
from swh.model.model import (
    Content,
    Directory,
    DirectoryEntry,
    Origin,
    Person,
    Release,
    Revision,
    SkippedContent,
    Snapshot,
    TimestampWithTimezone,
)

from stackv2.atomic import atomic_path
from stackv2.schema import GRAPH_TABLES
from stackv2.swh.config import ArchiveConfig
from stackv2.swh.content_store import ContentStore

MIB = 1024 * 1024
DIR_PERMS, FILE_PERMS, EXEC_PERMS, LINK_PERMS, REV_PERMS = 0o40000, 0o100644, 0o100755, 0o120000, 0o160000


class ArchiveError(ValueError):
    """A source that cannot be archived (not a git repository, unreadable object ...)."""


def _utc(ts: TimestampWithTimezone | None) -> dt.datetime | None:
    if ts is None:
        return None
    t = dt.datetime.fromtimestamp(ts.timestamp.seconds, dt.UTC) + dt.timedelta(microseconds=ts.timestamp.microseconds)
    return t.replace(tzinfo=None)


@dataclass
class GraphBuilder:
    """Collects graph objects (deduplicated by id) and writes them as the export's ORC tables."""

    store: ContentStore
    cfg: ArchiveConfig = field(default_factory=ArchiveConfig)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t: [] for t in GRAPH_TABLES})
    _seen: dict[str, set[Any]] = field(default_factory=lambda: {t: set() for t in GRAPH_TABLES})

    def _new(self, table: str, key: Any) -> bool:
        if key in self._seen[table]:
            return False
        self._seen[table].add(key)
        return True

    def _person(self, p: Person | None) -> bytes | None:
        if p is None:
            return None
        return hashlib.sha256(p.fullname).digest() if self.cfg.pseudonymize else p.fullname

    @property
    def visit_date(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.cfg.visit_date)

    def add_content(self, data: bytes) -> bytes:
        """Archive one blob; returns its sha1_git. Too-large blobs are listed but not stored."""
        too_large = len(data) >= self.cfg.max_content_bytes
        obj = SkippedContent.from_data(data, reason="Content too large") if too_large else Content.from_data(data)
        if self._new("content", obj.sha1_git):
            hashes = {k: getattr(obj, k).hex() for k in ("sha1", "sha1_git", "sha256", "blake2s256")}
            if too_large:
                self.rows["skipped_content"].append(
                    {**hashes, "length": obj.length, "status": "absent", "reason": obj.reason}
                )
            else:
                self.store.put(hashes["sha1"], data)
                self.rows["content"].append({**hashes, "length": obj.length, "status": "visible", "data": None})
        return obj.sha1_git

    def add_directory(self, d: Directory) -> bytes:
        if self._new("directory", d.id):
            self.rows["directory"].append({"id": d.id.hex(), "raw_manifest": d.raw_manifest})
            for e in d.entries:
                self.rows["directory_entry"].append(
                    {
                        "directory_id": d.id.hex(),
                        "name": e.name,
                        "type": e.type,
                        "target": e.target.hex(),
                        "perms": e.perms,
                    }
                )
        return d.id

    def add_revision(self, r: Revision) -> bytes:
        if self._new("revision", r.id):
            self.rows["revision"].append(
                {
                    "id": r.id.hex(),
                    "message": r.message,
                    "author": self._person(r.author),
                    "date": _utc(r.date),
                    "date_offset": r.date.offset_minutes() if r.date else None,
                    "date_raw_offset_bytes": r.date.offset_bytes if r.date else None,
                    "committer": self._person(r.committer),
                    "committer_date": _utc(r.committer_date),
                    "committer_offset": r.committer_date.offset_minutes() if r.committer_date else None,
                    "committer_date_raw_offset_bytes": r.committer_date.offset_bytes if r.committer_date else None,
                    "directory": r.directory.hex(),
                    "type": r.type.value,
                    "raw_manifest": r.raw_manifest,
                }
            )
            for rank, parent in enumerate(r.parents):
                self.rows["revision_history"].append(
                    {"id": r.id.hex(), "parent_id": parent.hex(), "parent_rank": rank}
                )
            for key, value in r.extra_headers:
                self.rows["revision_extra_headers"].append({"id": r.id.hex(), "key": key, "value": value})
        return r.id

    def add_release(self, r: Release) -> bytes:
        if self._new("release", r.id):
            self.rows["release"].append(
                {
                    "id": r.id.hex(),
                    "name": r.name,
                    "message": r.message,
                    "target": r.target.hex() if r.target else None,
                    "target_type": r.target_type.value,
                    "author": self._person(r.author),
                    "date": _utc(r.date),
                    "date_offset": r.date.offset_minutes() if r.date else None,
                    "date_raw_offset_bytes": r.date.offset_bytes if r.date else None,
                    "raw_manifest": r.raw_manifest,
                }
            )
        return r.id

    def add_snapshot(self, s: Snapshot) -> bytes:
        if self._new("snapshot", s.id):
            self.rows["snapshot"].append({"id": s.id.hex()})
            for name, b in sorted(s.branches.items()):
                if b is not None:  # dangling branches have no row in the export
                    self.rows["snapshot_branch"].append(
                        {
                            "snapshot_id": s.id.hex(),
                            "name": name,
                            "target": b.target.hex(),
                            "target_type": b.target_type.value,
                        }
                    )
        return s.id

    def add_visit(self, url: str, snapshot_id: bytes, visit_type: str = "git") -> None:
        """One origin with one full visit pointing at ``snapshot_id``."""
        origin = Origin(url=url)
        if not self._new("origin", url):
            raise ArchiveError(f"origin {url} added twice")
        self.rows["origin"].append({"id": origin.id.hex(), "url": url})
        date = self.visit_date.astimezone(dt.UTC).replace(tzinfo=None)
        self.rows["origin_visit"].append({"origin": url, "visit": 1, "date": date, "type": visit_type})
        self.rows["origin_visit_status"].append(
            {
                "origin": url,
                "visit": 1,
                "date": date + dt.timedelta(seconds=2),
                "status": "full",
                "snapshot": snapshot_id.hex(),
                "type": visit_type,
            }
        )

    def write(self, out: Path) -> dict[str, int]:
        """Write every table to ``out/<table>/<table>-all.orc`` (sorted rows: rebuilds are byte-identical)."""
        counts = {}
        for table, schema in GRAPH_TABLES.items():
            rows = sorted(self.rows[table], key=lambda r: tuple(repr(r[c]) for c in schema.names))
            with atomic_path(out / table / f"{table}-all.orc") as tmp:
                orc.write_table(pa.Table.from_pylist(rows, schema=schema), str(tmp), compression="zstd")
            counts[table] = len(rows)
        return counts


# --- git repositories -------------------------------------------------------------------------------------------


def add_tree(builder: GraphBuilder, files: dict[tuple[str, ...], bytes]) -> bytes:
    """Build (bottom-up) the directory holding ``files`` (path tuple -> id of a blob); returns its id. Names are
    stored as the file system's bytes (``os.fsencode``: a name that is not UTF-8 keeps its bytes)."""
    subdirs: dict[str, dict[tuple[str, ...], bytes]] = {}
    entries = []
    for parts, target in files.items():
        if len(parts) == 1:
            entries.append(DirectoryEntry(name=os.fsencode(parts[0]), type="file", target=target, perms=FILE_PERMS))
        else:
            subdirs.setdefault(parts[0], {})[parts[1:]] = target
    for name, sub in subdirs.items():
        entries.append(
            DirectoryEntry(name=os.fsencode(name), type="dir", target=add_tree(builder, sub), perms=DIR_PERMS)
        )
    return builder.add_directory(Directory(entries=tuple(entries)))
