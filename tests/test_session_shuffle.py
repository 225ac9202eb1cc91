"""The session's shuffles write one sorted file per map task (``pipelines._session``: no "bypass" writer, whose
P files per task made a stage's cost grow with the square of its partitions)."""

from __future__ import annotations


def _exchange(plan):
    """The first shuffle exchange in a physical plan (depth first)."""
    if plan.getClass().getSimpleName() == "ShuffleExchangeExec":
        return plan
    children = plan.children().iterator()
    while children.hasNext():
        found = _exchange(children.next())
        if found is not None:
            return found
    return None


def test_a_few_partitions_shuffle_is_not_bypassed(spark):
    frame = spark.range(1000).repartition(4, "id")
    plan = frame._jdf.queryExecution().executedPlan()  # adaptive: its input plan holds the exchange
    dependency = _exchange(plan.inputPlan()).shuffleDependency()
    assert dependency.partitioner().numPartitions() == 4 and not dependency.mapSideCombine()
    writers = spark._jvm.org.apache.spark.shuffle.sort
    conf = spark.sparkContext._jsc.sc().conf()
    assert not writers.SortShuffleWriter.shouldBypassMergeSort(conf, dependency)
    assert writers.SortShuffleManager.canUseSerializedShuffle(dependency)  # rows sorted as bytes, not objects
    assert frame.count() == 1000
