"""Distributed connected components (large-star/small-star) against a union-find on the driver."""

from __future__ import annotations

import itertools
import random

import pytest

from pipelines.components import ComponentsDidNotConverge, connected_components

pytestmark = pytest.mark.spark


def union_find(edges: list[tuple[int, int]]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    return {x: find(x) for x in parent}


def graph() -> list[tuple[int, int]]:
    rng = random.Random(3)
    chain = [(i, i + 1) for i in range(100, 140)]  # long path: the case label propagation needs 40 rounds for
    chain_rev = [(i + 1, i) for i in range(200, 230)]  # same, edges pointing the other way
    star = [(300, i) for i in range(301, 330)]  # hub is the smallest node
    star_high = [(499, i) for i in range(400, 420)]  # hub is the largest node
    cycle = [(i, i + 1) for i in range(500, 520)] + [(520, 500)]
    noise = [(600, 600), (601, 602), (602, 601), (601, 602)]  # self-loop, both directions, duplicate
    shuffled = list(range(700, 760))
    rng.shuffle(shuffled)
    random_chain = list(itertools.pairwise(shuffled))  # a path visiting ids in random order
    sparse = [(rng.randrange(800, 900), rng.randrange(800, 900)) for _ in range(70)]
    return chain + chain_rev + star + star_high + cycle + noise + random_chain + sparse


@pytest.mark.slow
@pytest.mark.parametrize("rounds_per_job", [1, 2, 5])
def test_components_match_union_find(spark, rounds_per_job):
    """Whatever the rounds per job: a job may run rounds past convergence, which must leave the result as is."""
    edges = graph()
    df = spark.createDataFrame(edges, "a long, b long").repartition(5)
    rows = connected_components(df, "a", "b", rounds_per_job=rounds_per_job).collect()
    got = {r["node"]: r["component"] for r in rows}
    expected = union_find([(u, v) for u, v in edges if u != v])
    assert got == expected
    assert len(rows) == len(got)  # one row per node
    assert got[139] == 100 and got[329] == 300 and got[400] == 400 and got[519] == 500


def test_string_nodes_and_empty_graph(spark):
    df = spark.createDataFrame([("b", "c"), ("d", "c"), ("x", "y")], "s string, t string").repartition(2)
    got = {r["node"]: r["component"] for r in connected_components(df, "s", "t").collect()}
    assert got == {"b": "b", "c": "b", "d": "b", "x": "x", "y": "x"}
    assert connected_components(df.limit(0), "s", "t").count() == 0


def test_a_star_forest_is_the_answer_of_the_first_round(spark):
    """Input that is already stars around their smallest node (with repeats, both directions) converges in one
    round, which must still give one row per node and list the roots."""
    edges = [(1, 2), (2, 1), (1, 3), (1, 3), (5, 6), (7, 7)]
    df = spark.createDataFrame(edges, "a long, b long").repartition(3)
    expected = [(1, 1), (2, 1), (3, 1), (5, 5), (6, 5)]
    rows = connected_components(df, "a", "b", max_iterations=1).collect()
    assert sorted((r["node"], r["component"]) for r in rows) == expected
    # rounds past convergence give the same rows
    rows = connected_components(df, "a", "b", max_iterations=3, rounds_per_job=3).collect()
    assert sorted((r["node"], r["component"]) for r in rows) == expected


def test_round_limit_is_an_error(spark):
    df = spark.createDataFrame([(i, i + 1) for i in range(64)], "a long, b long")
    with pytest.raises(ComponentsDidNotConverge):
        connected_components(df, "a", "b", max_iterations=1)
