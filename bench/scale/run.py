"""Run the pipeline on a generated archive and record, per stage: wall time, rows and bytes in/out, throughput,
CPU seconds, task time, shuffle bytes written/read, spill, and the peak memory of the whole process tree.

Where the numbers come from:

* stage boundaries: the runner's log callback, which records when each stage starts (``_stage_starts.jsonl`` in
  the work folder); each Spark job, and so each task of Spark's event log, belongs to the stage running when the
  job was submitted (stages run one after the other; a job group would miss the jobs a stage submits from other
  threads, such as its output writes);
* task time, shuffle and spill: Spark's event log (``SparkListenerTaskEnd`` task metrics), the same numbers the
  Spark UI and History Server show;
* memory and CPU: the resident set size, the proportional set size and user + system CPU time (``/proc``) of
  this process and every descendant (the JVM, its Python daemons and workers), RSS sampled every 0.2 s and PSS
  every second, CPU read at stage boundaries, less the sampler's own CPU (it runs in this process; reported apart
  as ``sampler_cpu_seconds``). A sum of RSS counts every page shared by forked processes (the models a daemon loads
  before forking its workers) once per process; PSS splits each shared page between its sharers, so its sum is
  the memory the tree really holds. CPU seconds do not grow when other processes compete for the cores (wall
  time and task time do): they are what the projection scales;
* driver heap: the JVM's GC log (``-Xlog:gc``): the most heap left in use after a collection, per stage (after a
  full collection that is the live data; the driver's memory must not grow with the files);
* task results: the event log's ``Result Size`` of every task (what each task sends back to the driver);
* rows and bytes: the stages' ``_stats.json`` and the ``length`` column of their Parquet outputs.

    python -m bench.scale.run --archive /data/scale/full --work /data/scale/full-work --label full
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines._job import PIPELINE, STATS, SUCCESS
from pipelines._session import BASE_CONF, DRIVER_OPTIONS
from pipelines.runner import run_pipeline
from pipelines.stages.shards import PRODUCT_COL
from stackv2.config import RunConfig, from_dict, to_dict
from stackv2.stats import StageStats
from stackv2.workdir import committed_files

#: The driver's GC log and the stages' start times, in the work folder.
GC_LOG = "_gc.log"
#: Spark's local folder (shuffle files, blocks kept on disk), in the work folder so the runner can measure it.
SCRATCH = "_scratch"
STARTS = "_stage_starts.jsonl"
#: Stages the scale run covers by default: everything up to the release shards (add tokenize, with --tokenizer).
DEFAULT_STAGES = ("extract", "fetch", "annotate", "exact_dedup", "near_dedup", "filter", "pii", "compose", "shards")


def proportional_bytes(pid: int) -> int:
    """PSS of a process (``/proc/<pid>/smaps_rollup``): its private pages plus its share of each shared page."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_usage(root: int, pss: bool = False) -> tuple[int, dict[tuple[int, int], float], int]:
    """(resident bytes, CPU seconds (user + system) of each process by (pid, start time), proportional bytes when
    ``pss`` else 0) of ``root`` and all its descendants."""
    children: dict[int, list[int]] = defaultdict(list)
    usage: dict[int, tuple[int, float, int]] = {}
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
        usage[int(d)] = (int(fields[21]) * page, (int(fields[11]) + int(fields[12])) / tick, int(fields[19]))
    rss = proportional = 0
    cpu: dict[tuple[int, int], float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in usage:
            r, c, started = usage[pid]
            rss, cpu[(pid, started)] = rss + r, c
            if pss:
                proportional += proportional_bytes(pid)
        todo.extend(children.get(pid, ()))
    return rss, cpu, proportional


def process_kind(pid: int) -> str:
    """``driver`` (this process), ``jvm`` (Spark's JVM), ``python`` (pyspark's daemons and workers) or ``other``."""
    if pid == os.getpid():
        return "driver"
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return "other"
    return "jvm" if comm == "java" else "python" if comm.startswith("python") else "other"


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (files that go while it is walked count as 0)."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(parent, name)).st_size
    return total


class MemorySampler(threading.Thread):
    """Peak tree RSS and PSS per stage, sampled; CPU seconds and start times per stage (``mark`` starts the next).

    CPU counts every process ever seen in the tree, those that exited with the last value read (their parents do
    not add them: pyspark's daemon ignores SIGCHLD, so the time of the workers it forked is never reaped into its
    own), so it only grows; what a worker spends after the last sample before it exits is missed."""

    def __init__(self, interval: float = 0.2, pss_every: int = 5, scratch: Path | None = None):
        super().__init__(daemon=True)
        self.interval, self.peaks, self.current = interval, defaultdict(int), "setup"
        #: Spark's local folder (shuffle files, blocks kept on disk), whose size is read with PSS: peak per stage.
        self.scratch, self.scratch_peaks = scratch, defaultdict(int)
        #: PSS is read every ``pss_every``-th sample only: ``smaps_rollup`` walks every mapping of every process
        #: (most of the sampler's CPU), RSS and CPU come from ``stat`` at every sample.
        self.pss_every = pss_every
        self.pss_peaks: dict[str, int] = defaultdict(int)
        self.cpu: dict[str, float] = defaultdict(float)
        self.starts: list[tuple[str, float]] = [("setup", time.time())]
        self._seen: dict[tuple[int, int], float] = {}
        #: CPU seconds per stage and kind of process (``process_kind``): where a stage's CPU goes.
        self.cpu_by_kind: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._kind: dict[tuple[int, int], str] = {}
        #: CPU seconds per stage of this sampler itself (reading ``/proc``, PSS above all: ``smaps_rollup`` walks
        #: every mapping), counted in the driver's: a stage's CPU without the measurement is the difference.
        self.own_cpu: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._cpu_mark = self._cpu_total(tree_usage(os.getpid())[1])
        self._kind_mark: dict[str, float] = self._kind_totals()
        self._halt = threading.Event()

    def _cpu_total(self, cpu: dict[tuple[int, int], float]) -> float:
        with self._lock:
            self._seen.update(cpu)
            for key in cpu:  # asked again while "other": Spark's launcher scripts exec the JVM in their process
                if self._kind.get(key, "other") == "other":
                    self._kind[key] = process_kind(key[0])
            return sum(self._seen.values())

    def _kind_totals(self) -> dict[str, float]:
        with self._lock:
            totals: dict[str, float] = defaultdict(float)
            for key, seconds in self._seen.items():
                totals[self._kind.get(key, "other")] += seconds
            return totals

    def mark(self, stage: str) -> None:
        now = self._cpu_total(tree_usage(os.getpid())[1])
        self.cpu[self.current] += now - self._cpu_mark
        kinds = self._kind_totals()
        for kind, seconds in kinds.items():
            self.cpu_by_kind[self.current][kind] += seconds - self._kind_mark.get(kind, 0.0)
        self._kind_mark = kinds
        self.current, self._cpu_mark = stage, now
        self.starts.append((stage, time.time()))

    def run(self) -> None:
        samples = 0
        while not self._halt.is_set():
            before = time.thread_time()
            with_pss = samples % self.pss_every == 0
            rss, cpu, pss = tree_usage(os.getpid(), pss=with_pss)
            self._cpu_total(cpu)
            self.own_cpu[self.current] += time.thread_time() - before
            self.peaks[self.current] = max(self.peaks[self.current], rss)
            if with_pss:
                self.pss_peaks[self.current] = max(self.pss_peaks[self.current], pss)
                if self.scratch is not None:
                    self.scratch_peaks[self.current] = max(
                        self.scratch_peaks[self.current], folder_bytes(self.scratch)
                    )
            samples += 1
            self._halt.wait(self.interval)

    def pipeline_cpu(self) -> dict[str, float]:
        """CPU seconds per stage without the sampler's own (it runs in the driver's process, so it is in ``cpu``)."""
        return {stage: seconds - self.own_cpu.get(stage, 0.0) for stage, seconds in self.cpu.items()}

    def stop(self) -> None:
        self.mark("done")
        self._halt.set()
        self.join()


def stage_at(starts: list[tuple[str, float]], at: float) -> str:
    """The stage running at ``at`` (seconds since the epoch), ``starts`` being (stage, start) in time order."""
    return next((name for name, t in reversed(starts) if t <= at), "setup")


def task_metrics(event_dir: Path, starts: list[tuple[str, float]]) -> dict[str, dict[str, float]]:
    """Sum of task metrics per pipeline stage (``stage_at`` the job's submission) from the Spark event log(s) in
    ``event_dir``."""
    stage_group: dict[int, str] = {}
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    plans: dict[int, tuple[float, str]] = {}  # SQL execution -> (start, its last physical plan)
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
                    group = stage_at(starts, ev["Submission Time"] / 1e3)
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
                    g["result_bytes"] += m.get("Result Size", 0)
                    g["max_result_bytes"] = max(g["max_result_bytes"], m.get("Result Size", 0))
                elif "physicalPlanDescription" in ev:  # an SQL execution's start, or its adaptive re-plan
                    start = plans.get(ev["executionId"], (ev.get("time", 0) / 1e3, ""))[0]
                    plans[ev["executionId"]] = (start, ev["physicalPlanDescription"])
    for start, plan in plans.values():
        g = out[stage_at(starts, start)]
        for size, unit, rows in _BROADCAST.findall(plan):
            g["max_broadcast_bytes"] = max(g["max_broadcast_bytes"], float(size) * _UNITS[unit])
            g["max_broadcast_rows"] = max(g["max_broadcast_rows"], float(rows or 0))
    return {k: dict(v) for k, v in out.items()}


#: A broadcast table in an adaptive plan (its measured size, and rows when known):
#: ``BroadcastQueryStage (7), Statistics(sizeInBytes=224.5 MiB, rowCount=1.44E+4)``.
_BROADCAST = re.compile(
    r"BroadcastQueryStage \(\d+\), Statistics\(sizeInBytes=([\d.]+) (\w+)(?:, rowCount=([\d.E+]+))?"
)
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50, "EiB": 2**60}


