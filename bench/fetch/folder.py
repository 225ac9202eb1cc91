"""CPU per object reading a folder store, by ``fetch.folder_threads`` (docs/fetch.md, "Folder stores").

    .venv/bin/python -m bench.fetch.folder --store /tmp/mem/a20k --objects 10000 --threads 64 2 1 --rounds 2

Reads the first ``--objects`` objects of the store's ``content/`` folder (sorted by name: a fixed mix) through
``stackv2.swh.s3fetch.fetch`` (read, bounded gunzip, sha1 check, binary check, decode), once per thread count and
round, in this process; the objects are read once before timing so every setting reads them from the page cache.
Prints CPU seconds (this process's), wall seconds and CPU-ms per object per setting and round.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stackv2.swh.config import FetchConfig
from stackv2.swh.content_store import CONTENT_PREFIX
from stackv2.swh.reader import open_reader
from stackv2.swh.s3fetch import fetch


def measure(store: Path, ids: list[str], threads: int) -> tuple[float, float]:
    """(CPU s, wall s) to fetch ``ids`` with ``threads`` folder threads."""
    reader = open_reader(str(store), FetchConfig(folder_threads=threads))
    cpu, wall = time.process_time(), time.perf_counter()
    done = sum(1 for _ in fetch(reader, ((i, None, None) for i in ids)))
    assert done == len(ids)
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, required=True, help="a folder store (objects under content/)")
    p.add_argument("--objects", type=int, default=10000)
    p.add_argument("--threads", type=int, nargs="+", default=[64, 2, 1])
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    ids = sorted(path.name for path in (args.store / CONTENT_PREFIX).iterdir())[: args.objects]
    measure(args.store, ids, 1)  # into the page cache
    print("| round | folder_threads | objects | CPU s | wall s | CPU-ms per object |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in range(1, args.rounds + 1):
        for threads in args.threads:
            cpu, wall = measure(args.store, ids, threads)
            print(f"| {r} | {threads} | {len(ids):,} | {cpu:.2f} | {wall:.2f} | {cpu / len(ids) * 1e3:.3f} |")


if __name__ == "__main__":
    main()
