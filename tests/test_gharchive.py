"""GitHub metadata from GH Archive events: the rules in plain Python, then the Spark job on event files written here
in GH Archive's shape (gzip JSON lines, one file per hour, GitHub Events API objects)."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from stackv2.gharchive import (
    UNPARSED,
    complete,
    event_id,
    file_key,
    gzip_size,
    on_screen,
    reduce_events,
    repo_object,
    summarize,
)
from stackv2.schema import GHARCHIVE_METADATA

T0 = datetime(2015, 3, 1, 10, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def repo(rid: int, full_name: str, branch: str = "master", spdx: str | None = None, **extra) -> dict:
    """A GitHub repository object as the Events API nests it (``forkee``, ``pull_request.base.repo``)."""
    owner, name = full_name.split("/")
    return {
        "id": rid,
        "node_id": f"MDEwOlJlcG9zaXRvcnk{rid}",
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": {"login": owner, "id": rid * 10, "type": "User", "site_admin": False},
        "html_url": f"https://github.com/{full_name}",
        "description": None,
        "fork": extra.pop("fork", False),
        "url": f"https://api.github.com/repos/{full_name}",
        "created_at": extra.pop("created_at", "2014-05-01T08:00:00Z"),
        "updated_at": "2015-02-27T11:00:00Z",
        "pushed_at": "2015-02-28T12:00:00Z",
        "homepage": None,
        "size": 120,
        "stargazers_count": 4,
        "watchers_count": 4,
        "language": extra.pop("language", "Python"),
        "has_issues": True,
        "forks_count": 1,
        "mirror_url": None,
        "open_issues_count": 0,
        "license": None if spdx is None else {"key": spdx.lower(), "name": spdx, "spdx_id": spdx, "url": None},
        "forks": 1,
        "open_issues": 0,
        "watchers": 4,
        "default_branch": branch,
        **extra,
    }


def event(eid: int, kind: str, rid: int | None, name: str | None, when: datetime, payload: dict | None = None) -> dict:
    """One GH Archive line: a GitHub Events API event (``payload=None`` leaves the key out)."""
    e = {
        "id": str(eid),
        "type": kind,
        "actor": {"id": 7, "login": "someone", "gravatar_id": "", "url": "https://api.github.com/users/someone"},
        "repo": None if rid is None and name is None else {"id": rid, "name": name, "url": f"https://x/{name}"},
        "public": True,
        "created_at": iso(when),
    }
    if payload is not None:
        e["payload"] = payload
    return e


def star(eid, rid, name, when):
    return event(eid, "WatchEvent", rid, name, when, {"action": "started"})


def pull_request(eid, base: dict, when, action="opened"):
    pr = {"id": eid * 3, "number": 1, "state": "open", "title": "fix", "head": {"ref": "patch", "repo": None}}
    pr["base"] = {"label": f"{base['full_name']}:x", "ref": base["default_branch"], "repo": base}
    return event(eid, "PullRequestEvent", base["id"], base["full_name"], when, {"action": action, "pull_request": pr})


def fork(eid, rid, name, forkee: dict | None, when):
    return event(eid, "ForkEvent", rid, name, when, None if forkee is None else {"forkee": forkee})


def parsed(e: dict) -> dict:
    """``e`` as Spark reads it (timestamps as datetimes)."""

    def ts(v):
        return datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if isinstance(v, str) else v

    out = json.loads(json.dumps(e))
    out["created_at"] = ts(out["created_at"])
    obj = repo_object(out)
    if obj is not None:
        obj["created_at"] = ts(obj.get("created_at"))
    return out


# --- the rules, without Spark -------------------------------------------------------------------------------------


def test_stars_forks_and_metadata_per_pair():
    widget = repo(101, "octo/widget", "main", "MIT")
    rows = reduce_events(
        map(
            parsed,
            [
                star(1, 101, "octo/widget", at(0)),
                star(2, 101, "octo/widget", at(1)),
                fork(3, 101, "octo/widget", repo(505, "carol/widget", fork=True), at(2)),
                pull_request(4, widget, at(3)),
                event(5, "PushEvent", 505, "carol/widget", at(4), {"ref": "refs/heads/main"}),
            ],
        )
    )
    assert rows == [
        {
            "full_name": "carol/widget",
            "github_id": 505,
            "default_branch": "master",
            "license_spdx_id": None,
            "star_events_count": 0,
            "fork_events_count": 0,
            "created_at": datetime(2014, 5, 1, 8, tzinfo=UTC),
            "event_created_at": at(2),
            "language": "Python",
            "latest_event_at": at(4),
        },
        {
            "full_name": "octo/widget",
            "github_id": 101,
            "default_branch": "main",
            "license_spdx_id": "MIT",
            "star_events_count": 2,
            "fork_events_count": 1,  # the fork counts for the source, its forkee describes carol/widget
            "created_at": datetime(2014, 5, 1, 8, tzinfo=UTC),
            "event_created_at": at(3),
            "language": "Python",
            "latest_event_at": at(3),
        },
    ]
    assert list(rows[0]) == GHARCHIVE_METADATA.names


def test_metadata_of_the_latest_event_joins_the_name_it_carries():
    rows = reduce_events(
        map(
            parsed,
            [
                pull_request(1, repo(202, "alice/old", "master"), at(0)),
                star(2, 202, "alice/old", at(1)),
                pull_request(3, repo(202, "alice/new", "trunk"), at(5)),
            ],
        )
    )
    by_name = {r["full_name"]: r for r in rows}
    assert by_name["alice/old"]["default_branch"] is None  # the older name's object lost to the newer one
    assert by_name["alice/new"]["default_branch"] == "trunk"
    assert [r["github_id"] for r in rows] == [202, 202]


def test_ties_on_the_event_time_go_to_the_larger_event_id_whatever_the_order():
    events = [
        pull_request(10, repo(1, "a/b", "first"), at(0)),
        pull_request(11, repo(1, "a/b", "second"), at(0)),
        pull_request(9, repo(1, "a/b", "earlier-id"), at(0)),
    ]
    for order in (events, events[::-1]):
        assert reduce_events(map(parsed, order))[0]["default_branch"] == "second"


def test_only_pull_request_and_fork_payloads_give_metadata():
    comment = event(
        1,
        "PullRequestReviewCommentEvent",
        7,
        "erin/lib",
        at(0),
        {"pull_request": {"base": {"repo": repo(7, "erin/lib")}}},
    )
    assert repo_object(parsed(comment)) is None
    assert repo_object(parsed(fork(2, 7, "erin/lib", None, at(1)))) is None
    (row,) = reduce_events(map(parsed, [comment, fork(2, 7, "erin/lib", None, at(1))]))
    assert (row["fork_events_count"], row["default_branch"]) == (1, None)


def test_event_id():
    assert event_id("2489651045") == 2489651045
    assert [event_id(v) for v in (None, "", "12a", "-3", "١٢", "9" * 19)] == [None] * 6


def test_file_key_is_one_spelling_per_file():
    assert file_key("file:/tmp/a%20b/x.json.gz") == file_key("file:///tmp/a b/x.json.gz")
    assert file_key("s3a://bucket/gha/x.json.gz") == ("s3a", "bucket", "/gha/x.json.gz")


def test_gzip_trailer_tells_a_complete_file_from_a_cut_one():
    text = b"".join(json.dumps({"i": i, "pad": "x" * (i % 50)}).encode() + b"\n" for i in range(3000))
    whole = gzip.compress(text)
    assert complete(gzip_size(whole[-4:]), len(text))
    assert complete(gzip_size(gzip.compress(text[:-1])[-4:]), len(text))  # the last line lacks its newline
    cut = whole[: len(whole) // 2]
    read = zlib.decompressobj(31).decompress(cut)
    lines = read[: read.rindex(b"\n") + 1]  # what a line reader gets before the stream fails
    assert not complete(gzip_size(cut[-4:]), len(lines))
    assert gzip_size(b"") is None and not complete(None, 0)


def test_summary_accounts_for_every_event():
    s = summarize(
        types={"WatchEvent": 5, None: 1, "PushEvent": 7},
        dropped=2,
        files={"file:/a.json.gz": (100, 100), "file:/b.json.gz": (40, 9), "file:/c.json.gz": (0, None)},
        metadata_objects=3,
        table={"rows": 4},
    )
    assert s["events"] == 13 and s["events_without_repo"] == 2
    assert list(s["events_by_type"].items()) == [("PushEvent", 7), ("WatchEvent", 5), (UNPARSED, 1)]
    assert (s["files"], s["files_incomplete"], s["incomplete_files"]) == (3, 2, ["file:/b.json.gz", "file:/c.json.gz"])
    assert on_screen(s, names=1)["incomplete_files"] == ["file:/b.json.gz", "... 1 more"]
    assert on_screen(s) == s
    with pytest.raises(ValueError):
        summarize(types={"X": 1}, dropped=2, files={}, metadata_objects=0, table={})


# --- the Spark job ----------------------------------------------------------------------------------------------


def write_hour(path: Path, lines: list) -> Path:
    """One hourly file: JSON lines (a ``str`` item is written as is), gzip as GH Archive stores them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path.write_bytes(gzip.compress(text.encode()))
    return path


