"""Generate a large, realistic SWH-format archive for the scale run: real files, real duplicate structure.

Every file is a real file of this interpreter's site-packages (Python, C/C++ headers and sources, Cython, JSON,
text, license texts from ScanCode's data, a few binaries), placed in synthetic GitHub repositories under its real
relative path. Deterministic (seeded) choices give the duplicate structure of a real forge:

* ``exact`` of the files are byte-identical copies of a file already placed in another repository (vendoring,
  forks: The Stack v2 keeps about half of its bytes after dedup, docs/spec.md §11: 67.5 TB full, 32.1 TB dedup);
* ``near`` are near-duplicates: a copy with a few lines edited (a changed header, renamed constant);
* the rest are distinct. When the pool of real files is used up, further distinct files are a real file with
  its identifiers renamed (every 5-gram shingle changes, so MinHash sees a new document, as it should).

Each repository also gets a real license text at its root (60 % of them), so annotate's license detection works,
and 5 % of the repositories have a fork (same tree, another origin), which extract deduplicates. With
``--gharchive`` it also writes GH Archive hourly event files for them under ``<out>/gharchive``
(``bench.scale.gharchive_events``: stars, forks, licenses, default branches, some repositories without events).

    python -m bench.scale.generate --files 200000 --out /data/scale/full [--gharchive]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from swh.model.model import (
    Person,
    Revision,
    RevisionType,
    Snapshot,
    SnapshotBranch,
    SnapshotTargetType,
    TimestampWithTimezone,
)

from bench.scale.gharchive_events import write_events
from stackv2.swh.archive.graph import GraphBuilder, add_tree
from stackv2.swh.config import ArchiveConfig
from stackv2.swh.content_store import open_store

#: Share of files per kind (by count), close to a GitHub mix in which code dominates.
KINDS: dict[str, tuple[tuple[str, ...], float]] = {
    "python": ((".py", ".pyi"), 0.62),
    "c": ((".c", ".h", ".cc", ".cpp", ".hpp", ".pyx", ".pxd", ".pxi", ".f90", ".f"), 0.14),
    "web": ((".js", ".ts", ".css", ".html", ".htm"), 0.04),
    "data": ((".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".csv", ".xml"), 0.08),
    "prose": ((".txt", ".rst", ".md"), 0.10),
    "binary": ((".so", ".png", ".gz", ".ttf", ".npz"), 0.02),
}
LICENSE_SUFFIX = ".LICENSE"
MIN_BYTES, MAX_BYTES = 64, 1_000_000
_WORD = re.compile(rb"\b([A-Za-z_][A-Za-z0-9_]{3,})\b")
_KEEP = frozenset(
    b"""self None True False return import from class lambda while yield async await assert
raise except finally global continue break print elif else pass with void char int long float double
const static struct return unsigned signed sizeof typedef include define endif ifdef ifndef""".split()
)


@dataclass(frozen=True)
class ScaleSpec:
    files: int
    seed: int = 20230906
    #: Fraction of files that are exact copies of an earlier file, and near-duplicate edits of one.
    exact: float = 0.25
    near: float = 0.15
    #: Files per repository are drawn uniformly from this range.
    repo_files: tuple[int, int] = (20, 300)
    #: Share of repositories that have a fork: another origin with the same tree (extract keeps one).
    forks: float = 0.05
    license_share: float = 0.6
    #: Also write GH Archive event files for the repositories (``bench.scale.gharchive_events``).
    gharchive: bool = False


def pool(root: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Real files under ``root`` by kind (sorted, so the pool is the same on every run) and license texts."""
    by_suffix = {s: k for k, (suffixes, _) in KINDS.items() for s in suffixes}
    kinds: dict[str, list[Path]] = {k: [] for k in KINDS}
    licenses = []
    for p in sorted(root.rglob("*")):
        if "__pycache__" in p.parts or not p.is_file() or p.is_symlink():
            continue
        size = p.stat().st_size
        if not MIN_BYTES <= size <= MAX_BYTES:
            continue
        if p.suffix == LICENSE_SUFFIX:
            licenses.append(p)
        elif p.suffix in by_suffix:
            kinds[by_suffix[p.suffix]].append(p)
    return kinds, licenses


def rename_identifiers(data: bytes, tag: bytes) -> bytes:
    """A distinct document made from a real one: identifiers (not keywords) get a suffix."""
    return _WORD.sub(lambda m: m.group(1) if m.group(1) in _KEEP else m.group(1) + tag, data)


def real_file(path: Path, cycle: int) -> bytes:
    """The ``cycle``-th distinct document made from a real file: the file itself, then renamed versions of it."""
    data = path.read_bytes()
    return rename_identifiers(data, b"_v%d" % cycle) if cycle else data


