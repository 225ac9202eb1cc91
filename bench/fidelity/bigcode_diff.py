"""The comparison of ``bench.fidelity.bigcode``: per product, the files both sides release, and a class for every file
one side releases and the other does not.

A difference is traced to the first decision at which the two sides part, in BigCode's order:

* ``repository``: the file's repository is selected on one side only. When the other side selected another origin
  of the same root tree, it is a **tie** if the two candidates were equal on every key of the window that chose
  (the revision window, ``revision_date``/``branch_name``: a fork at its source's commit; or the root-directory
  window's six keys); otherwise the class names the rule.
* ``license type``: the sides' license decisions differ on the file or on the other side's copy of its blob.
* ``exact dedup``: the other side chose another copy of the blob (released, or ``chosen copy not released``:
  BigCode dropped it after choosing it): a **tie** if BigCode's keys (GitHub license permissive, stars, forks,
  revision date, visit date) are equal for the two copies.
* ``language``: the blob's language differs.
* ``near dedup``: the file is in both ``the-stack-v2`` but one ``-dedup`` only. BigCode's clusters are recomputed
  with ``intra_dedup.py``'s own functions (``generate_hash_values``, its seeded permutations, its bands) and
  union-find; a **tie** when the other side kept another member of the same cluster with equal ``--rank`` keys
  (license type, stars, forks, revision date, visit date); ``clusters differ`` when BigCode's cluster of the file
  has no member the other side kept.
* ``follows from -dedup: <class>``: a training-set difference whose file already differs in ``-dedup``;
  ``filter or compose`` otherwise.

In corrected mode, a difference reference mode does not have is labelled with the rule that decides its class
(``RULES``), or ``unlisted``.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pyarrow.dataset as ds

from bench.fidelity.bigcode_run import (
    BIGCODE_DATASET_COMMIT,
    DEFAULT_MIRRORS,
    GraphFrameShim,
    load_module,
    script_source,
)
from stackv2.release.products import THE_STACK_V2, THE_STACK_V2_DEDUP
from stackv2.workdir import committed_files

OURS, THEIRS = "ours", "theirs"
LICENSE_ORDER = ("permissive", "no_license", "non_permissive")
#: Classes that are ties BigCode broke by arrival order (docs/fidelity.md).
TIES = ("tie: revision window", "tie: root-directory window", "tie: exact dedup", "tie: near dedup")

File = tuple[str, str, str]


def is_tie(cls: str) -> bool:
    """A tie, or a training-set difference that follows from a tie in ``-dedup``."""
    return cls.removeprefix("follows from -dedup: ") in TIES


def _rows(table) -> list[dict]:
    return table.to_pylist()


def _parquet(path: Path, columns: list[str] | None = None) -> list[dict]:
    return _rows(ds.dataset(path, format="parquet", partitioning="hive").to_table(columns=columns))


def _stage(work: Path, stage: str, output: str = "data", columns: list[str] | None = None) -> list[dict]:
    return _rows(ds.dataset(committed_files(work / stage / output), format="parquet").to_table(columns=columns))


def theirs_products(theirs: Path) -> dict[str, set[File]]:
    """BigCode's ``the-stack-v2`` and ``-dedup`` files (``bigcode_run.file_lists``)."""
    out = {}
    for product in (THE_STACK_V2, THE_STACK_V2_DEDUP):
        rows = _parquet(theirs / "files" / f"{product}.parquet")
        out[product] = {(r["repo_name"], r["path"], r["blob_id"]) for r in rows}
    return out


REPO_KEYS = ("directory_id", "revision_id", "branch_name", "revision_date", "visit_date", "github_id")
REPO_KEYS += ("star_events_count", "fork_events_count", "license")


@dataclass
class Side:
    """What one side decided, by file, blob and repository."""

    repos: dict[str, dict] = field(default_factory=dict)  # repo_name -> REPO_KEYS
    license_type: dict[File, str] = field(default_factory=dict)  # every file that reached the license decision
    language: dict[str, str | None] = field(default_factory=dict)  # blob -> language
    stack: dict[str, File] = field(default_factory=dict)  # blob -> its copy in the-stack-v2
    #: blob -> the copy the exact dedup chose, released or not (BigCode's ``detected_licenses`` holds only those).
    chosen: dict[str, File] = field(default_factory=dict)
    dedup: set[File] = field(default_factory=set)

    def repo_by_dir(self) -> dict[str, list[str]]:
        out = defaultdict(list)
        for name, r in self.repos.items():
            out[r["directory_id"]].append(name)
        return out


