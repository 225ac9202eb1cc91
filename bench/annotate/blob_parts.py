"""CPU of each part of ``annotate_blob`` over real stage rows, with a digest of what it returned (to compare two
trees), go-enry's time per file extension, and with ``--licenses`` ScanCode's on the license-named blobs.

    .venv/bin/python -m bench.annotate.blob_parts --input /tmp/s32/w-b200-new/fetch/data --parts 4
    .venv/bin/python -m bench.annotate.blob_parts --input /tmp/s32/w-b200-new/fetch/data --parts 8 --licenses

Reads ``path``, ``content`` and ``src_encoding`` of the first ``--parts`` Parquet files of ``--input`` (a scale
run's ``fetch`` output is what ``annotate`` reads), then times, in this process, over every row: ``line_stats``,
``detect_language`` (go-enry), ``detect_natural_language`` and the whole ``annotate_blob``; each row is its own blob
named by its path's base name. The digest covers every ``annotate_blob`` result in order. ``--licenses`` times
instead ``detect_licenses`` on each distinct license-named blob (``is_license_file``, by ``blob_id``), the index
loaded first, and digests its results: the license job's work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from stackv2.detect.annotate import annotate_blob
from stackv2.detect.config import AnnotateConfig
from stackv2.detect.language import basename, detect_language, extension, raw_bytes
from stackv2.detect.license import detect_licenses, is_license_file
from stackv2.detect.linestats import line_stats
from stackv2.detect.natural import detect_natural_language


def rows_of(folder: Path, parts: int) -> list[tuple[str, str, str | None]]:
    """(base name, content, source encoding) of every row with content."""
    rows = []
    for path in sorted(folder.glob("*.parquet"))[:parts]:
        t = pq.read_table(path, columns=["path", "content", "src_encoding"]).to_pydict()
        rows += [(basename(p), c, e) for p, c, e in zip(t["path"], t["content"], t["src_encoding"], strict=True) if c]
    return rows


def license_texts(folder: Path, parts: int) -> list[str]:
    """The content of each distinct license-named blob, in first-seen order."""
    texts: dict[str, str] = {}
    for path in sorted(folder.glob("*.parquet"))[:parts]:
        t = pq.read_table(path, columns=["path", "content", "blob_id"]).to_pydict()
        for p, c, b in zip(t["path"], t["content"], t["blob_id"], strict=True):
            if c and is_license_file(basename(p)):
                texts.setdefault(b, c)
    return list(texts.values())


def digest(results: list) -> str:
    return hashlib.sha256(json.dumps(results, sort_keys=True).encode()).hexdigest()


def licenses(folder: Path, parts: int) -> dict:
    texts = license_texts(folder, parts)
    detect_licenses("MIT License\n")  # load the index before timing
    seconds, results = cpu(detect_licenses, [(t,) for t in texts])
    return {"license_blobs": len(texts), "cpu_seconds": round(seconds, 3), "digest": digest(results)}


def cpu(fn, items) -> tuple[float, list]:
    start = time.process_time()
    out = [fn(*item) for item in items]
    return time.process_time() - start, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, required=True, help="a folder of Parquet files (path, content, src_encoding)")
    p.add_argument("--parts", type=int, default=4)
    p.add_argument("--extensions", type=int, default=8, help="how many extensions to list by go-enry time")
    p.add_argument("--licenses", action="store_true", help="time ScanCode on the license-named blobs instead")
    args = p.parse_args()
    if args.licenses:
        print(json.dumps(licenses(args.input, args.parts), indent=1))
        return
    cfg = AnnotateConfig()
    rows = rows_of(args.input, args.parts)
    annotate_blob([rows[0][0]], rows[0][1], rows[0][2], cfg)  # load the models before timing
    raw = [(name, raw_bytes(text, enc)) for name, text, enc in rows]
    languages = [detect_language(name, data).language for name, data in raw]
    seconds = {
        "line_stats": cpu(line_stats, [(text,) for _, text, _ in rows])[0],
        "detect_language": cpu(detect_language, raw)[0],
        "detect_natural_language": cpu(
            lambda text, lang: detect_natural_language(text, lang, cfg.natural),
            [(text, language) for (_, text, _), language in zip(rows, languages, strict=True)],
        )[0],
    }
    seconds["annotate_blob"], results = cpu(lambda name, text, enc: annotate_blob([name], text, enc, cfg), rows)
    by_extension, count = Counter(), Counter()
    for name, data in raw:
        start = time.process_time()
        detect_language(name, data)
        by_extension[extension(name)] += time.process_time() - start
        count[extension(name)] += 1
    print(
        json.dumps(
            {
                "rows": len(rows),
                "characters": sum(len(text) for _, text, _ in rows),
                "cpu_seconds": {k: round(v, 3) for k, v in seconds.items()},
                "go_enry_by_extension": {
                    e or "(none)": {"seconds": round(s, 3), "files": count[e]}
                    for e, s in by_extension.most_common(args.extensions)
                },
                "digest": digest(results),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
