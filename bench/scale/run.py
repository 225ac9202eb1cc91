"""Run the pipeline on a generated archive and record, per stage: wall time, rows and bytes in/out, throughput,
CPU seconds, task time, shuffle bytes written/read, spill, and the peak memory of the whole process tree.

Where the numbers come from:

* stage boundaries: the runner's log callback, which also tags every Spark job with the stage name
  (``setJobGroup``), so each task of Spark's event log is attributed to a pipeline stage;
* task time, shuffle and spill: Spark's event log (``SparkListenerTaskEnd`` task metrics), the same numbers the
  Spark UI and History Server show;
* memory and CPU: the resident set size and user + system CPU time (``/proc``) of this process and every
  descendant (the JVM, its Python workers), RSS sampled every 0.2 s, CPU read at stage boundaries. CPU seconds
  do not grow when other processes compete for the cores (wall time and task time do): they are what the
  projection scales;
* rows and bytes: the stages' ``_stats.json`` and the ``length`` column of their Parquet outputs.

    python -m bench.scale.run --archive /data/scale/full --work /data/scale/full-work --label full
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from pipelines._job import PIPELINE, STATS, SUCCESS
from pipelines.runner import run_pipeline
from stackv2.config import RunConfig, from_dict, to_dict
from stackv2.stats import StageStats
from stackv2.workdir import committed_files

#: Stages the scale run covers by default: everything up to the release shards (tokenize needs a tokenizer).
DEFAULT_STAGES = ("extract", "fetch", "annotate", "exact_dedup", "near_dedup", "filter", "pii", "compose", "shards")


def tree_usage(root: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds) of ``root`` and all its descendants. CPU counts user + system time of the
    live processes and of the children they reaped (Python workers that exited), so it only grows."""
    children: dict[int, list[int]] = defaultdict(list)
    usage: dict[int, tuple[int, int]] = {}
    page, tick = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(d))
        usage[int(d)] = (int(fields[21]) * page, sum(int(x) for x in fields[11:15]))
    rss = cpu = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        r, c = usage.get(pid, (0, 0))
        rss, cpu = rss + r, cpu + c
        todo.extend(children.get(pid, ()))
    return rss, cpu / tick


class MemorySampler(threading.Thread):
    """Peak tree RSS per stage, sampled; and CPU seconds per stage (``mark`` starts the next stage)."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval, self.peaks, self.current = interval, defaultdict(int), "setup"
        self.cpu: dict[str, float] = defaultdict(float)
        self._cpu_mark = tree_usage(os.getpid())[1]
        self._halt = threading.Event()

    def mark(self, stage: str) -> None:
        now = tree_usage(os.getpid())[1]
        self.cpu[self.current] += now - self._cpu_mark
        self.current, self._cpu_mark = stage, now

    def run(self) -> None:
        while not self._halt.is_set():
            rss = tree_usage(os.getpid())[0]
            self.peaks[self.current] = max(self.peaks[self.current], rss)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self.mark("done")
        self._halt.set()
        self.join()


def task_metrics(event_dir: Path) -> dict[str, dict[str, float]]:
    """Sum of task metrics per job group (= pipeline stage) from the Spark event log(s) in ``event_dir``."""
    stage_group: dict[int, str] = {}
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for log in sorted(
        p for p in event_dir.rglob("*") if p.is_file() and p.name.startswith(("events_", "app-", "local-"))
    ):
        with log.open() as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:  # the last line of a log whose writer was killed
                    continue
                kind = ev.get("Event")
                if kind == "SparkListenerJobStart":
                    group = (ev.get("Properties") or {}).get("spark.jobGroup.id", "other")
                    for sid in ev.get("Stage IDs", []):
                        stage_group[sid] = group
                elif kind == "SparkListenerTaskEnd" and ev.get("Task Metrics"):
                    m, g = ev["Task Metrics"], out[stage_group.get(ev["Stage ID"], "other")]
                    sr, sw = m.get("Shuffle Read Metrics", {}), m.get("Shuffle Write Metrics", {})
                    g["tasks"] += 1
                    g["task_seconds"] += m.get("Executor Run Time", 0) / 1e3
                    g["jvm_cpu_seconds"] += m.get("Executor CPU Time", 0) / 1e9
                    g["shuffle_write_bytes"] += sw.get("Shuffle Bytes Written", 0)
                    g["shuffle_read_bytes"] += sr.get("Remote Bytes Read", 0) + sr.get("Local Bytes Read", 0)
                    g["spill_bytes"] += m.get("Disk Bytes Spilled", 0)
                    g["input_bytes"] += m.get("Input Metrics", {}).get("Bytes Read", 0)
                    g["peak_execution_memory"] = max(g["peak_execution_memory"], m.get("Peak Execution Memory", 0))
    return {k: dict(v) for k, v in out.items()}


def content_bytes(folder: Path) -> int:
    """Sum of the ``length`` column (bytes of file content) of a stage output, 0 when it has none."""
    total = 0
    for part in committed_files(folder):
        f = pq.ParquetFile(part)
        if "length" in f.schema_arrow.names:
            total += sum(v for v in f.read(columns=["length"]).column(0).to_pylist() if v)
    return total


def run(
    archive: Path, work: Path, stages: tuple[str, ...], master: str, partitions: int, driver_memory: str, fresh: bool
) -> dict:
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    events = work / "_eventlog"
    events.mkdir(parents=True, exist_ok=True)
    data = to_dict(RunConfig())
    data.update(
        {"work_dir": str(work), "graph": str(archive / "orc"), "content_store": str(archive), "stages": list(stages)}
    )
    data["spark"].update(
        {
            "master": master,
            "shuffle_partitions": partitions,
            "driver_memory": driver_memory,
            "conf": {
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": events.as_uri(),
                "spark.eventLog.compress": "false",
            },
        }
    )
    cfg = from_dict(RunConfig, data)
    sampler = MemorySampler()
    sampler.start()
    bounds: list[tuple[str, float]] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        if msg.endswith(" ...") and msg.startswith("[stackv2] stage "):
            from pyspark import SparkContext

            name = msg.split()[2]
            SparkContext.getOrCreate().setJobGroup(name, f"stackv2 stage {name}")
            sampler.mark(name)
            bounds.append((name, time.monotonic()))

    t0 = time.monotonic()
    error = None
    try:
        run_pipeline(cfg, log=log)
    except (Exception, KeyboardInterrupt) as e:  # keep the measurements of the stages that completed
        error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        print(f"[scale] run stopped: {error}", flush=True)
    finally:
        end = time.monotonic()
        sampler.stop()
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()  # flushes the event log
    walls = {
        name: (bounds[i + 1][1] if i + 1 < len(bounds) else end) - start for i, (name, start) in enumerate(bounds)
    }
    return {
        "archive": str(archive),
        "work": str(work),
        "error": error,
        "master": master,
        "partitions": partitions,
        "driver_memory": driver_memory,
        "cpus": os.cpu_count(),
        "load_average_end": os.getloadavg(),
        "total_wall_seconds": round(end - t0, 1),
        "peak_rss_bytes": max(sampler.peaks.values(), default=0),
        "generate": json.loads((archive / "generate.json").read_text())
        if (archive / "generate.json").exists()
        else None,
        "stages": stage_rows(work, stages, walls, sampler.cpu, sampler.peaks),
    }


def stage_rows(
    work: Path,
    stages: tuple[str, ...],
    walls: dict[str, float] | None = None,
    cpu: dict[str, float] | None = None,
    peaks: dict[str, int] | None = None,
) -> list[dict]:
    """One row per completed stage. Without ``walls`` (a run that was killed: ``--summarize``), wall time is the
    stage's own ``_stats.json`` seconds and CPU and memory are unknown."""
    metrics = task_metrics(work / "_eventlog")
    rows = []
    for name in stages:
        if not (work / name / SUCCESS).exists() or (walls is not None and name not in walls):
            continue
        st = StageStats.load(work / name / STATS)
        in_dir = work / (stages[stages.index(name) - 1] if name != stages[0] else name) / "data"
        wall = walls[name] if walls is not None else st.seconds
        bytes_in = content_bytes(in_dir)
        rows.append(
            {
                "stage": name,
                "rows_in": st.rows_in,
                "rows_out": st.rows_out,
                "rejected": st.rejected,
                "bytes_in": bytes_in,
                "bytes_out": content_bytes(work / name / "data"),
                "wall_seconds": round(wall, 1),
                "rows_per_second": round(st.rows_in / wall, 1),
                "mb_per_second": round(bytes_in / 1e6 / wall, 3),
                "cpu_seconds": round(cpu[name], 1) if cpu and name in cpu else None,
                "peak_rss_bytes": peaks.get(name) if peaks else None,
                **{k: round(v, 2) for k, v in metrics.get(name, {}).items()},
            }
        )
    return rows


