"""Connected components of an undirected graph, distributed in Spark: alternating large-star / small-star.

Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014), the algorithm GraphFrames (not
available here) uses. Each star step is one window minimum per node over the edge DataFrame (one shuffle, where
an aggregation joined back would take two); nothing is collected to the driver. The result labels every node
that has an edge with the smallest node of its component, so it depends only on the graph, never on
partitioning or arrival order. Rounds are O(log^2 n) in the worst case.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

U, V = "u", "v"


class ComponentsDidNotConverge(RuntimeError):
    """The large-star/small-star loop hit its round limit."""


def _large_star(edges: DataFrame) -> DataFrame:
    """Link every neighbour larger than a node to the smallest of the node's closed neighbourhood.

    No ``distinct`` here: duplicates are harmless to ``_small_star``, which removes them.
    """
    both = edges.union(edges.select(F.col(V).alias(U), F.col(U).alias(V)))
    smallest = F.least(F.min(V).over(Window.partitionBy(U)), F.col(U))
    return both.select(U, V, smallest.alias("m")).where(F.col(V) > F.col(U)).select(F.col(V).alias(U),
                                                                                      F.col("m").alias(V))


def _small_star(edges: DataFrame) -> DataFrame:
    """Link every node and its smaller neighbours to the smallest of them."""
    down = edges.select(F.greatest(U, V).alias(U), F.least(U, V).alias(V))
    linked = down.select(U, V, F.min(V).over(Window.partitionBy(U)).alias("m"))
    return (
        linked.where(F.col(V) != F.col("m"))
        .select(F.col(V).alias(U), F.col("m").alias(V))
        .union(linked.select(U, F.col("m").alias(V)))
        .distinct()
    )


def _is_star_forest(edges: DataFrame) -> bool:
    """Every node points to at most one node, and no pointed-to node points on: each star is a whole component.

    One aggregation: per node, its out-degree and whether anything points to it.
    """
    ends = edges.select(F.col(U).alias("n"), F.lit(1).alias("out"), F.lit(0).alias("inc")).union(
        edges.select(F.col(V).alias("n"), F.lit(0).alias("out"), F.lit(1).alias("inc"))
    )
    degrees = ends.groupBy("n").agg(F.sum("out").alias("out"), F.max("inc").alias("inc"))
    return degrees.where((F.col("out") > 1) | ((F.col("out") > 0) & (F.col("inc") > 0))).isEmpty()


def connected_components(edges: DataFrame, src: str, dst: str, max_iterations: int = 64) -> DataFrame:
    """(node, component) for every node of ``edges``; ``component`` is the component's smallest node.

    ``edges`` may hold duplicates, both directions and self-loops. Each round's result is checkpointed locally
    so the plan does not grow with the number of rounds.
    """
    current = (
        edges.select(F.col(src).alias(U), F.col(dst).alias(V))
        .where(F.col(U) != F.col(V))
        .select(F.greatest(U, V).alias(U), F.least(U, V).alias(V))
        .distinct()
        .localCheckpoint()
    )
    for _ in range(max_iterations):
        current = _small_star(_large_star(current)).localCheckpoint()
        if _is_star_forest(current):
            roots = current.select(F.col(V).alias(U), F.col(V)).distinct()
            return current.union(roots).select(F.col(U).alias("node"), F.col(V).alias("component"))
    raise ComponentsDidNotConverge(f"connected components did not converge in {max_iterations} rounds")
