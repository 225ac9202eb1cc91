"""What the placeholder rule costs: ``encode_texts`` (split at PII placeholders, then ``encode_plain``) against
``encode_plain`` alone (what the engines did before the rule), same encoder, same texts, interleaved round by round.

Texts: the text parts of the repository documents ``bench_tokenize.py`` builds (``--mb`` of site-packages).
Also times the split alone (single-threaded Python ``re``), the only work the rule adds.

    .venv/bin/python bench/tokenize/placeholder_cost.py --tokenizer /tmp/bench-tokenize/tokenizer.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from itertools import groupby
from pathlib import Path

from bench_tokenize import corpus

from stackv2.tokenize.config import TokenizeConfig
from stackv2.tokenize.fast import TiktokenEncoder
from stackv2.tokenize.format import format_repo
from stackv2.tokenize.tokenizer import _PLACEHOLDER_SPLIT, DocumentEncoder, load_tokenizer


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    rows = corpus(int(args.mb * 1e6))
    cfg = TokenizeConfig()
    docs = [
        format_repo(name, [(r.path, r.content) for r in group], cfg)
        for name, group in groupby(rows, key=lambda r: r.repo_name)
    ]
    texts = [p.text for d in docs for p in d.parts() if not p.special and p.text]
    tok_path = Path(args.tokenizer)
    report = {
        "chars": sum(map(len, texts)),
        "split_alone_s": round(
            min(seconds(lambda: [_PLACEHOLDER_SPLIT.split(t) for t in texts]) for _ in range(10)), 4
        ),
    }
    for name, enc in (
        ("tiktoken", TiktokenEncoder(load_tokenizer(tok_path))),
        ("tokenizers", DocumentEncoder(load_tokenizer(tok_path))),
    ):
        times: dict[str, list[float]] = {"encode_plain": [], "encode_texts": []}
        for i in range(args.rounds if name == "tiktoken" else max(3, args.rounds // 3)):
            order = ("encode_plain", "encode_texts") if i % 2 == 0 else ("encode_texts", "encode_plain")
            for fn in order:
                method = getattr(enc, fn)
                times[fn].append(seconds(lambda m=method: m(texts)))
        report[name] = {
            fn: {"best_s": round(min(t), 3), "median_s": round(statistics.median(t), 3)} for fn, t in times.items()
        }
        report[name]["with_rule_vs_without_best"] = round(min(times["encode_texts"]) / min(times["encode_plain"]), 3)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
