"""Choose ``PiiConfig.gibberish_limit`` for detect-secrets' ``rfc.model`` (docs/spec.md §7.4: gibberish keys only).

The limit applies to the entropy plugins' values (``gibberish_all_plugins`` off). Positives: random base64 and hex
keys as ``bench.py`` plants them. Negatives: every value the key detector keeps with the check off in real files
of site-packages. Use a seed that the evaluation (``bench.py``) does not.

    .venv/bin/python bench/pii/calibrate.py --seed 99 --files 1500
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import sysconfig
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import corpus_files, plant_value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--files", type=int, default=1500)
    ap.add_argument("--keys", type=int, default=600)
    args = ap.parse_args(argv)

    from stackv2.pii.recognizers import KeyDetector

    detector = KeyDetector(gibberish_limit=0.0, min_length=9)  # limit 0: keeps all, we score below
    score = detector.gibberish.calculate_probability_of_being_gibberish
    rng = random.Random(args.seed)
    planted = [plant_value(rng, "KEY")[1] for _ in range(args.keys)]
    positives = [score(v.lower()) for v in planted if re.fullmatch(r"[A-Za-z0-9+/]+", v) and not v.startswith("AKIA")]
    negatives = []
    for path in corpus_files(Path(sysconfig.get_paths()["purelib"]), args.files, args.seed, 100_000):
        text = path.read_text(errors="replace")
        negatives += [score(text[s:e].lower()) for s, e in detector.find(text)]
    print(f"{len(positives)} planted base64/hex keys, {len(negatives)} key-detector values in {args.files} real files")
    print("| limit | planted keys kept | real-file values kept |")
    print("| --- | --- | --- |")
    for limit in (3.0, 3.2, 3.4, 3.5, 3.6, 3.7, 3.8, 4.0):
        kept = sum(x > limit for x in positives) / len(positives)
        print(f"| {limit} | {kept:.3f} | {sum(x > limit for x in negatives)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
