"""The whole ``pii`` stage (``stage.py``) with this tree's detector and with the previous one, in the same run.

The previous commit (``--previous``, default the last one before the key rule library) is exported with
``git archive`` and its own ``stage.py`` run on its own code (``PYTHONPATH`` is inherited by Spark's Python
workers); then this tree's. Same files, seed and settings; the two outputs are printed one after the other.

    .venv/bin/python bench/pii/stage_compare.py --files 2000 --seed 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from secret_eval import PREVIOUS, REPO

PATHS = ["stackv2", "udfs", "pipelines", "bench", "pyspark_stackv2_worker.py", "pyspark_stackv2_daemon.py"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--previous", default=PREVIOUS)
    args = ap.parse_args(argv)
    stage_args = ["--files", str(args.files), "--seed", str(args.seed)]
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.previous, *PATHS], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        for label, root in ((f"previous ({args.previous})", Path(tmp)), ("this tree", REPO)):
            print(f"== {label}", flush=True)
            env = {**os.environ, "PYTHONPATH": str(root)}
            work = ["--work", f"{tmp}/work-{'prev' if root != REPO else 'now'}"]
            subprocess.run(
                [sys.executable, str(root / "bench/pii/stage.py"), *stage_args, *work], check=True, env=env, cwd=root
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
