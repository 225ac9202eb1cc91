"""Build an SWH-format archive: graph export ORC tables + gzip content objects (``stackv2 archive build``):
``graph`` (the builder and the tables), ``git`` and ``installed`` (the two sources).

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

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stackv2.swh.archive.git import add_git_repo
from stackv2.swh.archive.graph import ArchiveError, GraphBuilder
from stackv2.swh.archive.installed import add_distribution, installed_distributions
from stackv2.swh.config import ArchiveConfig


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
