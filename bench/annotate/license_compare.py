"""ScanCode settings vs askalono on real license files: detection rate, time per file, agreement.

Corpora:
* ``dist``: the license-like files (paper's regex) of the installed distributions' ``*.dist-info`` folders —
  the same real files the demo archive carries;
* ``spdx``: the license texts bundled in ScanCode's data whose key has a real SPDX id (expected answer known).

ScanCode settings: ``reference`` (the reference scripts' ``deadline=100``: already expired, so only the whole-text
hash match and the first matcher, SPDX-License-Identifier lines, run), ``exact`` (``approximate=False``: hash,
SPDX-License-Identifier lines, exact Aho-Corasick rule matches), ``full`` (those plus approximate sequence
matching, no deadline).
askalono counts as detecting when its score is >= 0.8 (its CLI's default threshold).

``--fast-path``: instead, compare ``stackv2.detect.license.scancode_expressions`` (ScanCode's detection without
the detection identifier and without matched texts nobody reads) with ScanCode's own
``licensedcode.detection.detect_licenses`` on every file of both corpora: time of each, and every file where the
license expressions differ (expected: none).

    .venv/bin/python bench/annotate/license_compare.py [--limit N] [--json out.json]
    .venv/bin/python bench/annotate/license_compare.py --fast-path [--approximate] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from stackv2.detect.license import (
    LicenseConfig,
    _expressions,
    detect_licenses,
    is_license_file,
    scancode_index,
    spdx_ids,
)

SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
ASKALONO_MIN_SCORE = 0.8
FULL = "scancode full (approximate=True)"


def dist_corpus() -> list[tuple[str, str, str | None]]:
    files = sorted(
        p for d in SITE.glob("*.dist-info") for p in d.rglob("*") if p.is_file() and is_license_file(p.name)
    )
    return [(str(p.relative_to(SITE)), p.read_bytes().decode("utf-8", "replace"), None) for p in files]


def spdx_corpus() -> list[tuple[str, str, str | None]]:
    from licensedcode.cache import get_licenses_db

    out = []
    for key, lic in sorted(get_licenses_db().items()):
        spdx = lic.spdx_license_key
        if spdx and not spdx.startswith("LicenseRef-") and lic.text and lic.text.strip():
            out.append((key, lic.text, spdx))
    return out


def reference_call(text: str) -> list[str]:
    """The reference scripts' call, bug included: ``deadline=100`` is in 1970, so matching stops early."""
    from licensedcode.detection import detect_licenses as scancode_detect

    found: set[str] = set()
    for det in scancode_detect(index=scancode_index(), query_string=text, deadline=100):
        if det.license_expression:
            found |= spdx_ids(det.license_expression)
    return sorted(found)


def askalono_call(text: str) -> list[str]:
    import askalono

    try:
        m = askalono.identify(text)
    except Exception:  # askalono raises on texts it cannot score (e.g. empty)
        return []
    return [m.name] if m.score >= ASKALONO_MIN_SCORE else []


def run(corpus, settings):
    """Every setting on file 1, then on file 2, ...: a busy machine slows all settings alike."""
    results = {name: [] for name in settings}
    times = {name: [] for name in settings}
    for _, text, _ in corpus:
        for name, fn in settings.items():
            t0 = time.perf_counter()
            results[name].append(fn(text))
            times[name].append(time.perf_counter() - t0)
    return results, times


def summarize(name, corpus, results, times, ref=None):
    n = len(corpus)
    row = {
        "setting": name,
        "files": n,
        "detected": sum(1 for r in results if r),
        "ms_mean": round(1000 * statistics.mean(times), 1),
        "ms_median": round(1000 * statistics.median(times), 1),
        "ms_p95": round(1000 * sorted(times)[int(0.95 * (n - 1))], 1),
        "ms_max": round(1000 * max(times), 1),
    }
    expected = [e for _, _, e in corpus]
    if expected[0] is not None:
        row["correct"] = sum(1 for r, e in zip(results, expected, strict=True) if e in r)
    if ref is not None:  # agreement with ScanCode full
        both = [(r, s) for r, s in zip(results, ref, strict=True) if r and s]
        row["both_detected"] = len(both)
        row["subset_of_full_when_both"] = sum(1 for r, s in both if set(r) <= set(s))
        row["identical_to_full"] = sum(1 for r, s in zip(results, ref, strict=True) if r == s)
    return row


