"""CPU of ``redact`` over real stage rows, with a digest of what it returned (to compare two trees), and optionally
the time of each step of ``detect``.

    .venv/bin/python -m bench.pii.redact_parts --input /tmp/s32/w-200k/filter/data --parts 8 [--steps]

Reads the ``content`` of the first ``--parts`` Parquet files of ``--input`` (a scale run's ``filter`` output is what
the ``pii`` stage reads), loads the engine, then times ``redact`` over every non-empty text in this process. The
digest covers each result's text, counts and spans in order. ``--steps`` then times, per text, each entity's
candidate scan, the rule library's scan and the analysis of the windows each entity's candidates select (one entity
at a time, so the sum exceeds ``redact``'s own time).
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from stackv2.pii.config import PiiConfig
from stackv2.pii.engine import get_engine
from stackv2.pii.redaction import redact, windows


def texts_of(folder: Path, parts: int) -> list[str]:
    texts: list[str] = []
    for path in sorted(folder.glob("*.parquet"))[:parts]:
        texts += [t for t in pq.read_table(path, columns=["content"]).column("content").to_pylist() if t]
    return texts


def digest(results) -> str:
    h = hashlib.sha256()
    for r in results:
        h.update(r.text.encode("utf-8", "surrogatepass"))
        h.update(json.dumps(sorted(r.counts.items())).encode())
        h.update(repr(r.spans).encode())
    return h.hexdigest()


def steps(texts: list[str], cfg: PiiConfig) -> Counter:
    engine, clock, spent = get_engine(cfg), time.process_time, Counter()
    for text in texts:
        ws = windows(text, cfg.window_chars, cfg.overlap_chars)
        hits = {}
        for entity, candidates in engine.candidates.items():
            t = clock()
            hits[entity] = candidates(text)
            spent[f"candidates {entity}"] += clock() - t
        t = clock()
        engine.rule_spans(text, ws)
        spent["rule library"] += clock() - t
        for w in ws:
            for entity, h in hits.items():
                if bisect.bisect_left(h, w.start) < bisect.bisect_left(h, w.end):
                    t = clock()
                    engine.analyze(text[w.start : w.end], [entity])
                    spent[f"windows {entity}"] += clock() - t
                    spent[f"windows {entity} (count)"] += 1
    return spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, required=True, help="a folder of Parquet files with a content column")
    p.add_argument("--parts", type=int, default=8)
    p.add_argument("--steps", action="store_true")
    args = p.parse_args()
    cfg = PiiConfig()
    texts = texts_of(args.input, args.parts)
    t = time.process_time()
    get_engine(cfg)
    chars = sum(map(len, texts)) / 1e6
    print(f"{len(texts):,} texts, {chars:.1f} M characters; engine {time.process_time() - t:.2f} s")
    t = time.process_time()
    results = [redact(x, cfg) for x in texts]
    print(f"redact: {time.process_time() - t:.2f} CPU s, digest {digest(results)}")
    if args.steps:
        for name, value in sorted(steps(texts, cfg).items()):
            print(f"  {name}: {value:,.0f}" if name.endswith("(count)") else f"  {name}: {value:.2f} s")


if __name__ == "__main__":
    main()
