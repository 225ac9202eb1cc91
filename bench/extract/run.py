"""Run stage ``extract`` alone on a graph from ``bench.extract.generate`` and report, per traversal level and for the
whole stage: wall time, task time, shuffle bytes and records, and for the stage the CPU seconds and peak resident
memory of the whole process tree (driver, JVM, Python workers).

Levels are the Spark jobs ``list_files`` describes as ``extract ...`` (``SparkContext.setJobDescription``), read from
Spark's event log; rows per level are the stage's own counts (``_stats.json`` extra ``levels``). Everything else
(repository selection, the content join, writing and checking the outputs) is reported as ``rest``. The listed files
are checked against the generator's ``expected_files``, and the stage's rows in against rows out + rejected.

    python -m bench.extract.run --graph /tmp/xs/graph --work /tmp/xs/work --json /tmp/xs/after.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import pipelines.stages.extract as extract_stage
from bench.extract.prune import pruning
from bench.scale.run import MemorySampler
from pipelines.runner import run_pipeline
from stackv2.config import RunConfig, SparkConfig
from stackv2.stats import StageStats
from stackv2.swh.config import ExtractConfig

REST = "rest"


def level_metrics(event_dir: Path) -> dict[str, dict[str, float]]:
    """Per job description (``extract level N`` ..., else ``rest``): jobs, wall seconds (while one of its jobs ran),
    task seconds, shuffle bytes written and read, shuffle records written, spill."""
    job_span: dict[int, list[float]] = {}
    stage_group: dict[int, str] = {}
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    spans: dict[str, list[list[float]]] = defaultdict(list)
    for log in sorted(p for p in event_dir.rglob("events_*") if p.is_file()):
        with log.open() as f:
            for line in f:
                ev = json.loads(line)
                kind = ev.get("Event")
                if kind == "SparkListenerJobStart":
                    group = (ev.get("Properties") or {}).get("spark.job.description") or REST
                    for sid in ev.get("Stage IDs", []):
                        stage_group[sid] = group
                    out[group]["jobs"] += 1
                    spans[group].append([ev["Submission Time"], ev["Submission Time"]])
                    job_span[ev["Job ID"]] = spans[group][-1]
                elif kind == "SparkListenerJobEnd":
                    job_span[ev["Job ID"]][1] = ev["Completion Time"]
                elif kind == "SparkListenerTaskEnd" and ev.get("Task Metrics"):
                    m, g = ev["Task Metrics"], out[stage_group.get(ev["Stage ID"], REST)]
                    sr, sw = m.get("Shuffle Read Metrics", {}), m.get("Shuffle Write Metrics", {})
                    g["tasks"] += 1
                    g["task_seconds"] += m.get("Executor Run Time", 0) / 1e3
                    g["shuffle_write_bytes"] += sw.get("Shuffle Bytes Written", 0)
                    g["shuffle_records_written"] += sw.get("Shuffle Records Written", 0)
                    g["shuffle_read_bytes"] += sr.get("Remote Bytes Read", 0) + sr.get("Local Bytes Read", 0)
                    g["spill_bytes"] += m.get("Disk Bytes Spilled", 0)
    for group, intervals in spans.items():
        out[group]["wall_seconds"] = busy(intervals) / 1e3
    return {k: dict(v) for k, v in out.items()}


def busy(intervals: list[list[float]]) -> float:
    """Length of the union of ``[start, end]`` intervals (jobs of a group run concurrently)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def run(graph: Path, work: Path, master: str, partitions: int, driver_memory: str, max_depth: int) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    events = work / "_eventlog"
    events.mkdir(parents=True)
    conf = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": events.as_uri(),
        "spark.eventLog.compress": "false",
    }
    cfg = RunConfig(
        work_dir=str(work),
        graph=str(graph / "orc"),
        stages=("extract",),
        extract=ExtractConfig(max_depth=max_depth),
        spark=SparkConfig(master=master, shuffle_partitions=partitions, driver_memory=driver_memory, conf=conf),
    )
    sampler = MemorySampler()
    sampler.start()
    t0 = time.monotonic()
    sampler.mark("extract")
    run_pipeline(cfg, log=lambda m: print(m, flush=True))
    wall = time.monotonic() - t0
    from pyspark.sql import SparkSession

    SparkSession.getActiveSession().stop()  # flushes the event log
    sampler.stop()
    stats = StageStats.load(work / "extract" / "_stats.json")
    expected = json.loads((graph / "generate.json").read_text())
    levels = level_metrics(events)
    rows = stats.extra.get("levels", [])
    return {
        "graph": str(graph),
        "master": master,
        "partitions": partitions,
        "driver_memory": driver_memory,
        "cpus": os.cpu_count(),
        "load_average_end": os.getloadavg(),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(sampler.cpu["extract"], 1),
        "peak_rss_bytes": sampler.peaks["extract"],
        "rows_in": stats.rows_in,
        "rows_out": stats.rows_out,
        "rejected": stats.rejected,
        "accounted": stats.rows_in == stats.rows_out + stats.rows_rejected,
        "expected_files": expected["expected_files"],
        "files_as_expected": stats.rows_out == expected["expected_files"],
        "extra": stats.extra,
        "levels": {k: {**v, "rows": level_rows(k, rows)} for k, v in sorted_levels(levels)},
        "total": {
            k: sum(v.get(k, 0) for v in levels.values()) for k in ("jobs", "task_seconds", "shuffle_write_bytes")
        },
    }


