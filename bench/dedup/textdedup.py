"""Run text-dedup's MinHash (``text_dedup.minhash``, v0.4.0) on the benchmark corpus, from its own venv.

text-dedup does not install cleanly into the project venv (it pins urllib3<=2.0 and rich<14 and pulls
datasets, onnxruntime and unisim), so it lives in a separate venv and this file runs under that venv's python:

    python3 -m venv /tmp/tdvenv && /tmp/tdvenv/bin/pip install text-dedup==0.4.0
    python -m bench.dedup.run --text-dedup-python /tmp/tdvenv/bin/python

Same parameters as the others (5-grams, 250 permutations, B=25 R=10, threshold 0.7, seed 42, 2 processes);
clusters come from the union-find it dumps with ``--debug`` (dataset index = corpus row).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(python: str, work: Path) -> None:
    out = work / "text-dedup"
    subprocess.run(
        [
            python,
            "-m",
            "text_dedup.minhash",
            "--path",
            "parquet",
            "--data_files",
            str(work / "corpus" / "data" / "part-00000.parquet"),
            "--split",
            "train",
            "--cache_dir",
            str(out / "cache"),
            "--output",
            str(out / "kept"),
            "--column",
            "content",
            "--num_proc",
            "2",
            "--debug",
            "--ngram",
            "5",
            "--min_length",
            "5",
            "--seed",
            "42",
            "--num_perm",
            "250",
            "--threshold",
            "0.7",
            "--b",
            "25",
            "--r",
            "10",
            "--hash_func",
            "xxh3",
        ],
        check=True,
    )
    code = (
        "import json, pickle, sys\n"
        "uf = pickle.load(open(sys.argv[1], 'rb'))\n"
        "parent = uf['parent'] if isinstance(uf, dict) else uf.parent\n"
        "def find(x):\n"
        "    while parent[x] != x:\n"
        "        x = parent[x]\n"
        "    return x\n"
        "roots = {int(x): int(find(x)) for x in parent}\n"
        "sizes = {}\n"
        "for r in roots.values():\n"
        "    sizes[r] = sizes.get(r, 0) + 1\n"
        "json.dump([[x, r] for x, r in roots.items() if sizes[r] > 1], open(sys.argv[2], 'w'))\n"
    )
    subprocess.run([python, "-c", code, str(out / "kept" / "uf.pkl"), str(work / "text-dedup.json")], check=True)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