def markdown(result: dict, label: str) -> str:
    head = (
        "| run | stage | rows in | rows out | MB in | wall s | CPU s | rows/s | MB/s | task s "
        "| shuffle write MB | shuffle read MB | spill MB | peak RSS GB |\n|" + "---|" * 14
    )
    lines = [head]
    for r in result["stages"]:
        cpu = "n/a" if r["cpu_seconds"] is None else r["cpu_seconds"]
        rss = "n/a" if not r["peak_rss_bytes"] else f"{r['peak_rss_bytes'] / 1e9:.2f}"
        lines.append(
            f"| {label} | {r['stage']} | {r['rows_in']} | {r['rows_out']} | {r['bytes_in'] / 1e6:.1f} "
            f"| {r['wall_seconds']} | {cpu} | {r['rows_per_second']} | {r['mb_per_second']} "
            f"| {r.get('task_seconds', 0):.0f} | {r.get('shuffle_write_bytes', 0) / 1e6:.1f} "
            f"| {r.get('shuffle_read_bytes', 0) / 1e6:.1f} | {r.get('spill_bytes', 0) / 1e6:.1f} | {rss} |"
        )
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", type=Path, required=True, help="folder written by bench.scale.generate")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--label", default="run")
    p.add_argument("--stages", default=",".join(DEFAULT_STAGES), help=f"comma-separated, from {list(PIPELINE)}")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--driver-memory", default="2g")
    p.add_argument("--resume", action="store_true", help="keep completed stages of an earlier run")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument(
        "--summarize",
        action="store_true",
        help="do not run: summarize the completed stages of an earlier (stopped) run in --work",
    )
    a = p.parse_args(argv)
    stages = tuple(a.stages.split(","))
    if a.summarize:
        result = {
            "archive": str(a.archive),
            "work": str(a.work),
            "stopped": True,
            "partitions": a.partitions,
            "stages": stage_rows(a.work, stages),
        }
    else:
        signal.signal(signal.SIGTERM, _interrupt)
        result = run(a.archive, a.work, stages, a.master, a.partitions, a.driver_memory, fresh=not a.resume)
    result["label"] = a.label
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result, a.label))


if __name__ == "__main__":
    main()
