"""The installed Python distributions into the graph: each one an origin named like its GitHub repository, its
files as the tree and its license files at the root (the embedded default corpus of ``stackv2 demo``)."""

from __future__ import annotations

import importlib.metadata as im
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from swh.model.model import (
    Person,
    Revision,
    RevisionType,
    Snapshot,
    SnapshotBranch,
    SnapshotTargetType,
    TimestampWithTimezone,
)

from stackv2.swh.archive.git import GITHUB_URL
from stackv2.swh.archive.graph import (
    ArchiveError,
    GraphBuilder,
    add_tree,
)

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
        m = GITHUB_URL.search(u.rstrip("/").split("#")[0]) if "github.com" in u else None
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
        directory=add_tree(builder, blobs),
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
