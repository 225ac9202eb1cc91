"""Which row of a group is kept: the orderings of docs/spec.md §6.1 (exact) and §6.2 (near), written once as data.

Each ordering is a tuple of ``(column, descending)``; nulls always sort last; the first row wins. The trailing
columns are the stable key that breaks every remaining tie, so the winner never depends on arrival order.
``pipelines/stages/dedup.py`` turns them into Spark sort expressions.
"""

from __future__ import annotations

#: Near-dedup license preference: lower index wins, null or unknown after all of these.
LICENSE_ORDER = ("permissive", "no_license", "non_permissive")
#: GitHub's "license present but not recognised" value; not a permissive GitHub license.
NOASSERTION = "NOASSERTION"

#: Derived column: the repository's GitHub license is in the permissive whitelist (null without GitHub license).
#: By the license decision function (docs/spec.md §3.3), a GitHub license other than NOASSERTION makes ``license_type``
#: "permissive" exactly when it is whitelisted, so this needs no copy of the whitelist.
GH_PERMISSIVE = "_gh_permissive"
#: Derived column: index of ``license_type`` in ``LICENSE_ORDER`` (null when absent).
LICENSE_RANK = "_license_rank"

#: Spec §6.1, ``get_license_types.py``: one row per ``blob_id``.
EXACT_ORDER: tuple[tuple[str, bool], ...] = (
    (GH_PERMISSIVE, True),
    ("star_events_count", True),
    ("fork_events_count", True),
    ("revision_date", True),
    ("visit_date", True),
    ("repo_name", False),
    ("path", False),
)

#: Spec §6.2, ``intra_dedup.py --rank``: one representative per near-duplicate cluster.
NEAR_ORDER: tuple[tuple[str, bool], ...] = (
    (LICENSE_RANK, False),
    ("star_events_count", True),
    ("fork_events_count", True),
    ("revision_date", True),
    ("visit_date", True),
    ("repo_name", False),
    ("path", False),
    ("blob_id", False),
)
