"""bench.scale.cluster's reading of the event log: each stage's peak driver and executor heap."""

from __future__ import annotations

import json

from bench.scale.cluster import executor_heap


def metrics(stage: int, executor: str, heap: int) -> dict:
    return {
        "Event": "SparkListenerStageExecutorMetrics",
        "Executor ID": executor,
        "Stage ID": stage,
        "Stage Attempt ID": 0,
        "Executor Metrics": {"JVMHeapMemory": heap, "OnHeapExecutionMemory": 1},
    }


def test_peak_heaps_per_pipeline_stage(tmp_path):
    events = [
        {"Event": "SparkListenerJobStart", "Job ID": 0, "Submission Time": 10_500, "Stage IDs": [0, 1]},
        {"Event": "SparkListenerJobStart", "Job ID": 1, "Submission Time": 20_500, "Stage IDs": [2]},
        metrics(0, "driver", 300),
        metrics(0, "0", 500),
        metrics(1, "1", 700),
        metrics(1, "driver", 200),
        metrics(2, "0", 100),
        metrics(2, "driver", 50),
        metrics(9, "0", 40),  # a stage no job announced
    ]
    log = tmp_path / "eventlog_v2_app-1" / "events_1_app-1"
    log.parent.mkdir()
    log.write_text("\n".join(map(json.dumps, events)) + '\n{"Event": "cut')
    heap = executor_heap(tmp_path, [("extract", 10.0), ("fetch", 20.0)])
    assert heap == {
        "extract": {"driver_peak_heap_bytes": 300, "executor_peak_heap_bytes": 700},
        "fetch": {"driver_peak_heap_bytes": 50, "executor_peak_heap_bytes": 100},
        "other": {"executor_peak_heap_bytes": 40},
    }
