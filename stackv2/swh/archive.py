"""Build an SWH-format archive: graph export ORC tables + gzip content objects (``stackv2 archive build``).

Two sources become origins, visits, snapshots, revisions, trees and blobs, every id computed by ``swh-model``:

* git repositories, read with the git CLI (ids equal git's own: a commit or tree that swh-model would hash
  differently keeps its raw git manifest, exactly as SWH's git loader does);
* the installed Python distributions: each one an origin named like its GitHub repository, its files as the
  tree and its license files at the root — the embedded default corpus of ``stackv2 demo``.

The ORC tables have the names, columns and types of the real export (``schema.GRAPH_TABLES``); person fields
are pseudonymized (sha256 of the full name) as in the public export. Contents over the size cap are listed in
``skipped_content`` instead of ``content``, as SWH does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata as im
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
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
    ReleaseTargetType,
    Revision,
    RevisionType,
    SkippedContent,
    Snapshot,
    SnapshotBranch,
    SnapshotTargetType,
    Timestamp,
    TimestampWithTimezone,
)

from stackv2.schema import GRAPH_TABLES
from stackv2.swh.content_store import ContentStore

MIB = 1024 * 1024
DIR_PERMS, FILE_PERMS, EXEC_PERMS, LINK_PERMS, REV_PERMS = 0o40000, 0o100644, 0o100755, 0o120000, 0o160000


class ArchiveError(ValueError):
    """A source that cannot be archived (not a git repository, unreadable object ...)."""


@dataclass(frozen=True)
class ArchiveConfig:
    #: Contents of this many bytes or more go to ``skipped_content`` (SWH skips very large blobs too).
    max_content_bytes: int = 100 * MIB
    #: Date recorded for every visit (and for synthetic revisions), so rebuilding is byte-identical.
    visit_date: str = "2023-09-06T00:00:00+00:00"
    #: Replace person fields by sha256(fullname), as the public export does.
    pseudonymize: bool = True


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
            folder = out / table
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{table}-all.orc.tmp"
            orc.write_table(pa.Table.from_pylist(rows, schema=schema), str(tmp), compression="zstd")
            os.replace(tmp, folder / f"{table}-all.orc")
            counts[table] = len(rows)
        return counts


# --- git repositories -------------------------------------------------------------------------------------------


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ArchiveError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _cat_batch(repo: Path, shas: list[str]) -> Iterator[tuple[str, str, bytes]]:
    """Stream raw objects (sha, type, body) from one ``git cat-file --batch`` process."""
    out = _git(repo, "cat-file", "--batch", stdin=("\n".join(shas) + "\n").encode())
    pos = 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        sha, kind, size = out[pos:nl].decode().split()
        start = nl + 1
        yield sha, kind, out[start : start + int(size)]
        pos = start + int(size) + 1


def _parse_date(raw: bytes) -> TimestampWithTimezone:
    seconds, offset = raw.rsplit(b" ", 1)
    return TimestampWithTimezone(timestamp=Timestamp(seconds=int(seconds), microseconds=0), offset_bytes=offset)


def _person_date(value: bytes) -> tuple[Person, TimestampWithTimezone]:
    fullname, _, date = value.rpartition(b"> ")
    return Person.from_fullname(fullname + b">"), _parse_date(date)


def _headers(body: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Split a git commit/tag into ordered headers (continuation lines joined) and message."""
    head, _, message = body.partition(b"\n\n")
    headers: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\n"):
        if line.startswith(b" ") and headers:
            k, v = headers[-1]
            headers[-1] = (k, v + b"\n" + line[1:])
        else:
            k, _, v = line.partition(b" ")
            headers.append((k, v))
    return headers, message


def _git_header(kind: str, body: bytes) -> bytes:
    return f"{kind} {len(body)}\0".encode() + body