#: A collection in a unified ``-Xlog:gc`` line: ``[<time>] GC(7) Pause Young (Allocation Failure) 300M->52M(981M)``.
_GC = re.compile(r"^\[([^\]]+)\].*GC\(\d+\) Pause (\w+).*?(\d+)M->(\d+)M\((\d+)M\)")


def heap_after_gc(gc_log: Path, starts: list[tuple[str, float]]) -> dict[str, dict[str, int]]:
    """Per stage (by wall clock, ``starts`` as ``read_starts``): the most heap in use after a collection,
    after a full collection, and the heap's size, in bytes, from the driver's GC log."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if not gc_log.exists():
        return {}
    for line in gc_log.read_text(errors="replace").splitlines():
        m = _GC.match(line)
        if not m:
            continue
        stage = stage_at(starts, datetime.fromisoformat(m[1]).timestamp())
        g, after, size = out[stage], int(m[4]) << 20, int(m[5]) << 20
        g["heap_after_gc_bytes"] = max(g["heap_after_gc_bytes"], after)
        if m[2] == "Full":
            g["heap_after_full_gc_bytes"] = max(g["heap_after_full_gc_bytes"], after)
        g["heap_bytes"] = max(g["heap_bytes"], size)
    return {k: dict(v) for k, v in out.items()}


def read_starts(work: Path) -> list[tuple[str, float]]:
    """(stage, start time) of every stage the runner started in ``work``, in time order."""
    path = work / STARTS
    lines = path.read_text().splitlines() if path.exists() else []
    return [(r["stage"], r["time"]) for r in map(json.loads, lines)]


def content_bytes(folder: Path, product: str | None = None) -> int:
    """Sum of the ``length`` column (bytes of file content; ``length_bytes`` in the release's schema) of a stage
    output, only ``product``'s rows where it has a product column; 0 when it has no length."""
    total = 0
    for part in committed_files(folder):
        names = pq.ParquetFile(part).schema_arrow.names
        length = next((c for c in ("length", "length_bytes") if c in names), None)
        if length is None:
            continue
        rows = pq.read_table(part, columns=[length, *([PRODUCT_COL] if PRODUCT_COL in names else [])])
        if product and PRODUCT_COL in names:
            rows = rows.filter(pc.equal(rows[PRODUCT_COL], product))
        total += pc.sum(rows[length]).as_py() or 0
    return total


def run(
    archive: Path,
    work: Path,
    stages: tuple[str, ...],
    master: str,
    partitions: int,
    driver_memory: str,
    fresh: bool,
    tokenizer: str = "",
    conf: dict[str, str] | None = None,
) -> dict:
    """Run ``stages`` on ``archive`` with ``conf`` (Spark settings) over the bench's own; the measurements."""
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    events = work / "_eventlog"
    events.mkdir(parents=True, exist_ok=True)
    data = to_dict(RunConfig())
    data.update(
        {"work_dir": str(work), "graph": str(archive / "orc"), "content_store": str(archive), "stages": list(stages)}
    )
    data["tokenize"]["tokenizer"] = tokenizer
    data["spark"].update(
        {
            "master": master,
            "shuffle_partitions": partitions,
            "driver_memory": driver_memory,
            "conf": {
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": events.as_uri(),
                "spark.eventLog.compress": "false",
                # each executor's (and the driver's) peak JVM heap per Spark stage (``bench.scale.cluster``)
                "spark.eventLog.logStageExecutorMetrics": "true",
                "spark.local.dir": str(work / SCRATCH),  # its size is sampled: the scratch disk a run needs
                DRIVER_OPTIONS: f"{BASE_CONF[DRIVER_OPTIONS]} -Xlog:gc:file={work / GC_LOG}:time",
                **(conf or {}),
            },
        }
    )
    cfg = from_dict(RunConfig, data)
    sampler = MemorySampler(scratch=work / SCRATCH)
    sampler.start()
    bounds: list[tuple[str, float]] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        if msg.endswith(" ...") and msg.startswith("[stackv2] stage "):
            name = msg.split()[2]
            sampler.mark(name)
            bounds.append((name, time.monotonic()))
            with (work / STARTS).open("a") as f:
                f.write(json.dumps({"stage": name, "time": sampler.starts[-1][1]}) + "\n")

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
    heap = heap_after_gc(work / GC_LOG, read_starts(work))
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
        # the whole tree from start to end: Spark's and the models' start-up ("setup") included
        # without the sampler's own CPU (``sampler_cpu_seconds``, which the driver's process spends measuring)
        "total_cpu_seconds": round(sum(sampler.pipeline_cpu().values()), 1),
        "peak_rss_bytes": max(sampler.peaks.values(), default=0),
        "peak_pss_bytes": max(sampler.pss_peaks.values(), default=0),
        "peak_scratch_bytes": max(sampler.scratch_peaks.values(), default=0),
        "peak_heap_after_gc_bytes": max((h["heap_after_gc_bytes"] for h in heap.values()), default=0),
        "generate": json.loads((archive / "generate.json").read_text())
        if (archive / "generate.json").exists()
        else None,
        "stages": [
            {**row, "peak_scratch_bytes": sampler.scratch_peaks.get(row["stage"])}
            for row in stage_rows(work, stages, walls, sampler.pipeline_cpu(), sampler.peaks, sampler.pss_peaks, heap)
        ],
        # per stage ("setup": before the first), CPU seconds of the driver, the JVM and the Python workers
        "sampler_cpu_seconds": {stage: round(v, 1) for stage, v in sampler.own_cpu.items()},
        "cpu_by_kind": {
            stage: {kind: round(v, 1) for kind, v in sorted(kinds.items())}
            for stage, kinds in sampler.cpu_by_kind.items()
        },
    }


