"""The acceptance check against BigCode's scripts (bench/fidelity/bigcode*.py): each file one side releases and the
other does not gets the class of the first decision at which the sides part, and only equal keys make a tie."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

from bench.fidelity import bigcode_diff as d
from bench.fidelity.bigcode_run import tree_levels
from stackv2.release.products import THE_STACK_V2, THE_STACK_V2_DEDUP, TRAIN_FULL

PERMISSIVE = frozenset({"MIT", "Apache-2.0"})
DAY = datetime(2023, 1, 1)


def repo(directory: str, revision: str, *, stars: int = 0, license: str | None = "MIT", branch: str = "main") -> dict:
    return {
        "directory_id": directory,
        "revision_id": revision,
        "branch_name": f"refs/heads/{branch}",
        "revision_date": DAY,
        "visit_date": DAY,
        "github_id": None,
        "star_events_count": stars,
        "fork_events_count": 0,
        "license": license,
    }


def side(repos: dict[str, dict], files: list[d.File], dedup: list[d.File] | None = None, lt: str = "permissive"):
    return d.Side(
        repos=repos,
        license_type=dict.fromkeys(files, lt),
        language={f[2]: "Python" for f in files},
        stack={f[2]: f for f in files},
        dedup=set(files if dedup is None else dedup),
    )


def classify(f, product, a, b, clusters=None):
    return d.classify(f, product, a, b, b, clusters or {}, PERMISSIVE)


def test_repository_ties_and_rules():
    src, fork = ("src/r", "a.py", "b1"), ("fork/r", "a.py", "b1")
    ours = side({"fork/r": repo("D", "R")}, [fork])
    # the same commit and branch: BigCode's revision window cannot tell the two origins apart
    assert classify(fork, THE_STACK_V2, ours, side({"src/r": repo("D", "R")}, [src])) == "tie: revision window"
    # another commit of the same tree, every key of the root-directory window equal
    assert classify(fork, THE_STACK_V2, ours, side({"src/r": repo("D", "R2")}, [src])) == "tie: root-directory window"
    # more stars decide: not a tie
    theirs = side({"src/r": repo("D", "R2", stars=5)}, [src])
    assert classify(fork, THE_STACK_V2, ours, theirs) == "repository: another origin of the tree"
    # no other origin of the tree on the other side
    assert classify(fork, THE_STACK_V2, ours, side({}, [])) == "repository: not selected"


def test_exact_dedup_tie_needs_equal_keys():
    a, b = ("x/a", "u.py", "blob"), ("y/b", "u.py", "blob")
    repos = {"x/a": repo("D1", "R1"), "y/b": repo("D2", "R2")}
    ours, theirs = side(repos, [a]), side(repos, [b])
    assert classify(a, THE_STACK_V2, ours, theirs) == "tie: exact dedup"
    # a permissive GitHub license ranks first: BigCode's window decides, no tie
    repos["y/b"] = repo("D2", "R2", license="GPL-3.0")
    assert classify(a, THE_STACK_V2, ours, theirs) == "exact dedup: another copy"
    # a null license is neither permissive nor not (``isin`` on null), unlike GPL
    repos["y/b"] = repo("D2", "R2", license=None)
    assert classify(a, THE_STACK_V2, ours, theirs) == "exact dedup: another copy"


def test_license_and_language():
    f = ("x/a", "u.py", "blob")
    repos = {"x/a": repo("D1", "R1")}
    ours = side(repos, [f])
    theirs = side(repos, [], lt="no_license")
    theirs.license_type[f] = "non_permissive"
    assert classify(f, THE_STACK_V2, ours, theirs) == "license type: permissive / non_permissive"
    theirs.license_type[f] = "permissive"
    theirs.language["blob"] = None
    assert classify(f, THE_STACK_V2, ours, theirs) == "language"


def test_near_dedup_members():
    a, b = ("x/a", "u.py", "b1"), ("y/b", "v.py", "b2")
    repos = {"x/a": repo("D1", "R1"), "y/b": repo("D2", "R2")}
    clusters = {"b1": 7, "b2": 7}
    ours = side(repos, [a, b], dedup=[a])
    theirs = side(repos, [a, b], dedup=[b])
    assert classify(a, THE_STACK_V2_DEDUP, ours, theirs, clusters) == "tie: near dedup"
    repos["y/b"] = repo("D2", "R2", stars=3)  # BigCode's --rank keeps the starred member
    assert classify(a, THE_STACK_V2_DEDUP, ours, theirs, clusters) == "near dedup: another member"
    assert classify(a, THE_STACK_V2_DEDUP, ours, theirs, {}) == "near dedup: clusters differ"
    # a training-set difference whose file already differs in -dedup
    assert classify(a, TRAIN_FULL, ours, theirs, clusters) == "follows from -dedup: near dedup: another member"
    assert d.is_tie("follows from -dedup: tie: near dedup") and not d.is_tie("follows from -dedup: language")


def test_compare_counts_and_ties():
    shared = [("x/a", f"{i}.py", f"s{i}") for i in range(97)]
    mine, yours = ("x/a", "m.py", "dup"), ("y/b", "m.py", "dup")
    repos = {"x/a": repo("D1", "R1"), "y/b": repo("D2", "R2")}
    theirs_only = ("y/b", "t.py", "t")
    ours, theirs = side(repos, [*shared, mine]), side(repos, [*shared, yours, theirs_only])
    theirs.license_type[theirs_only] = "permissive"
    ours.license_type[theirs_only] = "non_permissive"
    facts = d.Facts(theirs=theirs, ours={"reference": ours}, clusters={})
    r = d.compare("reference", THE_STACK_V2, set(ours.stack.values()), set(theirs.stack.values()), facts, PERMISSIVE)
    assert (r["both"], r["ours_only"], r["theirs_only"], r["ties"]) == (97, 1, 2, 2)
    assert r["agreement"] == 0.97 and r["agreement_without_ties"] == round(97 / 98, 4)
    assert r["classes"] == {
        "ours": {"tie: exact dedup": 1},
        "theirs": {"license type: permissive / non_permissive": 1, "tie: exact dedup": 1},
    }


def test_tree_levels_stop_after_the_first_empty_level(tmp_path):
    schema = pa.schema([("root_dir", pa.string()), ("node", pa.string())])
    for level, rows in enumerate([2, 1, 0, 0]):
        (tmp_path / f"level={level}").mkdir()
        pq.write_table(
            pa.table({"root_dir": ["r"] * rows, "node": ["n"] * rows}, schema),
            tmp_path / f"level={level}" / "p.parquet",
        )
    levels = tree_levels(str(tmp_path))(64)
    assert list(levels) == [0, 1, 2]


def test_chosen_copy_dropped_after_the_dedup():
    """BigCode chose the GPL copy and dropped it: the blob is released by our copy only (``license_first``)."""
    ours_copy, gpl_copy = ("x/a", "u.py", "blob"), ("y/b", "u.py", "blob")
    repos = {"x/a": repo("D1", "R1", license=None), "y/b": repo("D2", "R2", license="GPL-3.0", stars=9)}
    ours = side(repos, [ours_copy])
    theirs = side(repos, [])
    theirs.chosen["blob"] = gpl_copy
    assert classify(ours_copy, THE_STACK_V2, ours, theirs) == "exact dedup: chosen copy not released"
    assert d.rule("exact dedup: chosen copy not released") == "exact_dedup.license_first"
    repos["y/b"] = repo("D2", "R2", license=None)  # equal keys: BigCode's choice was arrival order
    assert classify(ours_copy, THE_STACK_V2, ours, theirs) == "tie: exact dedup"


def test_corrected_differences_name_their_rule():
    """A difference reference mode does not have is one of the rules the modes differ in; one it has keeps its
    class (here a tie)."""
    tied, tied_theirs = ("x/a", "t.py", "t"), ("x/a", "copy/t.py", "t")
    relicensed = ("x/a", "l.py", "l")
    repos = {"x/a": repo("D1", "R1")}
    corrected = side(repos, [tied, relicensed])
    theirs = side(repos, [tied_theirs])
    theirs.license_type[relicensed] = "non_permissive"
    facts = d.Facts(theirs=theirs, ours={"corrected": corrected, "reference": side(repos, [tied])}, clusters={})
    reference = {tied}  # reference mode releases the tied copy too, and agrees with BigCode on l.py
    r = d.compare("corrected", THE_STACK_V2, {tied, relicensed}, {tied_theirs}, facts, PERMISSIVE, reference)
    assert r["classes"]["ours"] == {
        "tie: exact dedup": 1,
        "annotate.license.bigcode_deadline: license type: permissive / non_permissive": 1,
    }
    assert r["classes"]["theirs"] == {"tie: exact dedup": 1}


def test_license_decision_on_the_other_sides_copy():
    """BigCode released its copy as no_license; our full ScanCode call made that copy non_permissive, so another
    copy is ours: the license decision parted the sides first, not the ranking."""
    mine, their_copy = ("x/a", "u.py", "blob"), ("y/b", "u.py", "blob")
    repos = {"x/a": repo("D1", "R1", license=None), "y/b": repo("D2", "R2", license=None, stars=5)}
    ours = side(repos, [mine])
    ours.license_type[their_copy] = "non_permissive"
    theirs = side(repos, [their_copy], lt="no_license")
    assert classify(mine, THE_STACK_V2, ours, theirs) == "license type: non_permissive / no_license"
    assert d.rule("license type: non_permissive / no_license") == "annotate.license.bigcode_deadline"


def test_gharchive_events_give_each_repository_its_row(tmp_path):
    """The generated hourly files are GH Archive's shape: ``stackv2.gharchive.reduce_events`` finds each
    repository with events, its stars, the fork's row from the ``ForkEvent``, and the license and default branch
    from the pull requests; the same repositories and seed give the same bytes."""
    import gzip
    import json

    from bench.scale.gharchive_events import EventsSpec, write_events
    from stackv2.gharchive import reduce_events

    repos = [(f"https://github.com/o/r{i}", "https://github.com/f/r0" if i == 0 else None) for i in range(6)]
    spec = EventsSpec(without_events=0.0, mean_stars=5.0)
    counts = write_events(repos, tmp_path / "a", 7, spec)
    write_events(repos, tmp_path / "b", 7, spec)
    files = sorted((tmp_path / "a").iterdir())
    assert [f.read_bytes() for f in files] == [(tmp_path / "b" / f.name).read_bytes() for f in files]
    events = [json.loads(line) for f in files for line in gzip.decompress(f.read_bytes()).splitlines()]
    assert len(events) == counts["events"] and len(files) == counts["files"]
    for e in events:
        e["created_at"] = datetime.fromisoformat(e["created_at"])
    rows = {r["full_name"]: r for r in reduce_events(events)}
    stars = sum(e["type"] == "WatchEvent" for e in events)
    assert sum(r["star_events_count"] for r in rows.values()) == stars
    assert rows["o/r0"]["fork_events_count"] == 1
    assert all(rows[f"o/r{i}"]["default_branch"] in ("main", "master") for i in range(6))
    if "f/r0" in rows:  # the fork has a row when it got stars: its metadata comes from the ForkEvent's forkee
        assert rows["f/r0"]["license_spdx_id"] == rows["o/r0"]["license_spdx_id"]