def git_revision(sha: str, body: bytes) -> Revision:
    headers, message = _headers(body)
    parents, extra, tree = [], [], b""
    author = committer = None
    date = committer_date = None
    for k, v in headers:
        if k == b"tree":
            tree = bytes.fromhex(v.decode())
        elif k == b"parent":
            parents.append(bytes.fromhex(v.decode()))
        elif k == b"author" and author is None:
            author, date = _person_date(v)
        elif k == b"committer" and committer is None:
            committer, committer_date = _person_date(v)
        else:
            extra.append((k, v))
    fields: dict[str, Any] = {
        "message": message,
        "author": author,
        "committer": committer,
        "date": date,
        "committer_date": committer_date,
        "type": RevisionType.GIT,
        "directory": tree,
        "synthetic": False,
        "parents": tuple(parents),
        "extra_headers": tuple(extra),
    }
    rev = Revision(**fields)
    if rev.id.hex() != sha:  # formatting swh-model would normalize: keep git's bytes, as SWH's git loader does
        rev = Revision(**fields, raw_manifest=_git_header("commit", body))
    return rev


def git_directory(sha: str, body: bytes) -> Directory:
    entries, pos = [], 0
    while pos < len(body):
        sp, nul = body.index(b" ", pos), body.index(b"\0", pos)
        mode, name, target = int(body[pos:sp], 8), body[sp + 1 : nul], body[nul + 1 : nul + 21]
        kind = "dir" if mode == DIR_PERMS else "rev" if mode == REV_PERMS else "file"
        entries.append(DirectoryEntry(name=name, type=kind, target=target, perms=mode))
        pos = nul + 21
    d = Directory(entries=tuple(entries))
    if d.id.hex() != sha:
        d = Directory(entries=tuple(entries), raw_manifest=_git_header("tree", body))
    return d


def git_release(sha: str, body: bytes) -> Release:
    headers, message = _headers(body)
    h = dict(headers)
    author = date = None
    if b"tagger" in h:
        author, date = _person_date(h[b"tagger"])
    kinds = {b"commit": "revision", b"tree": "directory", b"blob": "content", b"tag": "release"}
    rel = Release(
        name=h[b"tag"],
        message=message,
        target=bytes.fromhex(h[b"object"].decode()),
        target_type=ReleaseTargetType(kinds[h[b"type"]]),
        synthetic=False,
        author=author,
        date=date,
    )
    if rel.id.hex() != sha:
        rel = Release(
            name=rel.name,
            message=message,
            target=rel.target,
            target_type=rel.target_type,
            synthetic=False,
            author=author,
            date=date,
            raw_manifest=_git_header("tag", body),
        )
    return rel


