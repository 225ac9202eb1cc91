"""Opt-out registry: validation, the matching rule, and the config digest (no Spark)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stackv2.optout.registry import (
    Matcher,
    OptOutConfig,
    Registry,
    RegistryError,
    load_registry,
    parse_registry,
    registry_fingerprint,
)


def write_jsonl(path: Path, requests: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in requests))
    return path


def match(registry: Registry, names: list[str | None], ids: list[int | None] | None = None) -> list[str | None]:
    gid = None if ids is None else pa.array(ids, pa.int64())
    return Matcher(registry).match(pa.array(names, pa.string()), gid).to_pylist()


REQUESTS = [
    {"id": "r2", "date": "2023-11-02", "user": "Alice", "repos": "all", "source": "https://example.org/1"},
    {"id": "r1", "date": "2023-11-01", "user": "bob", "repos": ["bob/Foo", {"repo": "bob/old", "github_id": 7}]},
]


def test_jsonl_registry_parsed_and_sorted_by_date(tmp_path):
    reg = load_registry(write_jsonl(tmp_path / "r.jsonl", REQUESTS))
    assert [r.id for r in reg.requests] == ["r1", "r2"]
    r1, r2 = reg.requests
    assert r2.all_repos and r2.repos == () and r2.source == "https://example.org/1"
    assert not r1.all_repos and [(e.name, e.github_id) for e in r1.repos] == [("bob/Foo", None), ("bob/old", 7)]
    assert r1.date == dt.date(2023, 11, 1) and r1.where == f"{tmp_path / 'r.jsonl'}:2"
    assert reg.sha256 == registry_fingerprint(OptOutConfig(str(tmp_path / "r.jsonl"))) != ""


def test_yaml_registry_both_layouts(tmp_path):
    body = (
        "- id: a\n  date: 2024-01-05\n  user: carol\n  repos: [all]\n"
        "- id: b\n  date: '2024-01-06'\n  user: dave\n  repos:\n"
        "    - dave/x\n    - {repo: dave/y, github_id: 3}\n"
    )
    (tmp_path / "l.yaml").write_text(body)
    (tmp_path / "m.yml").write_text("requests:\n" + "".join("  " + line + "\n" for line in body.splitlines()))
    for name in ("l.yaml", "m.yml"):
        reg = load_registry(tmp_path / name)
        assert [(r.id, r.all_repos, len(r.repos)) for r in reg.requests] == [("a", True, 0), ("b", False, 2)]
    assert load_registry(tmp_path / "l.yaml").requests[1].where.endswith("l.yaml:5")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"id": "x", "date": "2023-01-01", "user": "eve", "repos": "all"', "not valid JSON"),
        ('{"id": "x", "date": "2023-01-01", "user": "eve"}', "missing key(s) ['repos']"),
        ('{"id": "x", "date": "01/02/2023", "user": "eve", "repos": "all"}', "not an ISO date"),
        ('{"id": "x", "date": "2023-01-01", "user": "eve", "repos": ["eve"]}', "'eve' is not owner/name"),
        ('{"id": "x", "date": "2023-01-01", "user": "eve", "repos": []}', "non-empty list"),
        ('{"id": "x", "date": "2023-01-01", "user": "-eve", "repos": "all"}', "not a GitHub user"),
        ('{"id": "x", "date": "2023-01-01", "user": "eve", "repos": "all", "why": 1}', "unknown key(s) ['why']"),
        (
            '{"id": "x", "date": "2023-01-01", "user": "eve", "repos": [{"repo": "e/r", "github_id": "7"}]}',
            "github_id '7' is not a positive integer",
        ),
        ('["not", "an", "object"]', "expected an object"),
    ],
)
def test_malformed_line_named_with_file_and_line(tmp_path, line, problem):
    good = json.dumps(REQUESTS[0])
    path = tmp_path / "reg.jsonl"
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(RegistryError) as e:
        load_registry(path)
    msg = str(e.value)
    assert f"{path}:3: " in msg and problem in msg and "nothing applied" in msg
    assert f"{path}:1" not in msg


def test_every_bad_line_reported_and_duplicate_ids(tmp_path):
    path = write_jsonl(tmp_path / "reg.jsonl", [REQUESTS[0], {"id": "z"}, REQUESTS[0]])
    with pytest.raises(RegistryError) as e:
        load_registry(path)
    msg = str(e.value)
    assert "2 invalid request(s)" in msg
    assert f"{path}:2: missing key(s)" in msg
    assert f"{path}:3: duplicate request id 'r2' (first at {path}:1)" in msg


def test_yaml_errors_carry_line_numbers(tmp_path):
    path = tmp_path / "reg.yaml"
    path.write_text(
        "- id: a\n  date: 2024-01-05\n  user: carol\n  repos: all\n- id: b\n  date: 2024-01-06\n"
        "  user: dave\n  repos: [dave]\n"
    )
    with pytest.raises(RegistryError, match=r"reg\.yaml:5: repos\[0\]: 'dave' is not owner/name"):
        load_registry(path)
    path.write_text("- id: a\n  date: [unclosed\n")
    with pytest.raises(RegistryError, match=r"reg\.yaml:\d+: not valid YAML"):
        load_registry(path)


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "reg.csv").write_text("id,date\n")
    with pytest.raises(RegistryError, match="unknown format"):
        load_registry(tmp_path / "reg.csv")
    with pytest.raises(RegistryError, match="does not exist"):
        load_registry(tmp_path / "nope.jsonl")


def test_matching_is_case_insensitive(tmp_path):
    reg = load_registry(write_jsonl(tmp_path / "r.jsonl", REQUESTS))
    assert match(reg, ["ALICE/anything", "alice/x", "aliceX/y", "BOB/foo", "bob/FOO", "bob/foobar", "Bob/other"]) == [
        "r2",
        "r2",
        None,
        "r1",
        "r1",
        None,
        None,
    ]


def test_github_id_decides_where_known(tmp_path):
    reg = load_registry(write_jsonl(tmp_path / "r.jsonl", REQUESTS))
    # bob/old (id 7) renamed to carol/new: matched by id; a different repo that took the old name is not;
    # where the row's id is unknown the name decides.
    assert match(reg, ["carol/new", "bob/old", "BOB/OLD", "bob/foo"], [7, 8, None, 99]) == ["r1", None, "r1", "r1"]


def test_row_attributed_to_earliest_request(tmp_path):
    reqs = [
        {"id": "late", "date": "2024-02-01", "user": "bob", "repos": "all"},
        {"id": "early", "date": "2023-01-01", "user": "bob", "repos": ["bob/foo"]},
        {"id": "same-day", "date": "2023-01-01", "user": "bob", "repos": ["bob/bar"]},
    ]
    reg = load_registry(write_jsonl(tmp_path / "r.jsonl", reqs))
    assert match(reg, ["bob/foo", "bob/bar", "bob/baz"]) == ["early", "same-day", "late"]


def test_empty_registry_matches_nothing(tmp_path):
    (tmp_path / "r.jsonl").write_text("\n")
    assert match(load_registry(tmp_path / "r.jsonl"), ["a/b", None]) == [None, None]


def _reference(reg: Registry, name: str | None, gid: int | None) -> str | None:
    """The matching rule written row by row, independently of the vectorized ``Matcher``."""
    if name is None and gid is None:
        return None
    for r in reg.requests:
        if r.all_repos and name is not None and name.split("/")[0].lower() == r.user.lower():
            return r.id
        for e in r.repos:
            if e.github_id is not None and gid is not None:
                if e.github_id == gid:
                    return r.id
            elif name is not None and e.name.lower() == name.lower():
                return r.id
    return None


_login = st.sampled_from(["ann", "Ann", "bo", "BO", "cy-d", "e_f"])
_repo = st.builds(lambda o, n: f"{o}/{n}", _login, st.sampled_from(["x", "X", "y.js", "z-1"]))
_entry = st.one_of(_repo, st.builds(lambda r, i: {"repo": r, "github_id": i}, _repo, st.integers(1, 4)))
_request = st.builds(
    lambda i, d, u, repos: {"id": f"q{i}", "date": f"2024-01-{d:02d}", "user": u, "repos": repos or "all"},
    st.integers(),
    st.integers(1, 3),
    _login,
    st.lists(_entry, max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(
    requests=st.lists(_request, max_size=5, unique_by=lambda r: r["id"]),
    rows=st.lists(st.tuples(st.one_of(st.none(), _repo), st.one_of(st.none(), st.integers(1, 4))), max_size=12),
)
def test_vectorized_matcher_equals_row_rule(requests, rows):
    reg = parse_registry(Path("p.jsonl"), "".join(json.dumps(r) + "\n" for r in requests))
    names, ids = [n for n, _ in rows], [i for _, i in rows]
    got = match(reg, names, ids)
    assert got == [_reference(reg, n, i) for n, i in rows]
    swapped = [n.swapcase() if n else n for n in names]
    assert match(reg, swapped, ids) == got


def test_stage_hash_follows_the_registry_contents(tmp_path):
    from pipelines.runner import load_stage, stage_hash
    from stackv2.config import RunConfig

    path = write_jsonl(tmp_path / "r.jsonl", REQUESTS[:1])
    cfg = RunConfig(optout=OptOutConfig(registry=str(path)))
    stage = load_stage("optout")
    before = stage_hash(stage, cfg, "up")
    assert stage_hash(stage, cfg, "up") == before
    write_jsonl(path, REQUESTS)  # same path, new request: the stage must rerun
    assert stage_hash(stage, cfg, "up") != before
    assert stage_hash(stage, RunConfig(), "up") != before
    path.unlink()
    with pytest.raises(RegistryError, match="does not exist"):
        stage_hash(stage, cfg, "up")
