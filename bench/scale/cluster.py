"""Run ``bench.scale.run`` against a standalone Spark cluster on loopback, so that the executors run in JVMs of
their own and the driver's GC log shows the driver alone (in local mode the driver's heap also holds the tasks'
buffers and cached blocks).

Adds, per pipeline stage, the peak JVM heap in use of the driver and of the largest executor, from the event log's
``SparkListenerStageExecutorMetrics`` (``spark.eventLog.logStageExecutorMetrics``): samples taken at heartbeats,
garbage included, so an upper bound of the live data. ``--full-gc-every`` has the driver collect its whole heap
that often (``jcmd <pid> GC.run``), so that every stage has "heap after full GC" samples in its GC log: the
driver's live data, which otherwise shows only when the JVM happens to run a full collection.

    python -m bench.scale.cluster --archive /tmp/mem/a5k --work /tmp/heapwork/w5k --label 5k --driver-memory 1g
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

from bench.scale.run import DEFAULT_STAGES, markdown, read_starts, run, stage_at
from tests.sparkcluster import standalone_cluster


def executor_heap(event_dir: Path, starts: list[tuple[str, float]]) -> dict[str, dict[str, int]]:
    """Per pipeline stage (``stage_at`` the job's submission): the peak ``JVMHeapMemory`` of the driver and the
    largest peak of any executor, in bytes."""
    stage_group: dict[int, str] = {}
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for log in sorted(p for p in event_dir.rglob("*") if p.is_file()):
        with log.open() as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if ev.get("Event") == "SparkListenerJobStart":
                    for sid in ev.get("Stage IDs", []):
                        stage_group[sid] = stage_at(starts, ev["Submission Time"] / 1e3)
                elif ev.get("Event") == "SparkListenerStageExecutorMetrics":
                    g = out[stage_group.get(ev["Stage ID"], "other")]
                    key = "driver_peak_heap_bytes" if ev["Executor ID"] == "driver" else "executor_peak_heap_bytes"
                    g[key] = max(g[key], ev["Executor Metrics"].get("JVMHeapMemory", 0))
    return {k: dict(v) for k, v in out.items()}


def driver_jvm(root: int) -> int | None:
    """The pid of the driver JVM (``SparkSubmit``, started by pyspark) among ``root``'s descendants."""
    children: dict[int, list[int]] = defaultdict(list)
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/stat") as f:
                children[int(f.read().rsplit(")", 1)[1].split()[1])].append(int(d))
        except OSError:
            continue
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"org.apache.spark.deploy.SparkSubmit" in f.read():
                    return pid
        except OSError:
            pass
        todo.extend(children.get(pid, ()))
    return None


class FullCollections(threading.Thread):
    """Every ``interval`` seconds, a full collection of the driver's heap (logged in its GC log as ``Pause Full
    (System.gc())``)."""

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.interval, self.halt = interval, threading.Event()
        self.jcmd = Path(os.path.realpath(shutil.which("java") or "java")).parent / "jcmd"

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            pid = driver_jvm(os.getpid())
            if pid is not None:
                subprocess.run([str(self.jcmd), str(pid), "GC.run"], capture_output=True, timeout=60, check=False)


def heap_table(result: dict, label: str) -> str:
    lines = [
        "| run | stage | driver heap after GC MiB | after full GC MiB | driver peak heap MiB | largest executor peak "
        "heap MiB | largest task result KiB |\n|" + "---|" * 7
    ]
    for r in result["stages"]:
        mib = [f"{r[k] >> 20}" if r.get(k) else "-" for k in HEAP_KEYS]
        lines.append(f"| {label} | {r['stage']} | {' | '.join(mib)} | {r.get('max_result_bytes', 0) / 1024:.1f} |")
    return "\n".join(lines)


HEAP_KEYS = ("heap_after_gc_bytes", "heap_after_full_gc_bytes", "driver_peak_heap_bytes", "executor_peak_heap_bytes")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", type=Path, required=True, help="folder written by bench.scale.generate")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--label", default="cluster")
    p.add_argument("--stages", default=",".join(DEFAULT_STAGES))
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--driver-memory", default="1g")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-cores", type=int, default=1)
    p.add_argument("--worker-memory", default="1g", help="also each executor's heap (Spark's default, 1g)")
    p.add_argument("--full-gc-every", type=float, default=0, help="seconds between forced full GCs of the driver")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="stackv2-cluster-") as root,
        standalone_cluster(
            Path(root), workers=a.workers, worker_cores=a.worker_cores, worker_memory=a.worker_memory
        ) as cluster,
    ):
        stages = tuple(a.stages.split(","))
        collections = FullCollections(a.full_gc_every)
        if a.full_gc_every:
            collections.start()
        result = run(a.archive, a.work, stages, cluster.master_url, a.partitions, a.driver_memory, fresh=True)
    collections.halt.set()
    heap = executor_heap(a.work / "_eventlog", read_starts(a.work))
    for r in result["stages"]:
        r.update(heap.get(r["stage"], {}))
    result.update(label=a.label, workers=a.workers, worker_cores=a.worker_cores, worker_memory=a.worker_memory)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result, a.label))
    print(heap_table(result, a.label))


if __name__ == "__main__":
    main()
