"""Generate an SWH graph export shaped like the real one where extract's traversal is hard.

The graph is written as the export's ORC tables (``stackv2.schema.GRAPH_TABLES``, several files per large table),
with git's real object ids: a directory's id is the sha1_git of its tree manifest, so identical subtrees get one id
and one set of ``directory_entry`` rows, as in the export. No content bytes are stored (extract reads only the
``content`` table). The shapes, each seeded:

* ``repos`` ordinary repositories of ``repo_files`` files in trees of a few levels;
* **forks**: the k-th most forked repository has ``max_forks / k`` forks (Zipf), each with one file edited, so
  its root (and the directories on that file's path) are new while every other subtree is the upstream's: the same
  directory ids reachable from many roots;
* **mirrors**: ``mirrors`` origins whose latest visit is the snapshot of another origin (a fork never pushed to),
  Zipf again, so one snapshot has many origins;
* **vendored**: one library tree of ``vendored_files`` files mounted by ``vendored_in`` repositories (every 7th,
  so some much forked) at different paths and depths: a hot shared directory;
* **deep**: ``deep`` repositories with a ``node_modules`` chain of ``deep_levels`` path levels whose packages are
  shared between them (each starts the same chain at a different package), and one chain deeper than
  ``extract.max_depth`` (64): reason ``too_deep``;
* **huge**: one repository of ``huge_files`` files (one directory of them holds ``flat_files``), with
  ``huge_forks`` forks;
* **history**: ``history`` earlier revisions of each repository (one file edited each), whose new directories
  no selected root reaches, as most of the export's;
* a sprinkle of what the traversal rejects: symbolic links, submodules, a duplicate name, a name that is not UTF-8,
  skipped and missing contents.

``generate.json`` records the counts and what extract must list: ``expected_files`` (regular files with archived
content, decodable paths, at most ``max_depth`` levels deep, one per selected repository and path).

    python -m bench.extract.generate --out /tmp/xs/graph            # ~200k listed files
    python -m bench.extract.generate --out /tmp/xs/small --scale 0.05
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union

import pyarrow as pa
import pyarrow.orc as orc

from stackv2.atomic import atomic_path
from stackv2.schema import GRAPH_TABLES
from stackv2.swh.archive.graph import DIR_PERMS, EXEC_PERMS, FILE_PERMS, LINK_PERMS, REV_PERMS

#: A tree: name -> subtree, or (perms, target sha1_git as bytes) for a file, link or submodule entry.
Tree = dict[bytes, Union["Tree", tuple[int, bytes]]]
VISIT = dt.datetime(2023, 9, 1)
#: Rows per ORC file of a table (the export splits its tables into many files, Spark reads them in parallel).
ROWS_PER_FILE = 200_000
#: A tree key ``name + DUPLICATE + tag`` is an entry named ``name`` (git forbids NUL in names, SWH archives trees
#: with two entries of one name as they are).
DUPLICATE = b"\0"


@dataclass(frozen=True)
class ShapeSpec:
    seed: int = 20230906
    repos: int = 300
    repo_files: tuple[int, int] = (20, 400)
    max_forks: int = 200
    mirrors: int = 300
    vendored_files: int = 3000
    vendored_in: int = 40
    deep: int = 20
    deep_levels: int = 44
    huge_files: int = 120_000
    flat_files: int = 20_000
    huge_forks: int = 1
    #: Earlier revisions per repository, one file edited each: directories no selected root reaches (the export
    #: holds every archived version; only the heads' trees are listed).
    history: int = 50
    max_depth: int = 64

    def scaled(self, factor: float) -> ShapeSpec:
        """Every count times ``factor`` (at least 1); depths unchanged."""
        n = lambda v: max(1, round(v * factor))  # noqa: E731
        return ShapeSpec(
            seed=self.seed,
            repos=n(self.repos),
            repo_files=self.repo_files,
            max_forks=n(self.max_forks),
            mirrors=n(self.mirrors),
            vendored_files=n(self.vendored_files),
            vendored_in=n(self.vendored_in),
            deep=n(self.deep),
            deep_levels=self.deep_levels,
            huge_files=n(self.huge_files),
            flat_files=n(self.flat_files),
            huge_forks=self.huge_forks,
            history=self.history,
            max_depth=self.max_depth,
        )


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data, usedforsecurity=False).digest()


def _git_id(kind: bytes, body: bytes) -> bytes:
    return _sha1(b"%s %d\0%s" % (kind, len(body), body))


class Graph:
    """The export's rows, each object once (by id)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {t: [] for t in GRAPH_TABLES}
        self.dirs: dict[int, bytes] = {}  # id(tree dict) -> directory id, for trees shared by reference
        self.dir_seen: set[bytes] = set()
        self.blobs = 0

    def blob(self, skipped: bool = False) -> bytes:
        """A new distinct blob (its bytes are a counter): rows in ``content`` (or ``skipped_content``)."""
        self.blobs += 1
        data = b"blob %d\n" % self.blobs
        sha1_git = _git_id(b"blob", data)
        hashes = {
            "sha1": _sha1(data).hex(),
            "sha1_git": sha1_git.hex(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "blake2s256": hashlib.blake2s(data).hexdigest(),
        }
        if skipped:
            self.rows["skipped_content"].append(
                {**hashes, "length": len(data), "status": "absent", "reason": "Content too large"}
            )
        else:
            self.rows["content"].append({**hashes, "length": len(data), "status": "visible", "data": None})
        return sha1_git

    def directory(self, tree: Tree) -> bytes:
        """The id of ``tree`` (git's tree hash), writing its rows the first time the id is seen."""
        known = self.dirs.get(id(tree))
        if known is not None:
            return known
        entries = []
        for key, node in tree.items():
            name = key.split(DUPLICATE)[0]
            if isinstance(node, dict):
                entries.append((name, DIR_PERMS, self.directory(node)))
            else:
                entries.append((name, node[0], node[1]))
        # git orders a tree's entries by name, a directory's name as if it ended with '/'.
        entries.sort(key=lambda e: e[0] + b"/" if e[1] == DIR_PERMS else e[0])
        manifest = b"".join(b"%o %s\0%s" % (perms, name, target) for name, perms, target in entries)
        did = _git_id(b"tree", manifest)
        self.dirs[id(tree)] = did
        if did not in self.dir_seen:
            self.dir_seen.add(did)
            self.rows["directory"].append({"id": did.hex(), "raw_manifest": None})
            kind = {DIR_PERMS: "dir", REV_PERMS: "rev"}
            for name, perms, target in entries:
                self.rows["directory_entry"].append(
                    {
                        "directory_id": did.hex(),
                        "name": name,
                        "type": kind.get(perms, "file"),
                        "target": target.hex(),
                        "perms": perms,
                    }
                )
        return did

    def revision(self, tree: Tree, message: bytes, n: int) -> bytes:
        """A git revision of ``tree`` (its date ``n`` steps before the visit); returns its id."""
        root = self.directory(tree)
        date = VISIT - dt.timedelta(days=n % 1000, seconds=n)
        stamp = int(date.timestamp())
        body = b"tree %s\nauthor a <a@example.org> %d +0000\ncommitter a <a@example.org> %d +0000\n\n%s\n" % (
            root.hex().encode(),
            stamp,
            stamp,
            message,
        )
        rev = _git_id(b"commit", body)
        self.rows["revision"].append(
            {"id": rev.hex(), "date": date, "committer_date": date, "directory": root.hex(), "type": "git"}
        )
        return rev

    def origin(self, url: str, tree: Tree | None = None, snapshot: bytes | None = None, n: int = 0) -> bytes:
        """An origin with one full visit: to a new snapshot of ``tree`` (one revision on ``refs/heads/master``,
        ``HEAD`` an alias to it) or to an existing ``snapshot``. Returns the snapshot id."""
        if snapshot is None:
            assert tree is not None
            rev = self.revision(tree, url.encode(), n)
            snapshot = _sha1(b"snapshot\0" + rev)
            self.rows["snapshot"].append({"id": snapshot.hex()})
            for name, target, kind in (
                (b"HEAD", b"refs/heads/master".hex(), "alias"),
                (b"refs/heads/master", rev.hex(), "revision"),
            ):
                self.rows["snapshot_branch"].append(
                    {"snapshot_id": snapshot.hex(), "name": name, "target": target, "target_type": kind}
                )
        self.rows["origin"].append({"id": _sha1(url.encode()).hex(), "url": url})
        self.rows["origin_visit"].append({"origin": url, "visit": 1, "date": VISIT, "type": "git"})
        self.rows["origin_visit_status"].append(
            {"origin": url, "visit": 1, "date": VISIT, "status": "full", "snapshot": snapshot.hex(), "type": "git"}
        )
        return snapshot

    def write(self, out: Path) -> dict[str, int]:
        """Each table sorted by all its columns, in files of ``ROWS_PER_FILE`` rows (byte-identical reruns)."""
        counts = {}
        for table, schema in GRAPH_TABLES.items():
            t = pa.Table.from_pylist(self.rows[table], schema=schema)
            t = t.sort_by([(c, "ascending") for c in schema.names if c not in ("data", "raw_manifest")])
            for i, start in enumerate(range(0, max(len(t), 1), ROWS_PER_FILE)):
                with atomic_path(out / table / f"{table}-{i:04d}.orc") as tmp:
                    orc.write_table(t.slice(start, ROWS_PER_FILE), str(tmp), compression="zstd")
            counts[table] = len(t)
        return counts


def random_tree(g: Graph, rng: random.Random, files: int, depth: int = 0) -> Tree:
    """A source tree of ``files`` files: some at this level, the rest split among a few subdirectories."""
    tree: Tree = {}
    here = files if files <= 8 or depth >= 6 else rng.randint(2, min(files, 12))
    for i in range(here):
        tree[b"file%d.%s" % (i, rng.choice((b"py", b"c", b"js", b"md", b"java")))] = (FILE_PERMS, g.blob())
    rest, k = files - here, 0
    while rest > 0:
        n = rest if rest < 10 else rng.randint(1, rest)
        tree[b"%s%d" % (rng.choice((b"src", b"lib", b"pkg", b"test", b"mod")), k)] = random_tree(g, rng, n, depth + 1)
        rest, k = rest - n, k + 1
    return tree


def fork_of(g: Graph, rng: random.Random, tree: Tree) -> Tree:
    """A copy of ``tree`` with one file edited: new dicts along that file's path only, every other subtree the
    same object (and directory id)."""
    copy = dict(tree)
    names = [n for n, v in copy.items() if isinstance(v, dict)]
    files = [n for n, v in copy.items() if not isinstance(v, dict) and v[0] == FILE_PERMS]
    if names and (not files or rng.random() < 0.7):
        name = rng.choice(names)
        copy[name] = fork_of(g, rng, copy[name])  # type: ignore[arg-type]
    elif files:
        copy[rng.choice(files)] = (FILE_PERMS, g.blob())
    else:
        copy[b"FORK"] = (FILE_PERMS, g.blob())
    return copy


def mount(tree: Tree, path: tuple[bytes, ...], sub: Tree) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(name, {})  # type: ignore[assignment]
    tree[path[-1]] = sub


def node_modules_chain(g: Graph, levels: int) -> list[Tree]:
    """``chain[i]``: package i of a nested ``node_modules`` chain, holding packages i+1 ... (2 path levels each)."""
    chain: list[Tree] = []
    below: Tree | None = None
    for i in reversed(range(levels // 2)):
        pkg: Tree = {
            b"package.json": (FILE_PERMS, g.blob()),
            b"index.js": (FILE_PERMS, g.blob()),
            b"README.md": (FILE_PERMS, g.blob()),
        }
        if below is not None:
            pkg[b"node_modules"] = {b"pkg%d" % (i + 1): below}
        chain.append(pkg)
        below = pkg
    return chain[::-1]


def huge_tree(g: Graph, rng: random.Random, files: int, flat: int) -> Tree:
    """A monorepo: one flat directory of ``flat`` files, the rest in ~100-file subtrees under a few top levels."""
    tree: Tree = {b"generated": {b"case%06d.json" % i: (FILE_PERMS, g.blob()) for i in range(flat)}}
    rest, k = files - flat, 0
    while rest > 0:
        n = min(rest, rng.randint(50, 150))
        mount(tree, (b"area%d" % (k % 12), b"part%d" % (k // 12 % 40), b"unit%d" % k), random_tree(g, rng, n, 2))
        rest, k = rest - n, k + 1
    return tree


def listed(tree: Tree, archived: set[bytes], max_depth: int, depth: int = 0, memo: dict | None = None) -> int:
    """Files extract lists under ``tree`` at ``depth``: regular files (not links or submodules) with an archived
    content and a UTF-8 name, at most ``max_depth`` levels deep; a name duplicated in a directory counts once."""
    memo = {} if memo is None else memo
    key = (id(tree), depth)
    if key not in memo:
        n = 0
        if depth < max_depth:
            for name, node in tree.items():
                try:
                    name.decode()
                except UnicodeDecodeError:
                    continue
                if DUPLICATE in name:  # the first entry of the name is listed (both are files here)
                    continue
                if isinstance(node, dict):
                    n += listed(node, archived, max_depth, depth + 1, memo)
                elif node[0] in (FILE_PERMS, EXEC_PERMS) and node[1] in archived:
                    n += 1
        memo[key] = n
    return memo[key]


def reachable(g: Graph, trees: Iterable[Tree]) -> set[bytes]:
    """The directory ids under ``trees`` (themselves included)."""
    seen: set[bytes] = set()
    todo = list(trees)
    while todo:
        t = todo.pop()
        if g.dirs[id(t)] not in seen:
            seen.add(g.dirs[id(t)])
            todo.extend(v for v in t.values() if isinstance(v, dict))
    return seen


def generate(spec: ShapeSpec, out: Path) -> dict:
    t0 = time.monotonic()
    rng = random.Random(spec.seed)
    g = Graph()
    roots: dict[str, Tree] = {}  # origin -> tree, for the origins with a snapshot of their own

    def add(url: str, tree: Tree) -> bytes:
        roots[url] = tree
        return g.origin(url, tree=tree, n=len(roots))

    vendored = random_tree(g, rng, spec.vendored_files)
    chain = node_modules_chain(g, spec.deep_levels)
    base: list[tuple[str, Tree, bytes]] = []
    past: list[Tree] = []
    for r in range(spec.repos):
        tree = random_tree(g, rng, rng.randint(*spec.repo_files))
        tree[b"LICENSE"] = (FILE_PERMS, g.blob())
        if r % 7 == 3 and r // 7 < spec.vendored_in:  # the same library under several paths and depths
            where = [(b"vendor", b"lib"), (b"third_party", b"lib"), (b"src", b"external", b"deps", b"lib")][r % 3]
            mount(tree, where, vendored)
        if r < spec.deep:  # a node_modules chain entered at package r % len(chain)
            tree[b"node_modules"] = {b"pkg%d" % (r % len(chain)): chain[r % len(chain)]}
        if r % 25 == 0:
            tree[b"docs"] = {b"current": (LINK_PERMS, g.blob()), b"README.md": (FILE_PERMS, g.blob())}
            tree[b"vendor_sub"] = (REV_PERMS, _sha1(b"sub%d" % r))
        if r % 50 == 1:
            tree[b"big.bin"] = (FILE_PERMS, g.blob(skipped=True))
            tree[b"lost.c"] = (FILE_PERMS, _sha1(b"missing%d" % r))
        url = f"https://github.com/owner{r % 97}/repo{r}"
        base.append((url, tree, add(url, tree)))
        old = tree
        for h in range(spec.history):
            old = fork_of(g, rng, old)
            past.append(old)  # kept alive: directory ids are cached by the dict's id()
            g.revision(old, b"%s@%d" % (url.encode(), h), h + 1)
    # Too deep: a chain of 70 levels, and two quirks of real trees (a duplicated name, a name that is not UTF-8).
    too_deep: Tree = {b"leaf.txt": (FILE_PERMS, g.blob())}
    for i in range(70):
        too_deep = {b"d%d" % i: too_deep, b"f%d.txt" % i: (FILE_PERMS, g.blob())}
    add("https://github.com/quirks/too-deep", too_deep)
    odd: Tree = {
        b"caf\xe9.txt": (FILE_PERMS, g.blob()),
        b"ok.txt": (FILE_PERMS, g.blob()),
        b"twice.txt": (FILE_PERMS, g.blob()),
        b"twice.txt" + DUPLICATE + b"1": (FILE_PERMS, g.blob()),
    }
    add("https://github.com/quirks/odd-names", odd)
    huge = huge_tree(g, rng, spec.huge_files, spec.flat_files)
    add("https://github.com/mono/huge", huge)
    for f in range(spec.huge_forks):
        add(f"https://github.com/fork{f}/huge", fork_of(g, rng, huge))
    forks = 0
    for k, (url, tree, _) in enumerate(base):
        for f in range(spec.max_forks // (k + 1)):
            add(url.replace("github.com/", f"github.com/f{f}-"), fork_of(g, rng, tree))
            forks += 1
    for m in range(spec.mirrors):  # Zipf over the first repositories: repo0's snapshot has the most origins
        k = min(int(1 / (1 - rng.random()) ** 1.0) - 1, len(base) - 1)
        g.origin(f"https://github.com/mirror{m}/{base[k][0].rsplit('/', 1)[1]}", snapshot=base[k][2])
    archived = {bytes.fromhex(r["sha1_git"]) for r in g.rows["content"]}
    # Selected repositories: one per root directory (distinct roots), mirrors add none.
    distinct = {g.directory(t): t for t in roots.values()}
    memo: dict = {}
    expected = sum(listed(t, archived, spec.max_depth, 0, memo) for t in distinct.values())
    counts = g.write(out / "orc")
    summary = {
        "spec": asdict(spec),
        "tables": counts,
        "origins": counts["origin"],
        "repositories": len(distinct),
        "forks": forks + spec.huge_forks,
        "mirrors": spec.mirrors,
        "reachable_directories": len(reachable(g, distinct.values())),
        "expected_files": expected,
        "seconds": round(time.monotonic() - t0, 1),
    }
    (out / "generate.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every count of the default shape")
    p.add_argument("--seed", type=int, default=ShapeSpec.seed)
    a = p.parse_args(argv)
    spec = ShapeSpec(seed=a.seed).scaled(a.scale)
    print(json.dumps(generate(spec, a.out), indent=2))


if __name__ == "__main__":
    main()