WIDGET = repo(101, "octo/widget", "main", "MIT")

#: Hour files of the fixture (nested folders for the second day).
HOURS = {
    "2015-03-01-10.json.gz": [
        star(1001, 101, "octo/widget", at(0)),
        star(1002, 101, "octo/widget", at(1)),
        pull_request(1003, {**WIDGET, "default_branch": "master"}, at(2)),
        star(1004, 202, "alice/old", at(3)),
        star(1005, 202, "alice/old", at(4)),
        pull_request(1006, repo(202, "alice/old", "master", "Apache-2.0"), at(5)),
        star(1007, 303, "bob/tool", at(6)),
        pull_request(1008, repo(303, "bob/tool", "master", "GPL-3.0"), at(7)),
        fork(1009, 303, "bob/tool", None, at(8)),  # a fork event without a payload: counted, no metadata
        event(1010, "IssuesEvent", 101, "octo/widget", at(9), {"action": "opened", "issue": {"number": 3}}),
        event(1011, "WatchEvent", None, None, at(10), {"action": "started"}),  # "repo": null
        {**star(1012, 1, "x/y", at(11)), "repo": {"id": None, "name": "x/y"}},
        {**star(1013, 9, None, at(12)), "repo": {"id": 9, "name": None}},
        "{this is not json",
        "",
    ],
    "2015-03-01-11.json.gz": [
        # renamed: the same id under its new name, with the latest repository object
        star(2001, 202, "alice/new", at(60)),
        pull_request(2002, repo(202, "alice/new", "trunk", "Apache-2.0", language="Go"), at(61)),
        # forks of octo/widget: forkee = the new repository; 505 has events of its own, 506 none
        fork(2003, 101, "octo/widget", repo(505, "carol/widget", "main", "MIT", fork=True), at(62)),
        fork(2004, 101, "octo/widget", repo(506, "dave/widget", "main", "MIT", fork=True), at(63)),
        event(2005, "PushEvent", 505, "carol/widget", at(64), {"ref": "refs/heads/main", "size": 1}),
        # two pull requests in the same second: the larger event id wins, though it comes first
        pull_request(2007, {**WIDGET, "default_branch": "main"}, at(65), "closed"),
        pull_request(2006, {**WIDGET, "default_branch": "release"}, at(65)),
        # a review comment carries the base repository too, but is not a PullRequestEvent
        event(
            2008,
            "PullRequestReviewCommentEvent",
            707,
            "erin/lib",
            at(66),
            {"action": "created", "pull_request": {"base": {"repo": repo(707, "erin/lib", "gh-pages")}}},
        ),
        event(2009, "PullRequestEvent", 707, "erin/lib", at(67), {"action": "opened"}),  # no pull_request
    ],
    "day2/2015-03-02-0.json.gz": [
        # bob/tool deleted and created again: same name, new id
        star(3001, 304, "bob/tool", at(60 * 14)),
        star(3002, 304, "bob/tool", at(60 * 14 + 1)),
        event(3003, "CreateEvent", 304, "bob/tool", at(60 * 14 + 2), {"ref_type": "repository"}),
    ],
}