def stage_rows(
    work: Path,
    stages: tuple[str, ...],
    walls: dict[str, float] | None = None,
    cpu: dict[str, float] | None = None,
    peaks: dict[str, int] | None = None,
    pss_peaks: dict[str, int] | None = None,
    heap: dict[str, dict[str, int]] | None = None,
) -> list[dict]:
    """One row per completed stage. Without ``walls`` (a run that was killed: ``--summarize``), wall time is the
    stage's own ``_stats.json`` seconds and CPU and process memory are unknown (the driver's heap comes from its GC
    log)."""
    metrics = task_metrics(work / "_eventlog", read_starts(work))
    rows = []
    for name in stages:
        if not (work / name / SUCCESS).exists() or (walls is not None and name not in walls):
            continue
        st = StageStats.load(work / name / STATS)
        in_dir = work / (stages[stages.index(name) - 1] if name != stages[0] else name) / "data"
        wall = walls[name] if walls is not None else st.seconds
        # tokenize reads one product of the release's rows
        bytes_in = content_bytes(in_dir, RunConfig().tokenize.product if name == "tokenize" else None)
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
                "peak_pss_bytes": pss_peaks.get(name) if pss_peaks else None,
                **(heap or {}).get(name, {}),
                **{k: round(v, 2) for k, v in metrics.get(name, {}).items()},
            }
        )
    return rows