_GITHUB_URL = re.compile(r"github\.com[:/]+([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def origin_url_of_repo(repo: Path) -> str:
    """``https://github.com/owner/name`` from the ``origin`` remote when it is on GitHub, else a file:// URL."""
    try:
        remote = _git(repo, "config", "--get", "remote.origin.url").decode().strip()
    except ArchiveError:
        remote = ""
    m = _GITHUB_URL.search(remote)
    return f"https://github.com/{m.group(1)}/{m.group(2)}" if m else repo.resolve().as_uri()


def add_git_repo(builder: GraphBuilder, repo: Path, origin_url: str | None = None) -> str:
    """Archive every object reachable from the refs of ``repo`` and one visit of it; returns the origin URL."""
    repo = Path(repo)
    if not repo.is_dir():
        raise ArchiveError(f"{repo} is not a directory")
    try:
        _git(repo, "rev-parse", "--git-dir")
    except ArchiveError:
        raise ArchiveError(f"{repo} is not a git repository (git rev-parse --git-dir failed)") from None
    listing = _git(repo, "for-each-ref", "--format=%(objectname) %(objecttype) %(refname)").decode()
    refs = [line.split(" ", 2) for line in listing.splitlines()]
    objects = _git(repo, "rev-list", "--objects", "--all").decode().splitlines() if refs else []
    shas = {line.split(" ", 1)[0] for line in objects if line}
    shas |= {sha for sha, kind, _ in refs if kind == "tag"}
    builders = {
        "blob": lambda s, b: builder.add_content(b),
        "tree": lambda s, b: builder.add_directory(git_directory(s, b)),
        "commit": lambda s, b: builder.add_revision(git_revision(s, b)),
        "tag": lambda s, b: builder.add_release(git_release(s, b)),
    }
    for sha, kind, body in _cat_batch(repo, sorted(shas)):
        builders[kind](sha, body)
    kinds = {
        "commit": SnapshotTargetType.REVISION,
        "tag": SnapshotTargetType.RELEASE,
        "tree": SnapshotTargetType.DIRECTORY,
        "blob": SnapshotTargetType.CONTENT,
    }
    branches: dict[bytes, SnapshotBranch | None] = {
        ref.encode(): SnapshotBranch(target=bytes.fromhex(sha), target_type=kinds[kind]) for sha, kind, ref in refs
    }
    head = subprocess.run(["git", "-C", str(repo), "symbolic-ref", "-q", "HEAD"], capture_output=True, check=False)
    if head.returncode == 0 and head.stdout.strip() in branches:
        branches[b"HEAD"] = SnapshotBranch(target=head.stdout.strip(), target_type=SnapshotTargetType.ALIAS)
    elif refs:
        detached = _git(repo, "rev-parse", "HEAD").decode().strip()
        branches[b"HEAD"] = SnapshotBranch(target=bytes.fromhex(detached), target_type=SnapshotTargetType.REVISION)
    url = origin_url or origin_url_of_repo(repo)
    builder.add_visit(url, builder.add_snapshot(Snapshot(branches=branches)), "git")
    return url


# --- installed Python distributions -----------------------------------------------------------------------------

_LICENSE_NAME = re.compile(r"^(licen[cs]e|copying|notice|authors)", re.IGNORECASE)


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str
    origin_url: str
    #: Repository path ("/"-separated, no leading slash) -> file on disk.
    files: dict[str, Path]
    author: str


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _github_url(meta: im.PackageMetadata) -> str | None:
    urls = [v.split(",", 1)[-1].strip() for v in meta.get_all("Project-URL") or []]
    urls += [meta.get("Home-page") or ""]
    for u in urls:
        m = _GITHUB_URL.search(u.rstrip("/").split("#")[0]) if "github.com" in u else None
        if m and m.group(2) not in ("issues", "tree", "blob"):
            return f"https://github.com/{m.group(1)}/{m.group(2)}"
    return None


def _dist_files(dist: im.Distribution, max_files: int) -> dict[str, Path]:
    """The distribution's own files as a repository tree: code as installed, license files at the root."""
    files: dict[str, Path] = {}
    for f in dist.files or []:
        parts = f.parts
        if not parts or ".." in parts or "__pycache__" in parts or f.suffix in (".pyc", ".pyo"):
            continue
        if parts[0].endswith(".dist-info"):
            rest = parts[1:]
            if rest and rest[0] == "licenses":
                rest = rest[1:]
            if not rest or not _LICENSE_NAME.match(rest[-1]):
                continue
            repo_path = "/".join(rest)
        else:
            repo_path = "/".join(parts)
        local = Path(dist.locate_file(f))
        if local.is_file() and not local.is_symlink():
            files.setdefault(repo_path, local)
    return dict(sorted(files.items())[:max_files])


def installed_distributions(
    max_repos: int | None = None,
    max_files_per_repo: int = 10_000,
    include: Iterable[str] = (),
    paths: list[str] | None = None,
) -> list[Distribution]:
    """Installed distributions in a deterministic order: ``include`` first (in order), then by name."""
    by_name: dict[str, im.Distribution] = {}
    for d in im.distributions(path=paths) if paths else im.distributions():
        name = d.metadata.get("Name")
        if name and d.files:
            by_name.setdefault(_canonical(name), d)
    wanted = [_canonical(n) for n in include]
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise ArchiveError(f"distribution(s) {missing} are not installed")
    order = wanted + sorted(n for n in by_name if n not in wanted)
    result, urls = [], set()
    for key in order:
        if max_repos is not None and len(result) >= max_repos:
            break
        d = by_name[key]
        files = _dist_files(d, max_files_per_repo)
        if not files:
            continue
        url = _github_url(d.metadata) or f"https://github.com/pypi/{key}"
        if url.lower() in urls:
            url = f"https://github.com/pypi/{key}"
        urls.add(url.lower())
        author = d.metadata.get("Author-email") or d.metadata.get("Author") or d.metadata.get("Maintainer") or key
        result.append(Distribution(d.metadata["Name"], d.version, url, files, author))
    return result


def _tree(builder: GraphBuilder, files: dict[tuple[str, ...], bytes]) -> bytes:
    """Build (bottom-up) the directory holding ``files`` (path tuple -> id of a blob); returns its id."""
    subdirs: dict[str, dict[tuple[str, ...], bytes]] = {}
    entries = []
    for parts, target in files.items():
        if len(parts) == 1:
            entries.append(DirectoryEntry(name=parts[0].encode(), type="file", target=target, perms=FILE_PERMS))
        else:
            subdirs.setdefault(parts[0], {})[parts[1:]] = target
    for name, sub in subdirs.items():
        entries.append(DirectoryEntry(name=name.encode(), type="dir", target=_tree(builder, sub), perms=DIR_PERMS))
    return builder.add_directory(Directory(entries=tuple(entries)))


def add_distribution(builder: GraphBuilder, dist: Distribution) -> str:
    """Archive one installed distribution as a one-commit repository with ``HEAD -> refs/heads/main``."""
    blobs = {tuple(p.split("/")): builder.add_content(local.read_bytes()) for p, local in dist.files.items()}
    person = Person.from_fullname(dist.author.encode())
    when = TimestampWithTimezone.from_datetime(builder.visit_date)
    rev = Revision(
        message=f"{dist.name} {dist.version}\n".encode(),
        author=person,
        committer=person,
        date=when,
        committer_date=when,
        type=RevisionType.GIT,
        directory=_tree(builder, blobs),
        synthetic=True,
    )
    builder.add_revision(rev)
    snapshot = Snapshot(
        branches={
            b"HEAD": SnapshotBranch(target=b"refs/heads/main", target_type=SnapshotTargetType.ALIAS),
            b"refs/heads/main": SnapshotBranch(target=rev.id, target_type=SnapshotTargetType.REVISION),
        }
    )
    builder.add_visit(dist.origin_url, builder.add_snapshot(snapshot), "git")
    return dist.origin_url


def build_archive(
    out: Path,
    content_store: str | None = None,
    *,
    cfg: ArchiveConfig | None = None,
    git_repos: Iterable[Path] = (),
    installed: bool = False,
    max_repos: int | None = None,
    max_files_per_repo: int = 10_000,
    include: Iterable[str] = (),
    origin_url: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Archive git repositories and/or installed distributions; ORC tables go to ``out/orc``.

    The content store defaults to ``out`` itself (objects at ``out/content/<sha1>``).
    """
    from tqdm import tqdm

    from stackv2.swh.content_store import open_store

    git_repos = list(git_repos)
    if origin_url and len(git_repos) != 1:
        raise ArchiveError("--origin-url needs exactly one git repository")
    out.mkdir(parents=True, exist_ok=True)
    builder = GraphBuilder(open_store(content_store or str(out)), cfg or ArchiveConfig())
    origins = [add_git_repo(builder, repo, origin_url) for repo in git_repos]
    if installed:
        dists = installed_distributions(max_repos, max_files_per_repo, include)
        for dist in tqdm(dists, desc="archiving distributions", unit="repo", disable=not progress):
            origins.append(add_distribution(builder, dist))
    counts = builder.write(out / "orc")
    return {
        "origins": len(origins),
        "contents": counts["content"],
        "skipped_contents": counts["skipped_content"],
        "content_bytes": sum(r["length"] for r in builder.rows["content"]),
        "tables": counts,
        "graph": str(out / "orc"),
        "content_store": content_store or str(out),
    }
