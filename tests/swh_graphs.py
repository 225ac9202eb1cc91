"""Small SWH graphs for extract's tests: a commit per tree, snapshots naming commits."""

from __future__ import annotations

import datetime as dt

from swh.model.model import (
    Person,
    Revision,
    RevisionType,
    Snapshot,
    SnapshotBranch,
    SnapshotTargetType,
    TimestampWithTimezone,
)

from stackv2.swh.archive.graph import GraphBuilder, add_tree

WHEN = TimestampWithTimezone.from_datetime(dt.datetime(2023, 1, 1, tzinfo=dt.UTC))
ME = Person.from_fullname(b"someone <someone@example.org>")


def commit(b: GraphBuilder, files: dict[str, bytes], message: str) -> Revision:
    """A revision of the tree holding ``files`` (path -> bytes), added to ``b``."""
    tree = add_tree(b, {tuple(p.split("/")): b.add_content(data) for p, data in files.items()})
    rev = Revision(
        message=message.encode(),
        author=ME,
        committer=ME,
        date=WHEN,
        committer_date=WHEN,
        type=RevisionType.GIT,
        directory=tree,
        synthetic=True,
    )
    b.add_revision(rev)
    return rev


def snapshot(b: GraphBuilder, branches: dict[bytes, bytes]) -> bytes:
    """The id of a snapshot of ``branches`` (name -> revision id), added to ``b``."""
    targets = {
        name: SnapshotBranch(target=rev, target_type=SnapshotTargetType.REVISION) for name, rev in branches.items()
    }
    return b.add_snapshot(Snapshot(branches=targets))
