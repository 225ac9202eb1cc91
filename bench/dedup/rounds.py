"""Interleaved repeats of the ×k comparison: wall and CPU time of each system, its outputs removed before each run.

Run after ``bench.dedup.run`` has written the corpus (``work/bench-dedup/x<k>``); scores are not recomputed
(every system is deterministic, ``run.py`` has them). On a machine whose speed drifts, neighbouring runs are what
can be compared.

    python -m bench.dedup.rounds --scale 16 --rounds 2 --text-dedup-python /tmp/tdvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from bench.dedup.run import WORK, measure

OUTPUTS = ("near_dedup", "datatrove", "text-dedup")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--systems", nargs="+", default=["ours", "ours-verify", "datatrove"])
    ap.add_argument("--text-dedup-python")
    args = ap.parse_args()
    work = WORK / f"x{args.scale}"
    commands = {s: [sys.executable, "-m", "bench.dedup.systems", s, str(work)] for s in args.systems}
    if args.text_dedup_python:
        commands["text-dedup"] = [sys.executable, "-m", "bench.dedup.textdedup", args.text_dedup_python, str(work)]
    for r in range(args.rounds):
        for name, cmd in commands.items():
            for out in OUTPUTS:
                shutil.rmtree(work / out, ignore_errors=True)
            wall, peak, cpu = measure(cmd, work / f"{name}.log")
            print(
                json.dumps(
                    {
                        "round": r + 1,
                        "system": name,
                        "wall_s": round(wall, 1),
                        "cpu_s": round(cpu, 1),
                        "peak_mib": round(peak),
                        "load1": round(os.getloadavg()[0], 1),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
