"""Memory of annotate's license job alone (``pipelines.stages.annotate.licenses_found``): its workers loading
ScanCode's index themselves, or sharing the one their daemon loaded (``stackv2.preload``), for a given number of
tasks, on ``local[N]``.

Runs the job on the fetch output of a ``bench.scale.run`` work folder, each setting in a fresh Spark session,
sampling every process of the tree as ``bench.scale.workers`` does (RSS, PSS, USS from ``/proc/<pid>/smaps_rollup``).
``--tasks`` sets ``spark.stackv2.license.filesPerTask`` to spread the work folder's license files over that many
tasks; ``--shared`` on/off sets ``spark.stackv2.license.sharedIndexMinTasks`` to 1 or past the task count.

    python -m bench.scale.licenses --work /tmp/mem/w20k --cores 2 --tasks 1,2 --json /tmp/mem/licenses.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.scale.workers import Sampler, table
from stackv2.workdir import DATA


def measure(work: Path, cores: int, tasks: int, shared: bool) -> dict:
    """Run the license job once in this process (a fresh Spark session) and return what the sampler saw."""
    from pipelines._session import spark_session
    from pipelines.stages.annotate import license_blobs, licenses_found
    from stackv2.config import SparkConfig
    from stackv2.detect.config import LICENSE_JOB_OPTIONS, AnnotateConfig

    sampler = Sampler()
    sampler.start()
    spark = spark_session(SparkConfig(master=f"local[{cores}]", shuffle_partitions=8, driver_memory="1g"))
    rows = spark.read.parquet(str(work / "fetch" / DATA))
    files = license_blobs(rows).select("blob_id").count()
    spark.conf.set(LICENSE_JOB_OPTIONS["files_per_task"], str(-(-files // tasks)))
    spark.conf.set(LICENSE_JOB_OPTIONS["shared_index_min_tasks"], str(1 if shared else tasks + 1))
    t0 = time.monotonic()
    found = licenses_found(rows, AnnotateConfig())
    assert found.rdd.getNumPartitions() == tasks
    found.write.format("noop").mode("overwrite").save()
    seconds = time.monotonic() - t0
    sampler.halt.set()
    sampler.join()
    spark.stop()
    procs = sorted(sampler.procs.values(), key=lambda p: (p["role"], -p["uss"]))
    return {
        "cores": cores,
        "tasks": tasks,
        "license_files": files,
        "preload": shared,
        "seconds": round(seconds, 1),
        "peak_tree_pss": sampler.peak_pss,
        "peak_tree_rss": sampler.peak_rss,
        "processes": [p for p in procs if p["role"] in ("jvm", "daemon", "worker", "driver")],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="work folder of bench.scale.run (its fetch done)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--tasks", default="1,2", help="task counts of the license job")
    p.add_argument("--shared", default="off,on", help="off, on or both: workers share their daemon's index")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # "tasks,shared": measure in this process
    a = p.parse_args(argv)
    if a.one:
        tasks, shared = a.one.split(",")
        print(json.dumps(measure(a.work, a.cores, int(tasks), shared == "on")))
        return
    results = []
    for shared in a.shared.split(","):
        for tasks in a.tasks.split(","):
            cmd = [sys.executable, "-m", "bench.scale.licenses", "--work", str(a.work), "--cores", str(a.cores)]
            proc = subprocess.run([*cmd, "--one", f"{tasks},{shared}"], capture_output=True, text=True, check=True)
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"tasks {tasks}: " + table(results[-1:]).splitlines()[-1], flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(f"tasks {r['tasks']}, {r['license_files']} license files" for r in results))
    print(table(results))


if __name__ == "__main__":
    main()
