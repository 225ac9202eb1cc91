"""Memory of one stage's Python workers: what each additional worker adds, with and without the models loaded
once by the daemon that forks them (``stackv2.preload``).

Runs one stage (default ``annotate``) on the committed output of the stage before it in a work folder of
``bench.scale.run``, on ``local[N]`` for each N of ``--cores`` and with ``spark.stackv2.preloadModels`` true and
false, each in a fresh Spark session. Every 0.2 s it reads ``/proc/<pid>/smaps_rollup`` of every process of the tree:
RSS, PSS (shared pages split between their sharers) and USS (pages of that process alone). Per run it reports the
peak of the tree's PSS and RSS sums and, per Python process, its largest USS and PSS: a worker's USS is what it
adds, since what it shares with its daemon is counted once however many workers share it.

    python -m bench.scale.workers --work /tmp/scale/w20000 --cores 1,2,4 --json /tmp/scale/workers.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from stackv2.config import RunConfig, SparkConfig
from stackv2.workdir import DATA

#: The stage each measured stage reads (the output of the one run before it in bench.scale.run).
PREVIOUS = {"annotate": "fetch", "pii": "filter"}


def rollup(pid: int) -> dict[str, int]:
    """RSS, PSS and USS of one process, in bytes (``/proc/<pid>/smaps_rollup``); empty once it has exited."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        return {}
    if "Rss" not in out:  # exiting: its memory already released
        return {}
    return {"rss": out["Rss"], "pss": out["Pss"], "uss": out["Private_Clean"] + out["Private_Dirty"]}


def tree(root: int) -> dict[int, tuple[int, str]]:
    """Every descendant of ``root`` (and ``root``): pid -> (parent pid, command line)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[pid] = (parent.get(pid, 0), cmd)
        todo.extend(c for c, p in parent.items() if p == pid)
    return out


def is_java(cmd: str) -> bool:
    return "java" in cmd.split(" ", 1)[0]


def role(cmd: str, parent_cmd: str) -> str:
    if is_java(cmd):
        return "jvm"
    if "pyspark_stackv2_daemon" in cmd or "pyspark.daemon" in cmd:
        # a forked worker keeps its daemon's command line: tell them apart by their parent (the JVM starts the
        # daemons; its own command line names the daemon module too)
        return "daemon" if is_java(parent_cmd) else "worker"
    return "driver" if "bench.scale.workers" in cmd else "other"


class Sampler(threading.Thread):
    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval, self.halt = interval, threading.Event()
        self.peak_pss = self.peak_rss = 0
        self.procs: dict[int, dict] = {}

    def run(self) -> None:
        while not self.halt.is_set():
            procs = tree(os.getpid())
            mem = {pid: m for pid in procs if (m := rollup(pid))}
            self.peak_pss = max(self.peak_pss, sum(m["pss"] for m in mem.values()))
            self.peak_rss = max(self.peak_rss, sum(m["rss"] for m in mem.values()))
            for pid, m in mem.items():
                ppid, cmd = procs[pid]
                p = self.procs.setdefault(pid, {"pid": pid, "parent": ppid})
                # again at every sample: spark-submit's shell, whose command line names the daemon module, becomes
                # the JVM by exec
                p["role"] = role(cmd, procs.get(ppid, (0, ""))[1])
                # a worker's own pages only while its daemon still maps what they share: a daemon that has released
                # its memory on exit leaves its workers with every page private for a moment
                if p["role"] != "worker" or ppid in mem:
                    for k, v in m.items():
                        p[k] = max(p.get(k, 0), v)
            self.halt.wait(self.interval)


def measure(work: Path, stage: str, cores: int, preload: bool, out: Path) -> dict:
    """Run ``stage`` once in this process (a fresh Spark session) and return what the sampler saw."""
    from pipelines.runner import run_pipeline

    cfg = RunConfig(
        work_dir=str(out),
        input=str(work / PREVIOUS[stage] / DATA),
        stages=(stage,),
        spark=SparkConfig(
            master=f"local[{cores}]",
            shuffle_partitions=8,
            driver_memory="1g",
            conf={"spark.stackv2.preloadModels": str(preload).lower()},
        ),
    )
    sampler = Sampler()
    sampler.start()
    t0 = time.monotonic()
    run_pipeline(cfg, log=lambda m: None)
    seconds = time.monotonic() - t0
    sampler.halt.set()
    sampler.join()
    procs = sorted(sampler.procs.values(), key=lambda p: (p["role"], -p["uss"]))
    return {
        "stage": stage,
        "cores": cores,
        "preload": preload,
        "seconds": round(seconds, 1),
        "peak_tree_pss": sampler.peak_pss,
        "peak_tree_rss": sampler.peak_rss,
        "processes": [p for p in procs if p["role"] in ("jvm", "daemon", "worker", "driver")],
    }


def table(results: list[dict]) -> str:
    """One row per run; "PSS per extra core": the tree's peak PSS above that of the run with the fewest cores and the
    same preload setting, per core more."""
    mib = 2**20
    lines = [
        "| preload | cores | wall s | peak tree PSS MiB | PSS per extra core MiB | peak tree RSS MiB "
        "| daemons PSS MiB | workers | largest worker USS MiB | largest worker RSS MiB |",
        "|" + "---|" * 10,
    ]
    for r in results:
        workers = [p for p in r["processes"] if p["role"] == "worker"]
        daemons = [p for p in r["processes"] if p["role"] == "daemon"]
        first = min((b for b in results if b["preload"] == r["preload"]), key=lambda b: b["cores"])
        extra = (
            f"{(r['peak_tree_pss'] - first['peak_tree_pss']) // (r['cores'] - first['cores']) // mib}"
            if r["cores"] > first["cores"]
            else "-"
        )
        lines.append(
            f"| {'on' if r['preload'] else 'off'} | {r['cores']} | {r['seconds']} | {r['peak_tree_pss'] // mib} "
            f"| {extra} | {r['peak_tree_rss'] // mib} | {' + '.join(str(p['pss'] // mib) for p in daemons) or '-'} "
            f"| {len(workers)} | {max((p['uss'] for p in workers), default=0) // mib} "
            f"| {max((p['rss'] for p in workers), default=0) // mib} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="work folder of bench.scale.run (its stages done)")
    p.add_argument("--stage", default="annotate", choices=sorted(PREVIOUS))
    p.add_argument("--cores", default="1,2,4", help="local[N] for each N")
    p.add_argument("--preload", default="on,off", help="on, off or both (on,off)")
    p.add_argument("--scratch", type=Path, default=Path("/tmp/stackv2-workers"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # "cores,preload": measure in this process
    a = p.parse_args(argv)
    if a.one:
        cores, preload = a.one.split(",")
        result = measure(a.work, a.stage, int(cores), preload == "on", a.scratch / f"{a.stage}-{cores}-{preload}")
        print(json.dumps(result))
        return
    results = []
    for preload in a.preload.split(","):
        for cores in a.cores.split(","):
            cmd = [sys.executable, "-m", "bench.scale.workers", "--work", str(a.work), "--stage", a.stage]
            cmd += ["--scratch", str(a.scratch), "--one", f"{cores},{preload}"]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
