"""Where the ``near_dedup`` stage's CPU goes: CPU seconds by process and thread kind, and by Spark job.

Runs the stage in this process as ``bench.dedup.systems`` does (Spark ``local[2]``, through the stage contract) on a
corpus written by ``bench.dedup.run`` (``WORK/corpus``), with Spark's event log on, while a thread reads every
thread's CPU time of the process tree from /proc every 250 ms (a thread's last 250 ms before it ends are missed).
Thread kinds of the JVM come from their names (JIT compilers, garbage collector, task threads, the rest); Python
processes are this driver or Spark's Python workers (the daemon and the processes it forks). Each job of the event
log gets the CPU of every kind spent between its submission and its end (jobs that overlap share theirs).

    python -m bench.dedup.profile work/bench-dedup/x16 [--verify]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path

from bench.dedup.run import _TICKS, _tree
from stackv2.dedup.config import DedupConfig

#: JVM thread names (``/proc/.../comm``, 15 characters) by prefix -> kind.
JVM_KINDS = (
    ("C2 Compiler", "jvm jit"),
    ("C1 Compiler", "jvm jit"),
    ("GC Thread", "jvm gc"),
    ("ParGC", "jvm gc"),
    ("VM Thread", "jvm gc"),
    ("G1 ", "jvm gc"),
    ("Executor task", "jvm tasks"),
    ("main", "jvm start-up (main thread)"),
)


def _kind(pid: int, own: int, tid: int, comm: str, cmdline: str) -> str:
    if tid == threading.get_native_id():
        return "profiler (this sampler)"
    if pid == own:
        return "python driver"
    if "java" in cmdline:
        return next((kind for prefix, kind in JVM_KINDS if comm.startswith(prefix)), "jvm other (driver, shuffle)")
    return "python workers"


class ThreadSampler(threading.Thread):
    """Cumulative CPU seconds per (process, thread) of this process tree, with each one's kind; a time series of
    the per-kind totals for attributing CPU to time windows."""

    def __init__(self, interval: float = 0.25):
        super().__init__(daemon=True)
        self.interval = interval
        self.cpu: dict[tuple[int, int], float] = {}
        self.kinds: dict[tuple[int, int], str] = {}
        self.names: dict[tuple[int, int], str] = {}
        self.series: list[tuple[float, dict[str, float]]] = []
        self._done = threading.Event()

    def sample(self) -> None:
        own = os.getpid()
        for pid in _tree(own):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                key = (pid, int(tid))
                self.cpu[key] = (int(stat[11]) + int(stat[12])) / _TICKS
                if key not in self.kinds:
                    self.kinds[key] = _kind(pid, own, key[1], comm, cmdline)
                    self.names[key] = comm.rstrip("0123456789#-")
        self.series.append((time.time(), self.totals()))

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for key, seconds in self.cpu.items():
            out[self.kinds[key]] += seconds
        return dict(out)

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            time.sleep(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample()

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per kind spent between two wall-clock times (nearest samples)."""

        def at(t: float) -> dict[str, float]:
            return min(self.series, key=lambda s: abs(s[0] - t))[1]

        a, b = at(start), at(end)
        return {k: round(b.get(k, 0.0) - a.get(k, 0.0), 2) for k in b}