def near_edit(data: bytes, rng: random.Random) -> bytes:
    """A near-duplicate: a new first line and about 3 % of the lines edited."""
    lines = data.split(b"\n")
    for i in rng.sample(range(len(lines)), max(1, len(lines) // 33)):
        lines[i] = lines[i] + b"  # patched" if rng.random() < 0.5 else lines[i].replace(b"1", b"2")
    return b"# vendored copy, local patches\n" + b"\n".join(lines)


def generate(spec: ScaleSpec, out: Path, source: Path, progress: bool = True) -> dict:
    rng = random.Random(spec.seed)
    kinds, licenses = pool(source)
    order = {k: rng.sample(v, len(v)) for k, v in kinds.items() if v}
    weights = [KINDS[k][1] for k in order]
    used = dict.fromkeys(order, 0)
    builder = GraphBuilder(open_store(str(out)), ArchiveConfig())
    # Distinct files so far, to copy and edit: where each came from, not its bytes (a 1M-file archive's would not
    # fit in memory); reading and renaming again gives the same bytes.
    placed: list[tuple[tuple[str, ...], Path, int]] = []
    counts = {"exact": 0, "near": 0, "distinct": 0, "renamed": 0, "bytes": 0, "repos": 0, "forks": 0}
    person = Person.from_fullname(b"scale <scale@example.org>")
    when = TimestampWithTimezone.from_datetime(builder.visit_date)
    t0, made = time.monotonic(), 0
    repos: list[tuple[str, str | None]] = []  # (origin, its fork's origin): GH Archive's events describe them
    while made < spec.files:
        n = min(rng.randint(*spec.repo_files), spec.files - made)
        repo: dict[tuple[str, ...], bytes] = {}
        if rng.random() < spec.license_share:
            repo[("LICENSE",)] = builder.add_content(rng.choice(licenses).read_bytes())
        for _ in range(n):
            r = rng.random()
            if placed and r < spec.exact + spec.near:
                rel, path, cycle = rng.choice(placed)
                data, what = real_file(path, cycle), "exact" if r < spec.exact else "near"
                if what == "near":
                    data = near_edit(data, rng)
            else:
                kind = rng.choices(list(order), weights)[0]
                path = order[kind][used[kind] % len(order[kind])]
                cycle = used[kind] // len(order[kind])
                used[kind] += 1
                rel, data, what = (
                    path.relative_to(source).parts,
                    real_file(path, cycle),
                    "renamed" if cycle else "distinct",
                )
                if kind != "binary":
                    placed.append((rel, path, cycle))
            while rel in repo:
                rel = ("copy", *rel)
            repo[rel] = builder.add_content(data)
            counts[what] += 1
            counts["bytes"] += len(data)
        made += n
        rev = Revision(
            message=b"snapshot\n",
            author=person,
            committer=person,
            date=when,
            committer_date=when,
            type=RevisionType.GIT,
            directory=add_tree(builder, repo),
            synthetic=True,
        )
        builder.add_revision(rev)
        snap = builder.add_snapshot(
            Snapshot(
                branches={
                    b"HEAD": SnapshotBranch(target=b"refs/heads/main", target_type=SnapshotTargetType.ALIAS),
                    b"refs/heads/main": SnapshotBranch(target=rev.id, target_type=SnapshotTargetType.REVISION),
                }
            )
        )
        repos.append((f"https://github.com/scale-{counts['repos'] % 97}/repo-{counts['repos']}", None))
        builder.add_visit(repos[-1][0], snap)
        if counts["repos"] % round(1 / spec.forks) == 0:  # every 20th repository, the first one included
            repos[-1] = (repos[-1][0], f"https://github.com/fork-{counts['repos'] % 89}/repo-{counts['repos']}")
            builder.add_visit(repos[-1][1], snap)
            counts["forks"] += 1
        counts["repos"] += 1
        if progress and counts["repos"] % 100 == 0:
            print(f"  {made} files, {counts['bytes'] / 1e9:.2f} GB, {time.monotonic() - t0:.0f}s", file=sys.stderr)
    tables = builder.write(out / "orc")
    summary = {
        "spec": spec.__dict__,
        **counts,
        "contents": tables["content"],
        "graph": str(out / "orc"),
        "content_store": str(out),
        "seconds": round(time.monotonic() - t0, 1),
    }
    if spec.gharchive:
        summary["gharchive"] = write_events(repos, out / "gharchive", spec.seed)
    (out / "generate.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def site_packages() -> Path:
    return Path(next(p for p in sys.path if p.endswith("site-packages")))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, required=True, help="files to generate (full scale run: 200000)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=ScaleSpec.seed)
    p.add_argument("--source", type=Path, default=None, help="folder of real files (default: site-packages)")
    p.add_argument("--gharchive", action="store_true", help="also write GH Archive event files under OUT/gharchive")
    a = p.parse_args(argv)
    spec = ScaleSpec(files=a.files, seed=a.seed, gharchive=a.gharchive)
    summary = generate(spec, a.out, a.source or site_packages())
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
