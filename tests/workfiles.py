"""Every file a run left in its work folder, in a form two runs of the same config can be compared by, byte for
byte: what differs between two honest runs is taken out (the timing in ``_stats.json`` and in the report's copy of
them, the work folder's own name where a JSON, HTML or Markdown file quotes it, and the lock)."""

from __future__ import annotations

import json
import os

from stackv2.storage import Location, location
from stackv2.workdir import LOCK

#: What a file quoting the work folder's name has in its place.
WORK = b"<work>"


def outputs(work: str | os.PathLike | Location) -> dict[str, bytes]:
    """{path below ``work``: bytes} of every file in ``work`` (a local folder or a URI; hidden files too)."""
    work = location(work)
    files = {}
    for f in work.files():
        name = f.relative_to(work)
        if name == LOCK:
            continue
        data = f.read_bytes()
        if f.name == "_stats.json":
            stats = json.loads(data)
            stats.pop("seconds")
            data = json.dumps(stats, sort_keys=True).encode()
        elif name == "report/report.json":  # the report's funnel quotes each stage's stats, timing included
            report = json.loads(data)
            for stats in report["funnel"]:
                stats.pop("seconds")
            data = json.dumps(report, sort_keys=True).encode()
        if f.suffix in (".json", ".html", ".md"):
            data = data.replace(work.uri.encode(), WORK)
        files[name] = data
    return files


def assert_same(expected: dict[str, bytes], found: dict[str, bytes]) -> None:
    """The same files with the same bytes (the differing files named on failure)."""
    assert sorted(expected) == sorted(found)
    differ = [k for k in expected if expected[k] != found[k]]
    assert not differ, f"files differ: {differ}"