#: 2,000 stars of one repository, in a file cut in the middle: the lines before the cut count.
BIG = [star(5000 + i, 909, "zed/big", at(120 + i % 50)) for i in range(2000)]


def lines_before_cut(data: bytes) -> int:
    return zlib.decompressobj(31).decompress(data).count(b"\n")


@pytest.fixture(scope="module")
def gha(tmp_path_factory) -> tuple[Path, int]:
    """The fixture's folder and how many lines its truncated file still holds."""
    root = tmp_path_factory.mktemp("gharchive")
    for name, lines in HOURS.items():
        write_hour(root / name, lines)
    whole = write_hour(root / "day2/2015-03-02-1.json.gz", BIG).read_bytes()
    cut = whole[: len(whole) // 2]
    (root / "day2/2015-03-02-1.json.gz").write_bytes(cut)
    (root / "2015-03-01-12.json.gz").write_bytes(b"<html>503 Service Unavailable</html>")  # not gzip at all
    (root / "README.txt").write_text("not an event file")
    (root / "day2/2015-03-02-2.json").write_text(json.dumps(star(9999, 101, "octo/widget", at(0))) + "\n")
    return root, lines_before_cut(cut)


def expected_rows(big_stars: int) -> list[dict]:
    c = datetime(2014, 5, 1, 8, tzinfo=UTC)

    def row(name, gid, stars, forks, latest, branch=None, spdx=None, meta_at=None, language=None, created=None):
        return {
            "full_name": name,
            "github_id": gid,
            "default_branch": branch,
            "license_spdx_id": spdx,
            "star_events_count": stars,
            "fork_events_count": forks,
            "created_at": created,
            "event_created_at": meta_at,
            "language": language,
            "latest_event_at": latest,
        }

    return [
        row("alice/new", 202, 1, 0, at(61), "trunk", "Apache-2.0", at(61), "Go", c),
        row("alice/old", 202, 2, 0, at(5)),  # renamed: its object now carries alice/new
        row("bob/tool", 303, 1, 1, at(8), "master", "GPL-3.0", at(7), "Python", c),
        row("bob/tool", 304, 2, 0, at(60 * 14 + 2)),
        row("carol/widget", 505, 0, 0, at(64), "main", "MIT", at(62), "Python", c),
        row("erin/lib", 707, 0, 0, at(67)),
        row("octo/widget", 101, 2, 2, at(65), "main", "MIT", at(65), "Python", c),
        row("zed/big", 909, big_stars, 0, at(120 + min(big_stars, 50) - 1)),
    ]


def table_rows(path: Path) -> list[dict]:
    return pq.read_table(path).sort_by([("full_name", "ascending"), ("github_id", "ascending")]).to_pylist()


@pytest.mark.spark
def test_build_writes_the_table_and_accounts_for_every_event(spark, gha, tmp_path):
    from pipelines.gharchive import SUMMARY, build

    root, big_stars = gha
    assert 0 < big_stars < len(BIG)
    summary = build(spark, str(root), str(tmp_path / "gh"), partitions=3)
    assert table_rows(tmp_path / "gh") == expected_rows(big_stars)
    assert pq.read_schema(tmp_path / "gh/part_00000.parquet").names == GHARCHIVE_METADATA.names
    assert summary["events_by_type"] == {
        "WatchEvent": 11 + big_stars,
        "PullRequestEvent": 7,
        "ForkEvent": 3,
        "IssuesEvent": 1,
        "PushEvent": 1,
        "CreateEvent": 1,
        "PullRequestReviewCommentEvent": 1,
        UNPARSED: 1,  # the blank line is no event
    }
    assert summary["events"] == 26 + big_stars
    assert summary["events_without_repo"] == 4  # repo null, id null, name null, the line that is not JSON
    assert summary["metadata_objects"] == 8  # 6 pull requests with a base repository, 2 forks with a forkee
    assert (summary["rows"], summary["repos"], summary["names"]) == (8, 7, 7)
    assert summary["files"] == 5  # the *.json.gz files, nested ones included
    assert summary["files_incomplete"] == 2
    assert [Path(p).name for p in summary["incomplete_files"]] == [
        "2015-03-01-12.json.gz",
        "2015-03-02-1.json.gz",
    ]
    assert json.loads((tmp_path / "gh" / SUMMARY).read_text()) == summary


@pytest.mark.spark
def test_the_table_does_not_depend_on_how_events_are_spread_over_files(spark, gha, tmp_path):
    from pipelines.gharchive import build

    root, _ = gha
    build(spark, str(root), str(tmp_path / "a"), partitions=3)
    events = [e for lines in HOURS.values() for e in lines][::-1]
    for i in range(4):  # the same events, reversed, dealt over four files
        write_hour(tmp_path / "shuffled" / f"h{i}.json.gz", events[i::4])
    (tmp_path / "shuffled/cut.json.gz").write_bytes((root / "day2/2015-03-02-1.json.gz").read_bytes())
    build(spark, str(tmp_path / "shuffled"), str(tmp_path / "b"), partitions=3)
    for i in range(3):
        name = f"part_{i:05d}.parquet"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.spark
def test_spark_matches_the_plain_python_rules_on_random_events(spark, tmp_path):
    from pipelines.gharchive import parse, read_lines, transform

    rng = random.Random(7)
    names = ["a/x", "a/y", "b/x", "c/z"]
    kinds = ["WatchEvent", "ForkEvent", "PullRequestEvent", "PushEvent", "IssuesEvent"]
    events = []
    for i in range(1500):
        rid, name, kind = rng.randint(1, 12), rng.choice(names), rng.choice(kinds)
        when = at(rng.randint(0, 30))  # many events in the same minute: ties everywhere
        eid = rng.choice([i, i, 5])  # some events share an id
        obj = repo(rng.randint(1, 12), rng.choice(names), rng.choice(["main", "dev", None]), rng.choice([None, "MIT"]))
        if kind == "PullRequestEvent":
            e = pull_request(eid, {**obj, "id": rid, "full_name": name}, when)
        elif kind == "ForkEvent":
            e = fork(eid, rid, name, obj if rng.random() < 0.8 else None, when)
        else:
            e = event(eid, kind, rid, name, when, {})
        events.append(e)
    for i in range(3):
        write_hour(tmp_path / f"h{i}.json.gz", events[i::3])
    got = transform(parse(read_lines(spark, str(tmp_path)))).toArrow()
    got = got.sort_by([("full_name", "ascending"), ("github_id", "ascending")]).to_pylist()
    want = reduce_events(map(parsed, events))
    assert len(want) > 40 and sum(r["event_created_at"] is not None for r in want) > 5
    assert got == want


@pytest.mark.spark
def test_read_github_metadata_takes_a_table_or_event_files(spark, gha, tmp_path):
    from pipelines.gharchive import build, read_github_metadata

    root, big_stars = gha
    build(spark, str(root), str(tmp_path / "gh"), partitions=2)
    for source in (tmp_path / "gh", root):
        rows = read_github_metadata(spark, str(source)).toArrow()
        rows = rows.sort_by([("full_name", "ascending"), ("github_id", "ascending")]).to_pylist()
        assert rows == expected_rows(big_stars)
    with pytest.raises(FileNotFoundError):
        read_github_metadata(spark, str(tmp_path / "nothing"))


@pytest.mark.spark
def test_one_row_per_name_goes_to_the_id_with_the_latest_event(spark, gha, tmp_path):
    from pipelines.gharchive import build, one_per_name

    root, big_stars = gha
    build(spark, str(root), str(tmp_path / "gh"), partitions=2)
    table = spark.read.parquet(str(tmp_path / "gh"))
    picked = {r["full_name"]: r["github_id"] for r in one_per_name(table).collect()}
    assert picked == {r["full_name"]: r["github_id"] for r in expected_rows(big_stars) if r["github_id"] != 303}
    # the old id renamed back onto the name after the new one went quiet: the latest event wins, not the id
    moved = spark.createDataFrame(
        [("n/x", 5, at(90)), ("n/x", 9, at(30)), ("n/y", 7, None), ("n/y", 8, None)],
        "full_name string, github_id long, latest_event_at timestamp",
    )
    assert sorted(tuple(r) for r in one_per_name(moved).select("full_name", "github_id").collect()) == [
        ("n/x", 5),
        ("n/y", 8),
    ]
    # without latest_event_at (a hand-made table): the newer, larger id
    assert one_per_name(moved.drop("latest_event_at")).where("full_name = 'n/x'").first()["github_id"] == 9


@pytest.mark.spark
def test_an_overlong_line_is_skipped_and_its_file_fails_the_byte_check(spark, tmp_path):
    from pyspark.sql import functions as F

    from pipelines.gharchive import parse, read_lines

    lines = [star(1, 1, "a/b", at(0)), {**star(2, 1, "a/b", at(1)), "pad": "x" * 5000}, star(3, 1, "a/b", at(2))]
    data = write_hour(tmp_path / "h.json.gz", lines).read_bytes()
    events = parse(read_lines(spark, str(tmp_path), max_line_bytes=1000))
    got = events.agg(F.count("id"), F.sum("line_bytes"), F.collect_list("id")).first()
    assert (got[0], sorted(got[2])) == (2, ["1", "3"])
    assert not complete(gzip_size(data[-4:]), got[1])
    assert complete(gzip_size(data[-4:]), parse(read_lines(spark, str(tmp_path))).agg(F.sum("line_bytes")).first()[0])


@pytest.mark.spark
def test_cli(spark, gha, tmp_path, capsys):
    from pipelines.cli import main

    root, _ = gha
    assert main(["gharchive", "build", "--events", str(root), "--out", str(tmp_path / "gh")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 8 and summary["files_incomplete"] == 2
    assert main(["gharchive", "build", "--events", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stackv2 gharchive: error: GH Archive events") and "\n" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["gharchive", "build", "--events", str(empty), "--out", str(tmp_path / "x")]) == 2
    assert "no *.json.gz files" in capsys.readouterr().err