def their_side(theirs: Path) -> Side:
    side = Side()
    for r in _parquet(theirs / "repo_data"):
        side.repos[r["full_name"]] = {k: r.get(k) for k in REPO_KEYS} | {"license": r["license_spdx_id"]}
    for r in _parquet(theirs / "detected_licenses", ["repo_name", "path", "blob_id", "license_type"]):
        side.license_type[(r["repo_name"], r["path"], r["blob_id"])] = r["license_type"]
        side.chosen[r["blob_id"]] = (r["repo_name"], r["path"], r["blob_id"])
    for f in sorted((theirs / "file_contents").rglob("*.json.gz")):
        with gzip.open(f, "rt") as lines:
            for line in lines:
                rec = json.loads(line)
                side.language[rec["blob_id"]] = rec["language"] if rec["content"] is not None else None
    for product, files in theirs_products(theirs).items():
        if product == THE_STACK_V2:
            side.stack = {b: (r, p, b) for r, p, b in files}
        else:
            side.dedup = files
    return side


def our_side(work: Path) -> Side:
    side = Side()
    for r in _stage(work, "extract", columns=["repo_name", *REPO_KEYS[:-1], "gha_license_id"]):
        side.repos.setdefault(r["repo_name"], {k: r.get(k) for k in REPO_KEYS} | {"license": r["gha_license_id"]})
    for r in _stage(work, "annotate", columns=["repo_name", "path", "blob_id", "license_type", "language"]):
        side.license_type[(r["repo_name"], r["path"], r["blob_id"])] = r["license_type"]
        side.language[r["blob_id"]] = r["language"]
    side.stack = {r["blob_id"]: (r["repo_name"], r["path"], r["blob_id"]) for r in _stage(work, "exact_dedup")}
    side.dedup = {(r["repo_name"], r["path"], r["blob_id"]) for r in _stage(work, "near_dedup")}
    return side


def their_clusters(theirs: Path, bigcode_dataset: str) -> dict[str, int]:
    """Blob -> cluster of BigCode's near-dedup, recomputed with ``intra_dedup.py``'s functions: its MinHash of each
    file of their ``the-stack-v2`` (same seeded permutations, same bands), buckets per language, union-find (the
    components ``GraphFrame.connectedComponents`` finds). Keyed by blob: ``the-stack-v2`` holds one copy per blob,
    so the blob names the file on either side, also where the exact dedup chose another copy. Files in no cluster
    are left out."""
    path = "near_deduplication/bigcode-v2/intra_dedup.py"
    sys.modules.setdefault("graphframes", SimpleNamespace(GraphFrame=GraphFrameShim))  # imported, not used here
    m = load_module("intra_dedup", script_source(bigcode_dataset, BIGCODE_DATASET_COMMIT, path), path)
    perms = (
        m.RNG.randint(1, m.MOD_PRIME, size=(250,), dtype=m.DTYPE),
        m.RNG.randint(0, m.MOD_PRIME, size=(250,), dtype=m.DTYPE),
    )  # drawn first thing in its __main__, as here
    b, r = m.optimal_param(0.7, 250)
    ranges = [(i * r, (i + 1) * r) for i in range(b)]
    rows = _parquet(theirs / "licensed_files", ["repo_name", "path", "blob_id", "content", "language_id"])
    parent = list(range(len(rows)))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    buckets: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        for band, key, _ in m.generate_hash_values(row["content"], i, 250, 5, 5, ranges, perms):
            first = buckets.setdefault((row["language_id"], band, key), i)
            parent[root(i)] = root(first)
    clustered = defaultdict(list)
    for i in range(len(rows)):
        clustered[root(i)].append(i)
    return {rows[i]["blob_id"]: c for c, members in clustered.items() if len(members) > 1 for i in members}


@dataclass
class Facts:
    theirs: Side
    ours: dict[str, Side]
    clusters: dict[str, int]

    @classmethod
    def load(cls, theirs: Path, works: dict[str, Path], bigcode_dataset: str = DEFAULT_MIRRORS["bigcode_dataset"]):
        return cls(
            their_side(theirs), {m: our_side(w) for m, w in works.items()}, their_clusters(theirs, bigcode_dataset)
        )


