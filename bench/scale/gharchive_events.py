"""GH Archive hourly event files for the scale archive's repositories: the GitHub metadata BigCode joined to SWH
(``stackv2 gharchive build`` turns them into the table ``extract`` reads; docs/gharchive.md).

Each file is one hour of GitHub Events API objects as GH Archive stores them (``YYYY-MM-DD-H.json.gz``, one gzip
member, one JSON event per line, in time order). Per repository, from a generator seeded apart from the archive's
(the archive is the same with or without events):

* ``without_events`` of the repositories have no event at all (no row in the table: fallback branches, no stars);
* the others get ``WatchEvent``s (stars), ``PushEvent``s, and one or two ``PullRequestEvent``s whose
  ``pull_request.base.repo`` object carries the license and default branch; ``other_branch`` of them name a
  default branch the snapshot lacks (``master``), so both BigCode's code and ours drop the origin;
* a repository with a fork in the archive gets a ``ForkEvent`` whose ``forkee`` is the fork (``fork: true``, the
  source's license), and the fork a few stars of its own, so it has a row.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: GitHub license values and their weights (``None``: GitHub found no license file; ``NOASSERTION``: it found one
#: it could not name).
LICENSES: tuple[tuple[str | None, int], ...] = (
    ("MIT", 30),
    ("Apache-2.0", 15),
    ("BSD-3-Clause", 5),
    ("GPL-3.0", 10),
    ("AGPL-3.0", 2),
    ("NOASSERTION", 8),
    (None, 30),
)
START = datetime(2015, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class EventsSpec:
    hours: int = 24
    without_events: float = 0.15
    other_branch: float = 0.08
    #: Mean stars of a repository with events (exponential, so a few are popular).
    mean_stars: float = 40.0


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _repo_object(rid: int, full_name: str, branch: str, spdx: str | None, fork: bool) -> dict:
    """A GitHub repository object as events nest it (``forkee``, ``pull_request.base.repo``)."""
    owner, name = full_name.split("/")
    return {
        "id": rid,
        "name": name,
        "full_name": full_name,
        "owner": {"login": owner, "id": rid * 10, "type": "User"},
        "private": False,
        "html_url": f"https://github.com/{full_name}",
        "description": None,
        "fork": fork,
        "url": f"https://api.github.com/repos/{full_name}",
        "created_at": "2014-06-01T08:00:00Z",
        "updated_at": "2015-02-27T11:00:00Z",
        "pushed_at": "2015-02-28T12:00:00Z",
        "homepage": None,
        "size": 120,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": "Python",
        "has_issues": True,
        "forks_count": 0,
        "mirror_url": None,
        "open_issues_count": 0,
        "license": None if spdx is None else {"key": spdx.lower(), "name": spdx, "spdx_id": spdx, "url": None},
        "default_branch": branch,
    }


def write_events(repos: list[tuple[str, str | None]], out: Path, seed: int, spec: EventsSpec = EventsSpec()) -> dict:
    """Write the hourly files for ``repos`` ((origin URL, its fork's origin URL or None)) under ``out``; returns
    counts. Deterministic for the same repositories and seed."""
    rng = random.Random(seed ^ 0x6A0A)
    events: list[tuple[datetime, dict]] = []
    licenses, weights = zip(*LICENSES, strict=True)

    def when() -> datetime:
        return START + timedelta(seconds=rng.randrange(spec.hours * 3600))

    def add(kind: str, rid: int, name: str, payload: dict) -> None:
        actor = rng.randrange(1, 10**6)
        events.append(
            (
                when(),
                {
                    "type": kind,
                    "actor": {
                        "id": actor,
                        "login": f"user{actor}",
                        "url": f"https://api.github.com/users/user{actor}",
                    },
                    "repo": {"id": rid, "name": name, "url": f"https://api.github.com/repos/{name}"},
                    "payload": payload,
                    "public": True,
                },
            )
        )

    counts = {"repos_with_events": 0, "repos_without_events": 0, "other_default_branch": 0, "forks_with_events": 0}
    for i, (origin, fork) in enumerate(repos):
        name = origin.removeprefix("https://github.com/")
        if rng.random() < spec.without_events:
            counts["repos_without_events"] += 1
            continue
        counts["repos_with_events"] += 1
        rid = 1000 + 3 * i
        branch = "main"
        if rng.random() < spec.other_branch:
            branch = "master"
            counts["other_default_branch"] += 1
        spdx = rng.choices(licenses, weights)[0]
        obj = _repo_object(rid, name, branch, spdx, fork=False)
        for _ in range(int(rng.expovariate(1 / spec.mean_stars))):
            add("WatchEvent", rid, name, {"action": "started"})
        for _ in range(rng.randint(1, 3)):
            add("PushEvent", rid, name, {"push_id": rng.randrange(10**9), "size": 1, "ref": f"refs/heads/{branch}"})
        for n in range(rng.randint(1, 2)):
            pr = {"id": rng.randrange(10**8), "number": n + 1, "state": "open", "title": "fix", "head": {"ref": "p"}}
            pr["base"] = {"label": f"{name}:{branch}", "ref": branch, "repo": obj}
            add("PullRequestEvent", rid, name, {"action": "opened", "number": n + 1, "pull_request": pr})
        if fork is not None:
            fork_name = fork.removeprefix("https://github.com/")
            fork_id = rid + 1
            add("ForkEvent", rid, name, {"forkee": _repo_object(fork_id, fork_name, branch, spdx, fork=True)})
            stars = rng.randint(0, 3)
            counts["forks_with_events"] += stars > 0
            for _ in range(stars):
                add("WatchEvent", fork_id, fork_name, {"action": "started"})
    events.sort(key=lambda e: e[0])
    hours: dict[datetime, list[str]] = {}
    for n, (t, e) in enumerate(events):
        line = {"id": str(2_600_000_000 + n), **e, "created_at": _iso(t)}
        hours.setdefault(t.replace(minute=0, second=0), []).append(json.dumps(line, separators=(",", ":")))
    out.mkdir(parents=True, exist_ok=True)
    for hour, lines in hours.items():
        data = ("\n".join(lines) + "\n").encode()
        (out / f"{hour:%Y-%m-%d}-{hour.hour}.json.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    return {**counts, "events": len(events), "files": len(hours), "path": str(out)}
