"""GitHub metadata from GH Archive events: ``pipelines.gharchive.build`` vs BigCode's ``get_github_repo_data``, on the
same generated event files, in the same Spark session, interleaved.

    .venv/bin/python bench/gharchive/run.py --events 1000000 --files 40 --pairs 5 --parse-pairs 3

Corpus (generated once, kept in ``--dir``): ``--events`` events in GH Archive's shape over ``--files`` hourly
``*.json.gz`` files (gzip -6): the type mix of a recent GH Archive hour (pushes half, then creates, pull requests,
stars, comments, ...), repositories drawn with a heavy head (a few get most events), 5 % of them renamed half way,
2 % of names reused by a second id, pull requests and forks carrying full GitHub repository objects (head and base,
forkee), so the JSON parser skips as much as it would on the real files.

Peer: BigCode's ``get_github_repo_data`` (``the_stack/0_repo_data/merge_gha_swh.py``, read from ``--bigcode``, by
default the ``fetch`` mirror of bigcode-project/the-stack-v2; never copied here), its result written to Parquet.
Ours: ``build`` (the table, the summary, the file check). Both tables are then compared row by row (BigCode's
``github_metadata`` flattened, null counts as 0), leaving out the ids whose latest metadata event is tied, where
BigCode's pick is arbitrary. Prints one Markdown row per run, then the ratio. ``--parse-pairs N`` also times the
parse alone both ways (Spark's JSON reader, and the text reader + ``from_json`` that the file check needs).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MIRROR = Path("/work/.mirror/bigcode-project+the-stack-v2/repo")
BIGCODE_FILE = "the_stack/0_repo_data/merge_gha_swh.py"
T0 = datetime(2023, 3, 1, tzinfo=UTC)
#: A recent GH Archive hour's type mix, roughly.
TYPES = {
    "PushEvent": 50,
    "CreateEvent": 12,
    "PullRequestEvent": 8,
    "WatchEvent": 8,
    "IssueCommentEvent": 7,
    "DeleteEvent": 4,
    "PullRequestReviewEvent": 3,
    "IssuesEvent": 3,
    "ForkEvent": 2,
    "ReleaseEvent": 1,
    "PullRequestReviewCommentEvent": 1,
    "MemberEvent": 1,
}
URL_FIELDS = [
    "forks",
    "archive_url",
    "assignees",
    "blobs",
    "branches",
    "collaborators",
    "comments",
    "commits",
    "compare",
    "contents",
    "contributors",
    "deployments",
    "downloads",
    "events",
    "git_commits",
    "git_refs",
    "git_tags",
    "hooks",
    "issue_comment",
    "issue_events",
    "issues",
    "keys",
    "labels",
    "languages",
    "merges",
    "milestones",
    "notifications",
    "pulls",
    "releases",
    "stargazers",
    "statuses",
    "subscribers",
    "subscription",
    "tags",
    "teams",
    "trees",
]


def repo_object(rid: int, full_name: str, rng: random.Random, fork: bool = False) -> dict:
    """A GitHub repository object with the fields the Events API gives (URL templates included)."""
    api = f"https://api.github.com/repos/{full_name}"
    obj = {
        "id": rid,
        "node_id": f"R_kgDO{rid:08d}",
        "name": full_name.split("/")[1],
        "full_name": full_name,
        "private": False,
        "owner": {"login": full_name.split("/")[0], "id": rid + 7, "type": "User", "url": "https://api.github.com/u"},
        "html_url": f"https://github.com/{full_name}",
        "description": "a repository " * rng.randint(0, 6),
        "fork": fork,
        "url": api,
        **{f"{f}_url": f"{api}/{f}{{/id}}" for f in URL_FIELDS},
        "created_at": (T0 - timedelta(days=rid % 3000)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updated_at": "2023-02-27T11:00:00Z",
        "pushed_at": "2023-02-28T12:00:00Z",
        "homepage": None,
        "size": rng.randint(0, 10**6),
        "stargazers_count": rng.randint(0, 500),
        "watchers_count": 3,
        "language": rng.choice(["Python", "JavaScript", "Go", None]),
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": rng.randint(0, 50),
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": rng.randint(0, 20),
        "license": rng.choice([None, {"key": "mit", "name": "MIT License", "spdx_id": "MIT", "url": None}]),
        "topics": [],
        "visibility": "public",
        "default_branch": rng.choice(["main", "master", "dev"]),
    }
    return obj


def generate(folder: Path, n_events: int, n_files: int, seed: int = 1) -> set[int]:
    """Write the corpus; return the ids whose latest metadata event is tied (left out of the comparison)."""
    rng = random.Random(seed)
    n_repos = max(n_events // 10, 10)
    types, weights = zip(*TYPES.items(), strict=True)
    per_file = -(-n_events // n_files)
    latest: dict[int, tuple[datetime, int]] = {}
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        hour = T0 + timedelta(hours=f)
        lines = []
        for i in range(f * per_file, min(n_events, (f + 1) * per_file)):
            k = int(n_repos ** rng.random())  # heavy head: small ids get most events
            rid, name = k, f"owner{k}/repo{k}"
            if k % 20 == 0 and f >= n_files // 2:
                name = f"owner{k}/renamed{k}"
            if k % 50 == 1 and f >= n_files // 2:
                rid = n_repos + k  # the name deleted and created again
            kind = rng.choices(types, weights)[0]
            when = hour + timedelta(seconds=rng.randrange(3600))
            payload: dict = {"action": "started"} if kind == "WatchEvent" else {"ref": "refs/heads/main", "size": 1}
            meta = None
            if kind == "ForkEvent":
                meta = repo_object(10 * n_repos + i, f"forker{i}/repo{k}", rng, fork=True)
                payload = {"forkee": meta}
            elif kind == "PullRequestEvent":
                meta = repo_object(rid, name, rng)
                head = repo_object(10 * n_repos + i, f"forker{i}/repo{k}", rng, fork=True)
                pr = {"id": i, "number": i % 1000, "state": "open", "title": "Fix " * 5, "body": "text " * 40}
                pr |= {"head": {"ref": "patch", "repo": head}, "base": {"ref": meta["default_branch"], "repo": meta}}
                payload = {"action": rng.choice(["opened", "closed"]), "number": i % 1000, "pull_request": pr}
            elif kind == "PushEvent":
                payload["commits"] = [{"sha": f"{i:040x}", "message": "update " * 8, "distinct": True}]
            if meta is not None:
                prev = latest.get(meta["id"])
                if prev is None or when > prev[0]:
                    latest[meta["id"]] = (when, 1)
                elif when == prev[0]:
                    latest[meta["id"]] = (when, prev[1] + 1)
            event = {
                "id": str(26_000_000_000 + i),
                "type": kind,
                "actor": {"id": i % 9999, "login": f"user{i % 9999}", "url": "https://api.github.com/users/u"},
                "repo": {"id": rid, "name": name, "url": f"https://api.github.com/repos/{name}"},
                "payload": payload,
                "public": True,
                "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            lines.append(json.dumps(event, separators=(",", ":")))
        (folder / f"{hour:%Y-%m-%d}-{hour.hour}.json.gz").write_bytes(
            gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6)
        )
    return {rid for rid, (_, n) in latest.items() if n > 1}


def corpus(folder: Path, n_events: int, n_files: int) -> tuple[set[int], int]:
    """The corpus (generated unless ``folder`` holds this one), its tied ids and uncompressed bytes."""
    manifest = folder / "manifest.json"
    params = {"events": n_events, "files": n_files, "version": 1}
    if manifest.exists() and json.loads(manifest.read_text())["params"] == params:
        m = json.loads(manifest.read_text())
        return set(m["tied"]), m["bytes"]
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.monotonic()
    tied = generate(folder, n_events, n_files)
    size = sum(len(gzip.decompress(p.read_bytes())) for p in folder.glob("*.json.gz"))
    manifest.write_text(json.dumps({"params": params, "tied": sorted(tied), "bytes": size}))
    print(f"generated {n_events} events ({size / 1e9:.2f} GB) in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return tied, size


def tree_cpu() -> float:
    """CPU seconds of this process and its descendants (the driver JVM, Spark's Python workers), reaped ones too."""
    kids: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stats[int(d)] = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            kids.setdefault(int(stats[int(d)][1]), []).append(int(d))
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        if pid in stats:
            total += sum(int(v) for v in stats[pid][11:15])
    return total / os.sysconf("SC_CLK_TCK")


def load_bigcode(path: str | None):
    source = (
        Path(path).read_text()
        if path
        else subprocess.check_output(["git", f"--git-dir={MIRROR}", "show", f"HEAD:{BIGCODE_FILE}"], text=True)
    )
    tmp = Path(tempfile.mkdtemp()) / "merge_gha_swh.py"
    tmp.write_text(source)
    spec = importlib.util.spec_from_file_location("merge_gha_swh", tmp)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_github_repo_data


def parse_costs(spark, events: str, pairs: int) -> None:
    """CPU seconds of the parse alone: Spark's JSON reader vs the text reader + ``from_json`` (what the file check
    needs), both with our schema and an aggregation that reads every field, interleaved."""
    from pyspark.sql import functions as F

    from pipelines.gharchive import parse, read_lines
    from stackv2.gharchive import EVENT
    from udfs.arrow import to_spark_schema

    def use_all(df) -> None:
        fields = ["type", "id", "created_at", "repo.name", "payload.forkee.full_name"]
        fields += ["payload.pull_request.base.repo.default_branch", "payload.pull_request.base.repo.license.spdx_id"]
        df.select(*[F.max(f) for f in fields]).collect()

    runs = {
        "JSON reader": lambda: use_all(spark.read.schema(to_spark_schema(EVENT)).json(events)),
        "text + from_json": lambda: use_all(parse(read_lines(spark, events))),
    }
    for _ in range(pairs):
        for name, run in runs.items():
            c0 = tree_cpu()
            run()
            print(f"parse, {name}: {tree_cpu() - c0:.1f} CPU s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--dir", default="/tmp/gharchive-bench")
    ap.add_argument("--bigcode", default=None, help=f"BigCode's {BIGCODE_FILE} (default: from the fetch mirror)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--parse-pairs", type=int, default=0, help="also time the parse alone, both ways, N times")
    args = ap.parse_args()

    from pyspark.sql import functions as F

    from pipelines._session import spark_session
    from pipelines.gharchive import build
    from stackv2.config import SparkConfig

    root = Path(args.dir)
    tied, size = corpus(root / "events", args.events, args.files)
    get_github_repo_data = load_bigcode(args.bigcode)
    spark = spark_session(
        SparkConfig(
            master=args.master,
            shuffle_partitions=8,
            driver_memory="4g",
            conf={"spark.sql.files.ignoreCorruptFiles": "true"},  # as BigCode ran it
        )
    )
    events = str(root / "events")

    def bigcode() -> None:
        get_github_repo_data(spark, events).write.mode("overwrite").parquet(str(root / "bigcode"))
        spark.catalog.clearCache()  # it persists the events

    def ours() -> None:
        build(spark, events, str(root / "ours"), partitions=8)

    times: dict[str, list[tuple[float, float]]] = {"bigcode": [], "ours": []}
    print("| run | wall s | CPU s | events/s (wall) | MB/s of JSON (wall) |\n| --- | --- | --- | --- | --- |")
    for _ in range(args.pairs):
        for name, run in (("bigcode", bigcode), ("ours", ours)):
            t0, c0 = time.monotonic(), tree_cpu()
            run()
            dt, cpu = time.monotonic() - t0, tree_cpu() - c0
            times[name].append((dt, cpu))
            print(f"| {name} | {dt:.1f} | {cpu:.1f} | {args.events / dt:,.0f} | {size / 1e6 / dt:.1f} |", flush=True)
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in times.items()}
    print(
        f"\nbest of {args.pairs}: wall ours {best['ours'][0]:.1f} s, BigCode {best['bigcode'][0]:.1f} s "
        f"({best['bigcode'][0] / best['ours'][0]:.2f}x); CPU ours {best['ours'][1]:.1f} s, "
        f"BigCode {best['bigcode'][1]:.1f} s ({best['bigcode'][1] / best['ours'][1]:.2f}x); above 1: ours faster"
    )

    parse_costs(spark, events, args.parse_pairs)
    theirs = spark.read.parquet(str(root / "bigcode")).select(
        "full_name",
        "github_id",
        F.col("github_metadata.default_branch").alias("default_branch"),
        "license_spdx_id",
        F.coalesce("star_events_count", F.lit(0)).alias("star_events_count"),
        F.coalesce("fork_events_count", F.lit(0)).alias("fork_events_count"),
        F.col("github_metadata.created_at").alias("created_at"),
        F.col("github_metadata.event_created_at").alias("event_created_at"),
        F.col("github_metadata.language").alias("language"),
    )
    mine = spark.read.parquet(str(root / "ours")).drop("latest_event_at")
    keep = ~F.col("github_id").isin(sorted(tied)) if tied else F.lit(True)
    theirs, mine = theirs.where(keep), mine.where(keep)
    only_theirs, only_mine = theirs.exceptAll(mine).count(), mine.exceptAll(theirs).count()
    print(
        f"rows: ours {mine.count():,}, BigCode {theirs.count():,} (ids with a tied latest event left out: "
        f"{len(tied)}); rows only in BigCode's: {only_theirs}, only in ours: {only_mine}"
    )


if __name__ == "__main__":
    main()
