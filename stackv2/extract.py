"""The decisions of stage ``extract`` that are not Spark: its reject reasons and its root-tree ranking (docs/spec.md
§1.3-§1.5).

Repositories (rows with a null ``path``) are rejected with the first six, tree entries with the rest.

Names are bytes in the archive (``directory_entry.name``, ``snapshot_branch.name``), as git stores them. Paths are
joined as bytes and decoded as strict UTF-8 once, per file: a file whose path does not decode is rejected
``undecodable_name``, its rejected row showing the path with U+FFFD for each bad sequence (what BigCode's Spark 3
``decode`` put in its released path). Branch names are compared as bytes with the names sought, so an
undecodable one is never chosen and never fails the stage (docs/fidelity.md).
"""

#: No visit of the origin with status ``full`` (nothing complete was archived).
NO_FULL_VISIT = "no_full_visit"
#: The snapshot has none of the default branches tried (GitHub's, then ``extract.fallback_branches``).
NO_DEFAULT_BRANCH = "no_default_branch"
#: The chosen head is not a git revision the graph holds.
MISSING_REVISION = "missing_revision"
#: Another origin has the same head revision: one is kept (latest revision date, then branch name, then origin).
DUPLICATE_REVISION = "duplicate_revision"
#: Another repository has the same root directory and ranks higher (docs/spec.md §1.3).
DUPLICATE_DIRECTORY = "duplicate_directory"
#: A ``--swhids`` root the graph does not hold.
UNRESOLVED_SWHID = "unresolved_swhid"
#: A tree entry pointing at a revision (a git submodule): its files belong to another repository.
SUBMODULE = "submodule"
#: A symbolic link (git mode 120000, ``directory_entry.perms``): its blob is the target path, not a file's content.
SYMLINK = "symlink"
#: The file's path (any of its names) is not valid UTF-8.
UNDECODABLE_NAME = "undecodable_name"
#: Another entry of the same directory has the same name (SWH archives such malformed trees as they are): the
#: first by (type, target) is kept, so a (directory_id, path) never stands for two rows.
DUPLICATE_NAME = "duplicate_name"
#: SWH listed the blob but did not archive its bytes (``skipped_content``).
SKIPPED_CONTENT = "skipped_content"
#: A file entry whose blob is in neither ``content`` nor ``skipped_content``.
MISSING_CONTENT = "missing_content"
#: Deeper than ``extract.max_depth`` levels.
TOO_DEEP = "too_deep"
#: A directory reached by more (root, path) pairs than ``extract.max_paths_per_directory`` at one level.
SKEW_GUARD = "skew_guard"

#: One repository per root directory (docs/spec.md §1.3): a GitHub license first (any: BigCode sorted the SPDX ids),
#: stars, forks, the earliest revision, GitHub id and visit; the URL breaks the remaining ties.
ROOT_ORDER: tuple[tuple[str, bool], ...] = (
    ("gha_license_id", False),
    ("star_events_count", True),
    ("fork_events_count", True),
    ("revision_date", False),
    ("github_id", False),
    ("visit_date", False),
    ("repo_url", False),
)
#: The columns BigCode's ascending sort put nulls first in (Spark's default for ``asc``).
ROOT_NULLS_FIRST = ("revision_date", "github_id", "visit_date")