def _exact_key(repo: dict, permissive: frozenset[str]) -> tuple:
    return (repo["license"] in permissive if repo["license"] is not None else None, *_counts_dates(repo))


def _counts_dates(repo: dict) -> tuple:
    return (repo["star_events_count"], repo["fork_events_count"], repo["revision_date"], repo["visit_date"])


def _root_key(repo: dict) -> tuple:
    return (repo["license"], *_counts_dates(repo)[:3], repo["github_id"], repo["visit_date"])


def classify(f: File, product: str, a: Side, b: Side, theirs: Side, clusters: dict[str, int], permissive) -> str:
    """Why file ``f``, released by side ``a`` in ``product``, is not released by side ``b``."""
    repo, _, blob = f
    if repo not in b.repos:
        mine = a.repos[repo]
        rivals = [n for n in b.repo_by_dir().get(mine["directory_id"], []) if n != repo]
        if not rivals:
            return "repository: not selected"
        other = b.repos[rivals[0]]
        if mine["revision_id"] == other["revision_id"] and mine["branch_name"] == other["branch_name"]:
            return "tie: revision window"
        if _root_key(mine) == _root_key(other):
            return "tie: root-directory window"
        return "repository: another origin of the tree"
    in_b_stack = b.stack.get(blob) == f
    if product == THE_STACK_V2 or not in_b_stack:
        copy = b.stack.get(blob) or b.chosen.get(blob)  # released, or chosen and then dropped
        for g in (f, copy):  # the license decision of this copy or of the other side's, where both sides made it
            la, lb = a.license_type.get(g), b.license_type.get(g)
            if la is not None and lb is not None and la != lb:
                return f"license type: {la} / {lb}"
        if copy is not None and copy != f:
            if _exact_key(theirs.repos.get(repo, a.repos[repo]), permissive) == _exact_key(
                theirs.repos.get(copy[0], b.repos[copy[0]]), permissive
            ):
                return "tie: exact dedup"
            return (
                "exact dedup: another copy" if b.stack.get(blob) == copy else "exact dedup: chosen copy not released"
            )
        if a.license_type.get(f) != b.license_type.get(f):
            return f"license type: {a.license_type.get(f)} / {b.license_type.get(f)}"
        if a.language.get(blob) != b.language.get(blob):
            return "language"
        return "exact dedup: chosen copy not released"
    if product == THE_STACK_V2_DEDUP or (f in a.dedup) != (f in b.dedup):
        if product != THE_STACK_V2_DEDUP:
            return f"follows from -dedup: {classify(f, THE_STACK_V2_DEDUP, a, b, theirs, clusters, permissive)}"
        c = clusters.get(blob)
        kept = [g for g in b.dedup if clusters.get(g[2]) == c] if c is not None else []
        if c is None or not kept:
            return "near dedup: clusters differ"
        near = _near_key(f, theirs, a)
        tie = all(_near_key(g, theirs, b) == near for g in kept)
        return "tie: near dedup" if tie else "near dedup: another member"
    return "filter or compose"


#: The setting of ``stackv2.config.REFERENCE_RULES`` (docs/fidelity.md) that decides each class of difference.
RULES = {
    "license type": "annotate.license.bigcode_deadline",
    "exact dedup: chosen copy not released": "exact_dedup.license_first",
    "near dedup": "near_dedup.arithmetic or near_dedup.short_files",
    "repository": "extract.origin_pattern, all_fallback_branches, root_nulls_first or all_github_rows",
    # a tie broken by name in both modes moves only when a rule changed the candidates: the eligible copies, the
    # cluster's members
    "tie: exact dedup": "exact_dedup.license_first or annotate.license.bigcode_deadline (other candidates)",
    "tie: near dedup": "near_dedup.arithmetic or near_dedup.short_files (other members)",
}


def rule(cls: str) -> str | None:
    """The rule that decides class ``cls`` (a training-set difference: the rule of its ``-dedup`` difference)."""
    cls = cls.removeprefix("follows from -dedup: ")
    return next((r for prefix, r in RULES.items() if cls.startswith(prefix)), None)