HEAP_KEYS = ("heap_after_gc_bytes", "heap_after_full_gc_bytes")


def markdown(result: dict, label: str) -> str:
    head = (
        "| run | stage | rows in | rows out | MB in | wall s | CPU s | rows/s | MB/s | task s "
        "| shuffle write MB | shuffle read MB | spill MB | peak RSS GiB | peak PSS GiB | heap after GC MiB "
        "| heap after full GC MiB | largest task result KiB | largest broadcast MiB (rows) | peak scratch GB |\n|"
        + "---|"
        * 20
    )

    def gib(r: dict, key: str) -> str:
        return f"{r[key] / 2**30:.2f}" if r.get(key) else "n/a"

    lines = [head]
    for r in result["stages"]:
        cpu = "n/a" if r["cpu_seconds"] is None else r["cpu_seconds"]
        heap, full = (f"{r[k] >> 20}" if r.get(k) else "-" for k in HEAP_KEYS)
        lines.append(
            f"| {label} | {r['stage']} | {r['rows_in']} | {r['rows_out']} | {r['bytes_in'] / 1e6:.1f} "
            f"| {r['wall_seconds']} | {cpu} | {r['rows_per_second']} | {r['mb_per_second']} "
            f"| {r.get('task_seconds', 0):.0f} | {r.get('shuffle_write_bytes', 0) / 1e6:.1f} "
            f"| {r.get('shuffle_read_bytes', 0) / 1e6:.1f} | {r.get('spill_bytes', 0) / 1e6:.1f} "
            f"| {gib(r, 'peak_rss_bytes')} | {gib(r, 'peak_pss_bytes')} | {heap} | {full} "
            f"| {r.get('max_result_bytes', 0) / 1024:.1f} "
            f"| {r.get('max_broadcast_bytes', 0) / 2**20:.1f} ({r.get('max_broadcast_rows', 0):.0f}) "
            f"| {(r.get('peak_scratch_bytes') or 0) / 1e9:.2f} |"
        )
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--conf wants KEY=VALUE, got {text!r}")
    return key, value


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
    p.add_argument(
        "--tokenizer",
        default="",
        help="tokenizer.json for the tokenize stage (a real run's is given, e.g. StarCoder2's; default: train one "
        "on the release, tokenize.train_sample_bytes of it)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument(
        "--conf",
        action="append",
        type=_setting,
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting over the run's (repeatable); the driver's JVM options replace the bench's GC log option",
    )
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
            "stages": stage_rows(a.work, stages, heap=heap_after_gc(a.work / GC_LOG, read_starts(a.work))),
        }
    else:
        signal.signal(signal.SIGTERM, _interrupt)
        result = run(
            a.archive,
            a.work,
            stages,
            a.master,
            a.partitions,
            a.driver_memory,
            fresh=not a.resume,
            tokenizer=a.tokenizer,
            conf=dict(a.conf),
        )
    result["label"] = a.label
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result, a.label))


if __name__ == "__main__":
    main()