def scancode_call(text: str, approximate: bool) -> list[str | None]:
    """ScanCode's own entry point, as ``detect_licenses`` called it before the fast path."""
    from licensedcode.detection import detect_licenses as scancode_detect

    return [
        d.license_expression
        for d in scancode_detect(index=scancode_index(), query_string=text, approximate=approximate)
    ]


def fast_path_check(corpora, approximate: bool, repeats: int = 3) -> dict:
    """ScanCode's ``detect_licenses`` vs our fast path, alternating per file; best of ``repeats`` per file and side.
    ScanCode memoizes the last file's tokenized text (``tokenize_matched_text``'s ``_cache``); it is emptied before
    every call so that neither side reuses the other's work."""
    from licensedcode.match import tokenize_matched_text

    (matched_text_cache,) = (d for d in tokenize_matched_text.__defaults__ if isinstance(d, dict))
    sides = {
        "scancode detect_licenses": lambda t: scancode_call(t, approximate),
        "stackv2 fast path": lambda t: _expressions(t, approximate),
    }
    report = {}
    for cname, corpus in corpora:
        spent = dict.fromkeys(sides, 0.0)
        differ = []
        for name, text, _ in corpus:
            out = {}
            for side, fn in sides.items():
                best = float("inf")
                for _ in range(repeats):
                    matched_text_cache.clear()
                    t0 = time.perf_counter()
                    out[side] = fn(text)
                    best = min(best, time.perf_counter() - t0)
                spent[side] += best
            if len(set(map(tuple, out.values()))) != 1:
                differ.append({"file": name, **out})
        ref, fast = (spent[s] for s in sides)
        report[cname] = {
            "files": len(corpus),
            "seconds": {k: round(v, 3) for k, v in spent.items()},
            "speedup": round(ref / fast, 2),
            "files_differing": len(differ),
            "differ": differ,
        }
        print(cname, json.dumps({k: v for k, v in report[cname].items() if k != "differ"}), flush=True)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="use only the first N files of each corpus")
    ap.add_argument("--spdx-every", type=int, default=1, help="use every Nth text of the SPDX corpus")
    ap.add_argument("--fast-path", action="store_true", help="check the fast path against ScanCode's own call")
    ap.add_argument("--approximate", action="store_true", help="with --fast-path: approximate=True on both sides")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    scancode_index()
    print(f"scancode index load: {time.perf_counter() - t0:.1f}s", flush=True)
    if args.fast_path:
        corpora = [
            (c, corpus[: args.limit] if args.limit else corpus)
            for c, corpus in (("dist", dist_corpus()), ("spdx", spdx_corpus()[:: args.spdx_every]))
        ]
        report = fast_path_check(corpora, args.approximate)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        return 1 if any(r["files_differing"] for r in report.values()) else 0
    settings = {
        "scancode reference (deadline=100)": reference_call,
        "scancode exact (approximate=False)": lambda t: detect_licenses(t, LicenseConfig(approximate=False)),
        FULL: lambda t: detect_licenses(t, LicenseConfig(approximate=True)),
        "askalono (score>=0.8)": askalono_call,
    }
    report = {}
    for cname, corpus in (("dist", dist_corpus()), ("spdx", spdx_corpus()[:: args.spdx_every])):
        corpus = corpus[: args.limit] if args.limit else corpus
        outs, times = run(corpus, settings)
        rows = []
        for sname in settings:
            ref = outs[FULL] if sname != FULL else None
            rows.append(summarize(sname, corpus, outs[sname], times[sname], ref))
            print(cname, json.dumps(rows[-1]), flush=True)
        differ = {
            s: [(corpus[i][0], r, outs[FULL][i]) for i, r in enumerate(outs[s]) if r != outs[FULL][i]]
            for s in settings
            if s != FULL
        }
        report[cname] = {"rows": rows, "differ_from_full": differ}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