def _near_key(f: File, theirs: Side, side: Side) -> tuple:
    """``--rank``'s key of ``f`` (a file of ``side``): BigCode's repository data and license type where it has them
    (a copy its exact dedup did not choose has no license type there: ``side``'s)."""
    repo = theirs.repos.get(f[0]) or side.repos.get(f[0])
    lt = theirs.license_type.get(f) or side.license_type.get(f)
    return (LICENSE_ORDER.index(lt) if lt in LICENSE_ORDER else None, *(_counts_dates(repo) if repo else ()))


def compare(
    mode: str,
    product: str,
    ours: set[File],
    theirs: set[File],
    facts: Facts,
    permissive,
    reference: set[File] | None = None,
) -> dict:
    """Counts and classes of one product in one mode. With ``reference`` (the product in reference mode; the two
    modes differ only in ``REFERENCE_RULES``), a difference that reference mode does not have is one of those
    rules': its class is prefixed with the rule (``RULES``), or ``unlisted`` when no rule decides that class; one
    that reference mode has too gets reference mode's class."""
    classes: dict[str, dict[str, int]] = {OURS: defaultdict(int), THEIRS: defaultdict(int)}

    def label(f: File, ours_only: bool) -> str:
        shared = reference is None or (f in reference) == (f in ours)
        side = facts.ours["reference" if reference is not None and shared else mode]
        a, b = (side, facts.theirs) if ours_only else (facts.theirs, side)
        cls = classify(f, product, a, b, facts.theirs, facts.clusters, permissive)
        return cls if shared else f"{rule(cls) or 'unlisted'}: {cls}"

    for f in ours - theirs:
        classes[OURS][label(f, True)] += 1
    for f in theirs - ours:
        classes[THEIRS][label(f, False)] += 1
    both, either = len(ours & theirs), len(ours | theirs)
    ties = sum(n for c in classes.values() for k, n in c.items() if is_tie(k))
    return {
        "mode": mode,
        "product": product,
        "ours": len(ours),
        "theirs": len(theirs),
        "both": both,
        "ours_only": len(ours - theirs),
        "theirs_only": len(theirs - ours),
        "agreement": round(both / max(either, 1), 4),
        "ties": ties,
        "agreement_without_ties": round(both / max(either - ties, 1), 4),
        "classes": {k: dict(sorted(v.items())) for k, v in classes.items()},
    }


def markdown(report: dict) -> str:
    lines = [
        "| mode | product | ours | BigCode | both | ours only | BigCode only | both / either | ties "
        "| both / (either − ties) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["products"]:
        lines.append(
            f"| {r['mode']} | {r['product']} | {r['ours']:,} | {r['theirs']:,} | {r['both']:,} | {r['ours_only']:,} "
            f"| {r['theirs_only']:,} | {r['agreement']:.2%} | {r['ties']:,} | {r['agreement_without_ties']:.2%} |"
        )
    lines.append("")
    for r in report["products"]:
        for side, classes in r["classes"].items():
            for k, n in classes.items():
                lines.append(f"- {r['mode']} {r['product']}, {side} only: {k}: {n}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """BigCode's scripts against themselves: two ``bigcode_run`` outputs of one archive (e.g. ``--partitions 8`` and
    ``3``) compared and classified as ours are; what differs is what BigCode's own code leaves to arrival order."""
    import argparse

    from stackv2.detect.license import load_permissive

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    p.add_argument("rerun", type=Path, help="a bigcode_run output folder, in the 'ours' column")
    p.add_argument("baseline", type=Path, help="another one of the same archive, in the 'BigCode' column")
    p.add_argument("--bigcode-dataset", default=DEFAULT_MIRRORS["bigcode_dataset"], help="git dir or checkout")
    a = p.parse_args(argv)
    baseline = their_side(a.baseline)
    facts = Facts(baseline, {"rerun": their_side(a.rerun)}, their_clusters(a.baseline, a.bigcode_dataset))
    rerun, base = theirs_products(a.rerun), theirs_products(a.baseline)
    permissive = load_permissive()
    products = [compare("rerun", q, rerun[q], base[q], facts, permissive) for q in (THE_STACK_V2, THE_STACK_V2_DEDUP)]
    print(markdown({"products": products}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