def jobs(events: Path) -> list[dict]:
    """One dict per job of the event log: its SQL execution and action, submission and completion (epoch s), stages,
    tasks, and the tasks' executor CPU and run time (JVM side; Python workers' time shows in the run time only)."""
    by_job, stage_job, descriptions = {}, {}, {}
    lines = [line for log in sorted(events.rglob("events_*")) for line in log.read_text().splitlines()]
    for line in lines:
        e = json.loads(line)
        kind = e["Event"]
        if kind == "SparkListenerJobStart":
            props = e.get("Properties") or {}
            by_job[e["Job ID"]] = {
                "job": e["Job ID"],
                "start": e["Submission Time"] / 1000,
                "stages": len(e["Stage IDs"]),
                "tasks": 0,
                "task_cpu_s": 0.0,
                "task_run_s": 0.0,
                "execution": int(props.get("spark.sql.execution.id", -1)),
            }
            stage_job.update(dict.fromkeys(e["Stage IDs"], e["Job ID"]))
        elif kind.endswith("SQLExecutionStart"):
            descriptions[e["executionId"]] = e["description"].split(" at ")[0]
        elif kind == "SparkListenerJobEnd":
            by_job[e["Job ID"]]["end"] = e["Completion Time"] / 1000
        elif kind == "SparkListenerTaskEnd" and e.get("Task Metrics"):
            job = by_job[stage_job[e["Stage ID"]]]
            m = e["Task Metrics"]
            job["tasks"] += 1
            job["task_cpu_s"] += (m["Executor CPU Time"] + m["Executor Deserialize CPU Time"]) / 1e9
            job["task_run_s"] += (m["Executor Run Time"] + m["Executor Deserialize Time"]) / 1e3
    for job in by_job.values():
        job["action"] = descriptions.get(job["execution"], "?")
    return sorted(by_job.values(), key=lambda j: j["start"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path, help="a scale's folder of bench.dedup.run (holds corpus/)")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--conf", nargs="*", default=[], metavar="KEY=VALUE", help="extra Spark settings to try")
    args = ap.parse_args()
    args.work = args.work.resolve()
    events = args.work / "_eventlog"
    shutil.rmtree(events, ignore_errors=True)
    shutil.rmtree(args.work / "near_dedup", ignore_errors=True)
    events.mkdir(parents=True)
    sampler = ThreadSampler()
    sampler.start()
    t0 = time.time()
    from pipelines._job import StageContext, run_stage
    from pipelines._session import spark_session
    from pipelines.stages import near_dedup
    from stackv2.config import RunConfig, SparkConfig, stable_hash, to_dict

    cfg = dataclasses.replace(DedupConfig(), verify=args.verify)
    conf = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": events.as_uri(),
        "spark.eventLog.compress": "false",
    }
    conf.update(kv.split("=", 1) for kv in args.conf)
    spark_cfg = SparkConfig(master="local[2]", driver_memory="2g", shuffle_partitions=8, conf=conf)
    run_cfg = RunConfig(work_dir=str(args.work), spark=spark_cfg, near_dedup=cfg)
    spark = spark_session(spark_cfg)
    t_session = time.time()
    ctx = StageContext(
        spark=spark, cfg=run_cfg, work_dir=args.work, previous="corpus", config_hash=stable_hash(to_dict(cfg))
    )
    run_stage(ctx, "near_dedup", near_dedup.run)
    t_stage = time.time()
    spark.stop()
    sampler.stop()
    t_end = time.time()
    phases = {
        "session start": sampler.between(t0, t_session),
        "stage": sampler.between(t_session, t_stage),
        "stop": sampler.between(t_stage, t_end),
    }
    job_rows = jobs(events)
    for job in job_rows:
        job["cpu"] = sampler.between(job["start"], job["end"])
    # One row per SQL execution (a Spark action of the stage: its jobs, from the first one's start to the last
    # one's end); executions that overlap (the concurrent writes) share their CPU.
    executions = defaultdict(list)
    for job in job_rows:
        if job["execution"] >= 0:  # jobs outside any SQL execution (RDD jobs) are in the job table only
            executions[(job["execution"], job["action"])].append(job)
    for (execution, action), members in executions.items():
        start, end = min(j["start"] for j in members), max(j["end"] for j in members)
        cpu = sampler.between(start, end)
        print(
            f"execution {execution:3d} {action:16s} jobs {len(members):3d} {end - start:6.2f}s "
            f"cpu {sum(cpu.values()):5.2f} "
            f"task_cpu {sum(j['task_cpu_s'] for j in members):5.2f}  "
            + " ".join(f"{k.split()[-1]}={v}" for k, v in sorted(cpu.items()) if v)
        )
    totals = sampler.totals()
    names: dict[str, float] = defaultdict(float)
    for key, seconds in sampler.cpu.items():
        names[f"{sampler.kinds[key]}: {sampler.names[key]}"] += seconds
    print(
        json.dumps(
            {
                "verify": args.verify,
                "wall_s": round(t_end - t0, 1),
                "cpu_s": round(sum(totals.values()), 1),
                "load1": round(os.getloadavg()[0], 1),
                "by_kind": {k: round(v, 2) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
                "phases": phases,
                "by_thread_name": {k: round(v, 2) for k, v in sorted(names.items(), key=lambda kv: -kv[1])[:25]},
            },
            indent=1,
        )
    )
    for job in job_rows:
        cpu = sum(job["cpu"].values())
        print(
            f"job {job['job']:3d} {job['end'] - job['start']:6.2f}s cpu {cpu:5.2f} tasks {job['tasks']:3d} "
            f"task_cpu {job['task_cpu_s']:5.2f} task_run {job['task_run_s']:5.2f}  {job['execution']} {job['action']} "
            + " ".join(f"{k.split()[-1]}={v}" for k, v in sorted(job["cpu"].items()) if v)
        )


if __name__ == "__main__":
    main()
