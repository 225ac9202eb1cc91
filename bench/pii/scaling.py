"""Time per file against file size: stackv2's windowed redaction vs presidio's ``analyze`` on the whole file.

One file of N characters is built from real code (site-packages files concatenated in a seeded order) with an
e-mail address and a public IP planted every 10,000 characters.

    .venv/bin/python bench/pii/scaling.py --sizes 25000,100000,400000,1600000 --presidio-max 100000
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import corpus_files, presidio_system


def make_text(size: int, seed: int) -> str:
    parts, n = [], 0
    for path in corpus_files(Path(sysconfig.get_paths()["purelib"]), 2000, seed, 100_000):
        if path.suffix != ".py":
            continue
        t = path.read_text(errors="replace")
        parts.append(t)
        n += len(t)
        if n >= size:
            break
    text = "".join(parts)[:size]
    out = []
    for i in range(0, len(text), 10_000):
        k = i // 10_000
        out.append(f"# maintainer: dev{k}@acme-corp.io, host 84.20.{k % 250}.101\n" + text[i : i + 10_000])
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="25000,100000,400000,1600000")
    ap.add_argument("--presidio-max", type=int, default=100_000, help="largest size given to presidio's defaults")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)

    from stackv2.pii import PiiConfig, redact
    from stackv2.pii.engine import get_engine

    get_engine(PiiConfig())
    presidio = presidio_system()
    print("| characters | stackv2 redact (s) | found | presidio defaults analyze (s) |")
    print("| --- | --- | --- | --- |")
    for size in (int(s) for s in args.sizes.split(",")):
        text = make_text(size, args.seed)
        t0 = time.perf_counter()
        r = redact(text)
        ours = time.perf_counter() - t0
        theirs = "-"
        if size <= args.presidio_max:
            t0 = time.perf_counter()
            presidio(text)
            theirs = f"{time.perf_counter() - t0:.2f}"
        print(f"| {len(text):,} | {ours:.3f} | {sum(r.counts.values())} | {theirs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