def level_rows(name: str, rows: list[int]) -> int | None:
    """The stage's count for ``extract level N`` (rows the level expanded)."""
    last = name.split()[-1]
    known = name.startswith("extract level ") and last.isdigit() and int(last) <= len(rows)
    return rows[int(last) - 1] if known else None


def sorted_levels(levels: dict[str, dict]) -> list[tuple[str, dict]]:
    """Levels in traversal order (by the number in their description, a level's merge after it), then the other
    ``extract ...`` groups, ``rest`` last."""

    def key(kv: tuple[str, dict]) -> tuple:
        name = kv[0]
        numbers = [int(w) for w in name.split() if w.isdigit()]
        return (name == REST, not name.startswith("extract level "), numbers, name)

    return sorted(levels.items(), key=key)


def markdown(result: dict) -> str:
    head = "| level | rows | jobs | wall s | task s | shuffle write MB | shuffle read MB | spill MB |"
    lines = [head, "|" + "---|" * 8]
    for name, m in result["levels"].items():
        lines.append(
            f"| {name} | {m['rows'] if m['rows'] is not None else ''} | {m.get('jobs', 0):.0f} "
            f"| {m.get('wall_seconds', 0):.1f} | {m.get('task_seconds', 0):.1f} "
            f"| {m.get('shuffle_write_bytes', 0) / 1e6:.1f} | {m.get('shuffle_read_bytes', 0) / 1e6:.1f} "
            f"| {m.get('spill_bytes', 0) / 1e6:.1f} |"
        )
    t = result["total"]
    lines.append(
        f"\nextract: {result['wall_seconds']} s wall, {result['cpu_seconds']} CPU s, peak RSS "
        f"{result['peak_rss_bytes'] / 1e9:.2f} GB, {t['jobs']:.0f} jobs, {t['task_seconds']:.0f} task s, "
        f"{t['shuffle_write_bytes'] / 1e6:.1f} MB shuffle written; {result['rows_out']} files "
        f"(expected {result['expected_files']}), {sum(result['rejected'].values())} rejected {result['rejected']}; "
        f"in = out + rejected: {result['accounted']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graph", type=Path, required=True, help="folder written by bench.extract.generate")
    p.add_argument("--work", type=Path, required=True, help="work folder (emptied first)")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--max-depth", type=int, default=ExtractConfig.max_depth)
    p.add_argument("--prune", action="store_true", help="prune directory_entry first (bench.extract.prune)")
    p.add_argument(
        "--merge-min-rows", type=int, default=None, help="override extract.MERGE_MIN_ROWS (0: always merge)"
    )
    p.add_argument("--label", default="run")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    a = p.parse_args(argv)
    if a.merge_min_rows is not None:
        extract_stage.MERGE_MIN_ROWS = a.merge_min_rows
    with pruning() if a.prune else nullcontext():
        result = run(a.graph, a.work, a.master, a.partitions, a.driver_memory, a.max_depth)
    result["label"] = a.label
    result["prune"] = a.prune
    result["merge_min_rows"] = getattr(extract_stage, "MERGE_MIN_ROWS", None)  # None: before the merge
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
