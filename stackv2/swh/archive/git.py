"""Git repositories into the graph, read with the git CLI (ids equal git's own: a commit or tree that swh-model
would hash differently keeps its raw git manifest, exactly as SWH's git loader does)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from swh.model.model import (
    Directory,
    DirectoryEntry,
    Person,
    Release,
    ReleaseTargetType,
    Revision,
    RevisionType,
    Snapshot,
    SnapshotBranch,
    SnapshotTargetType,
    Timestamp,
    TimestampWithTimezone,
)

from stackv2.swh.archive.graph import (
    DIR_PERMS,
    REV_PERMS,
    ArchiveError,
    GraphBuilder,
)


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


GITHUB_URL = re.compile(r"github\.com[:/]+([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def origin_url_of_repo(repo: Path) -> str:
    """``https://github.com/owner/name`` from the ``origin`` remote when it is on GitHub, else a file:// URL."""
    try:
        remote = _git(repo, "config", "--get", "remote.origin.url").decode().strip()
    except ArchiveError:
        remote = ""
    m = GITHUB_URL.search(remote)
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
    # Ref names are bytes, as git stores them: kept as bytes, never decoded (so are tree entry names, git_directory).
    listing = _git(repo, "for-each-ref", "--format=%(objectname) %(objecttype) %(refname)")
    refs = [
        (sha.decode(), kind.decode(), ref) for sha, kind, ref in (line.split(b" ", 2) for line in listing.splitlines())
    ]
    if not refs:
        raise ArchiveError(f"{repo} has no commits (no branches or tags to archive)")
    shas = set(_git(repo, "rev-list", "--objects", "--no-object-names", "--all").decode().split())
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
        ref: SnapshotBranch(target=bytes.fromhex(sha), target_type=kinds[kind]) for sha, kind, ref in refs
    }
    head = subprocess.run(["git", "-C", str(repo), "symbolic-ref", "-q", "HEAD"], capture_output=True, check=False)
    if head.returncode == 0 and head.stdout.strip() in branches:
        branches[b"HEAD"] = SnapshotBranch(target=head.stdout.strip(), target_type=SnapshotTargetType.ALIAS)
    else:
        detached = _git(repo, "rev-parse", "HEAD").decode().strip()
        branches[b"HEAD"] = SnapshotBranch(target=bytes.fromhex(detached), target_type=SnapshotTargetType.REVISION)
    url = origin_url or origin_url_of_repo(repo)
    builder.add_visit(url, builder.add_snapshot(Snapshot(branches=branches)), "git")
    return url


# --- installed Python distributions -----------------------------------------------------------------------------
