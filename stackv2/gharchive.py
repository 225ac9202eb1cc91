"""GitHub repository metadata from GH Archive's hourly event files, by BigCode's rules (docs/spec.md §1.4,
docs/gharchive.md): what an event counts for, which payload describes which repository, how rows are reduced, and
how an incomplete file is recognised. ``pipelines.gharchive`` runs these rules on Spark; ``reduce_events`` is the
same reduction in plain Python, the oracle of its tests.

The rules (BigCode: ``the_stack/0_repo_data/merge_gha_swh.py`` ``get_github_repo_data``):

* one row per (``repo.id``, ``repo.name``) pair seen in **any** event, both non-null; events without either are
  dropped and counted;
* ``star_events_count`` = ``WatchEvent``s of the pair (un-starring is not an event: an upper bound),
  ``fork_events_count`` = ``ForkEvent``s of the pair (the event's ``repo`` is the source);
* metadata (default branch, license, creation time, language) comes from the repository objects the events carry:
  ``PullRequestEvent`` ``payload.pull_request.base.repo`` (the PR's target) and ``ForkEvent`` ``payload.forkee``
  (the **new fork**, never the source). Per repository id the object of the latest event wins (``METADATA_ORDER``)
  and joins the pair whose name equals the object's ``full_name``: older names of a renamed repository get none.

Where BigCode left a choice to chance we pin it: ties on the event time are broken by the event id (GitHub's
counter, so the later event), then by the object's own values; a pair without stars or forks counts 0, not null.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from stackv2.schema import GHARCHIVE_METADATA, INT64, STRING, TS

#: A star. The count is of events: a user who stars, un-stars and stars again counts twice.
WATCH_EVENT = "WatchEvent"
#: A fork of ``repo``: counted for ``repo`` (the source); ``payload.forkee`` is the new repository.
FORK_EVENT = "ForkEvent"
#: ``payload.pull_request.base.repo`` describes the repository the pull request targets.
PULL_REQUEST_EVENT = "PullRequestEvent"
#: Event types whose payload carries a repository object, and where it sits in the payload.
METADATA_PAYLOADS: dict[str, tuple[str, ...]] = {
    PULL_REQUEST_EVENT: ("pull_request", "base", "repo"),
    FORK_EVENT: ("forkee",),
}

#: The fields of a GitHub repository object that we keep (BigCode reads more and publishes these as ``gha_*``).
REPO_OBJECT = pa.struct(
    [
        pa.field("id", INT64),
        pa.field("full_name", STRING),
        pa.field("default_branch", STRING),
        pa.field("created_at", TS),
        pa.field("language", STRING),
        pa.field("license", pa.struct([pa.field("spdx_id", STRING)])),
    ]
)

#: The event fields read from each JSON line (GitHub Events API shape, as GH Archive stores it); others are skipped.
#: A field whose value has another type reads as null, alone (Spark's PERMISSIVE mode keeps the rest of the line).
EVENT = pa.schema(
    [
        pa.field("id", STRING),
        pa.field("type", STRING),
        pa.field("created_at", TS),
        pa.field("repo", pa.struct([pa.field("id", INT64), pa.field("name", STRING)])),
        pa.field(
            "payload",
            pa.struct(
                [
                    pa.field(
                        "pull_request",
                        pa.struct([pa.field("base", pa.struct([pa.field("repo", REPO_OBJECT)]))]),
                    ),
                    pa.field("forkee", REPO_OBJECT),
                ]
            ),
        ),
    ]
)

#: The metadata columns a repository object gives (``GHARCHIVE_METADATA`` names).
METADATA_COLUMNS = ("default_branch", "license_spdx_id", "created_at", "language")

#: Which repository object wins for one repository id: the greatest of these, in this order (nulls lowest). The
#: event time is BigCode's rule; its ties (same second) were arbitrary, here the larger event id (GitHub's counter)
#: wins, then the object's own values, so the pick never depends on the order of the input.
METADATA_ORDER = ("event_created_at", "event_id", "full_name", *METADATA_COLUMNS)

#: Summary key for lines that are not a JSON event (no ``type``).
UNPARSED = "(unparsed)"

GZIP_MIN_BYTES = 18


def event_id(raw: Any) -> int | None:
    """GH Archive's event id (a string of digits) as a number; anything else is None."""
    text = str(raw) if raw is not None else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def repo_object(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The repository object an event carries for metadata (``METADATA_PAYLOADS``), if any."""
    where = METADATA_PAYLOADS.get(event.get("type"))
    node: Any = event.get("payload")
    for key in where or ():
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if where and isinstance(node, Mapping) else None


def _order_key(candidate: Mapping[str, Any]) -> tuple:
    return tuple((0,) if candidate[k] is None else (1, candidate[k]) for k in METADATA_ORDER)


def reduce_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The metadata table of ``events`` (parsed events: timestamps as ``datetime``), one dict per row in
    ``GHARCHIVE_METADATA`` order, sorted by (full_name, github_id)."""
    pairs: dict[tuple[int, str], dict[str, Any]] = {}
    best: dict[int, dict[str, Any]] = {}
    for e in events:
        repo = e.get("repo") or {}
        rid, name = repo.get("id"), repo.get("name")
        if rid is not None and name is not None:
            row = pairs.setdefault(
                (rid, name), {"star_events_count": 0, "fork_events_count": 0, "latest_event_at": None}
            )
            row["star_events_count"] += e.get("type") == WATCH_EVENT
            row["fork_events_count"] += e.get("type") == FORK_EVENT
            at = e.get("created_at")
            if at is not None and (row["latest_event_at"] is None or at > row["latest_event_at"]):
                row["latest_event_at"] = at
        obj = repo_object(e)
        if obj is None or obj.get("id") is None:
            continue
        candidate = {
            "event_created_at": e.get("created_at"),
            "event_id": event_id(e.get("id")),
            "full_name": obj.get("full_name"),
            "default_branch": obj.get("default_branch"),
            "license_spdx_id": (obj.get("license") or {}).get("spdx_id"),
            "created_at": obj.get("created_at"),
            "language": obj.get("language"),
        }
        if obj["id"] not in best or _order_key(candidate) > _order_key(best[obj["id"]]):
            best[obj["id"]] = candidate
    rows = []
    for (rid, name), counts in sorted(pairs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        meta = best.get(rid)
        meta = meta if meta is not None and meta["full_name"] == name else {}
        row = {"full_name": name, "github_id": rid, **counts, **{c: meta.get(c) for c in METADATA_COLUMNS}}
        row["event_created_at"] = meta.get("event_created_at")
        rows.append({c: row[c] for c in GHARCHIVE_METADATA.names})
    return rows


def file_key(uri: str) -> tuple[str, str, str]:
    """One spelling per file: Spark writes ``file:/x`` in one place and ``file:///x`` in another."""
    parts = urlsplit(uri)
    return parts.scheme or "file", parts.netloc, unquote(parts.path)


def gzip_size(tail: bytes) -> int | None:
    """The uncompressed size mod 2**32 a gzip file's last 4 bytes (ISIZE) declare; None for a file too short to be
    a gzip member. GH Archive's files are single members (``gzip -9`` of the hour's file)."""
    return int.from_bytes(tail[-4:], "little") if len(tail) >= 4 else None


def complete(declared: int | None, bytes_read: int) -> bool:
    """Whether the lines read from a file (their bytes, one ``\\n`` each counted) add up to the size its gzip
    trailer declares: a truncated file stops early and ends with arbitrary bytes instead of a trailer (a last line
    without its newline is one byte short)."""
    return declared is not None and declared in {bytes_read % 2**32, (bytes_read - 1) % 2**32}


def summarize(
    types: Mapping[str | None, int],
    dropped: int,
    files: Mapping[str, tuple[int, int | None]],
    metadata_objects: int,
    table: Mapping[str, int],
) -> dict[str, Any]:
    """The build's summary: events read per type (``UNPARSED`` for lines that are not an event), events dropped for
    a null ``repo.id`` or ``repo.name``, files (``path -> (bytes read, size declared by its trailer)``) with the
    incomplete ones named, metadata objects seen, and the table's counts."""
    events = sum(types.values())
    if dropped > events:
        raise ValueError(f"{dropped} events dropped of {events} read")
    incomplete = sorted(f for f, (read, declared) in files.items() if not complete(declared, read))
    return {
        "files": len(files),
        "files_incomplete": len(incomplete),
        "incomplete_files": incomplete,
        "events": events,
        "events_by_type": {
            UNPARSED if t is None else t: n for t, n in sorted(types.items(), key=lambda kv: (-kv[1], str(kv[0])))
        },
        "events_without_repo": dropped,
        "metadata_objects": metadata_objects,
        **table,
    }


def on_screen(summary: Mapping[str, Any], names: int = 10) -> dict[str, Any]:
    """``summary`` with at most ``names`` incomplete files named (all of them are in ``_summary.json``)."""
    listed = summary["incomplete_files"]
    more = [f"... {len(listed) - names} more"] if len(listed) > names else []
    return {**summary, "incomplete_files": listed[:names] + more}
