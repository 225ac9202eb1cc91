"""Connected components of an undirected graph, distributed in Spark: alternating large-star / small-star.

Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014), the algorithm GraphFrames (not
available here) uses. Nothing is collected to the driver, and the result labels every node that has an edge with
the smallest node of its component, so it depends only on the graph, never on partitioning or arrival order.
Rounds are O(log^2 n) in the worst case.

What makes a round cheap (on small inputs Spark's cost is per stage, not per row):

- each star step is one window over the node's neighbours sorted by node: the first row is the minimum and
  ``lag`` drops repeated edges, so no ``distinct`` (a shuffle of its own) is needed anywhere;
- a job runs two rounds (small-star, large-star, twice), then checkpoints. The convergence test rides along as an
  observed metric of the large-star window (``Observation``), not as another job: when the small-star output it
  reads is a star forest (every component a star around its smallest node), large-star turns it into exactly one
  (node, component) row per node, which is the result.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Observation, Window
from pyspark.sql import functions as F

U, V = "u", "v"
VIOLATIONS = "violations"


class ComponentsDidNotConverge(RuntimeError):
    """The large-star/small-star loop hit its round limit."""


def _neighbours(edges: DataFrame) -> DataFrame:
    """Rows (u, v, m, first, new) per node u and neighbour v, v ascending: ``m`` the smallest neighbour, ``first``
    the row holding it, ``new`` whether v differs from the previous row's (repeated edges count once)."""
    by_node = Window.partitionBy(U).orderBy(V)
    previous = F.lag(V).over(by_node)
    return edges.select(
        U,
        V,
        F.first(V).over(by_node).alias("m"),
        previous.isNull().alias("first"),
        (previous.isNull() | (previous != F.col(V))).alias("new"),
    )


def _large_star(edges: DataFrame, observation: Observation) -> DataFrame:
    """Link every neighbour larger than a node to the smallest of the node's closed neighbourhood; a node smaller
    than all its neighbours also gets a (node, node) row, so a converged result lists the roots too.

    Observes ``violations``: rows that show ``edges`` is not a star forest (a node with two different smaller
    neighbours, or with both a smaller and a larger one).
    """
    # Both directions from one scan (a union would run the input's plan twice when it is not checkpointed).
    both = edges.select(
        F.inline(
            F.array(F.struct(F.col(U).alias(U), F.col(V).alias(V)), F.struct(F.col(V).alias(U), F.col(U).alias(V)))
        )
    )
    rows = _neighbours(both)
    u, v, m, new = F.col(U), F.col(V), F.col("m"), F.col("new")
    smallest = F.least(m, u)
    violation = new & ~F.col("first") & (v < u) | (v > u) & (m < u)
    observed = rows.observe(observation, F.count(F.when(violation, 1)).alias(VIOLATIONS))
    links = F.array_compact(
        F.array(
            F.when(new & (v > u), F.struct(v.alias(U), smallest.alias(V))),
            F.when(F.col("first") & (m > u), F.struct(u.alias(U), u.alias(V))),
        )
    )
    return observed.select(F.inline(links))


def _small_star(edges: DataFrame) -> DataFrame:
    """Link every node and its smaller neighbours to the smallest of them (self-links, the roots' rows of
    ``_large_star``, are dropped)."""
    down = edges.where(F.col(U) != F.col(V)).select(F.greatest(U, V).alias(U), F.least(U, V).alias(V))
    # The first row's neighbour is the minimum itself: it links the node instead.
    node = F.when(F.col("first"), F.col(U)).otherwise(F.col(V))
    return _neighbours(down).where(F.col("new")).select(node.alias(U), F.col("m").alias(V))


def connected_components(
    edges: DataFrame, src: str, dst: str, max_iterations: int = 64, rounds_per_job: int = 2
) -> DataFrame:
    """(node, component) for every node of ``edges``, one row each; ``component`` is the component's smallest node.

    ``edges`` may hold duplicates, both directions and self-loops. ``rounds_per_job`` rounds run as one job whose
    result is checkpointed locally, so the plan does not grow with the number of rounds; only the last round's
    convergence is read: a round over a converged result gives that result again, so a job that converges early
    still ends converged, and a round run past convergence is cheap next to a job's fixed cost.
    """
    current = edges.select(F.col(src).alias(U), F.col(dst).alias(V)).where(F.col(U) != F.col(V))
    for first in range(0, max_iterations, rounds_per_job):
        for i in range(first, min(first + rounds_per_job, max_iterations)):
            observation = Observation(f"components-round-{i}")
            current = _large_star(current if i == 0 else _small_star(current), observation)
        current = current.localCheckpoint()
        if not observation.get[VIOLATIONS]:
            return current.select(F.col(U).alias("node"), F.col(V).alias("component"))
    raise ComponentsDidNotConverge(f"connected components did not converge in {max_iterations} rounds")
