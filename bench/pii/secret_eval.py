"""Keys and passwords: file-level precision/recall of several detectors on the labelled set of ``secret_set.py``.

Systems, all in the same run on the same files:

* ``stackv2``: ``redact`` of this tree (KEY and PASSWORD spans).
* ``previous``: ``redact`` of an earlier commit (``--previous``, default the last one before the rule library),
  exported with ``git archive`` and run in a child process.
* ``detect-secrets``: detect-secrets with all its default plugins (``scan_file`` with default settings);
  ``KeywordDetector`` and ``BasicAuthDetector`` findings count as PASSWORD, the others as KEY.
* ``kingfisher``: the built-in rules of kingfisher-secret-scanner alone (no filters of ours).
* ``ms-masker``: Microsoft's security-utilities secret masker with all its shipped pattern files (if installed).

    .venv/bin/python bench/pii/secret_eval.py --files 2000 --seed 5 [--systems stackv2,previous,detect-secrets]

Times are one core, one process, after each system's setup.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from secret_set import build, score

REPO = Path(__file__).resolve().parents[2]
#: The last commit whose key detector was BigCode's detect-secrets subset (before the rule library).
PREVIOUS = "34a48f7"
SECRET_TYPES = ("KEY", "PASSWORD")


def stackv2_system():
    from stackv2.pii import PiiConfig, redact
    from stackv2.pii.engine import get_engine

    cfg = PiiConfig()
    get_engine(cfg)
    return lambda text, suffix: [
        (s.start, s.end, s.entity) for s in redact(text, cfg).spans if s.entity in SECRET_TYPES
    ]


_CHILD = r"""
import json, sys, time
from stackv2.pii import PiiConfig, redact
from stackv2.pii.engine import get_engine
texts = json.load(open(sys.argv[1]))
get_engine(PiiConfig())
t0 = time.perf_counter()
out = [[(s.start, s.end, s.entity) for s in redact(t).spans] for t in texts]
json.dump({"seconds": time.perf_counter() - t0, "spans": out}, open(sys.argv[2], "w"))
"""


def run_previous(rev: str, texts: list[str]) -> tuple[list, float]:
    """``redact`` of commit ``rev`` in a child process on an exported copy of its ``stackv2`` package."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "stackv2"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        Path(tmp, "in.json").write_text(json.dumps(texts))
        env = {**os.environ, "PYTHONPATH": tmp}
        subprocess.run(
            [sys.executable, "-c", _CHILD, f"{tmp}/in.json", f"{tmp}/out.json"], check=True, env=env, cwd=tmp
        )
        res = json.loads(Path(tmp, "out.json").read_text())
    spans = [[(s, e, t) for s, e, t in doc if t in SECRET_TYPES] for doc in res["spans"]]
    return spans, res["seconds"]


def detect_secrets_system():
    """detect-secrets' own file scan with its default plugins and filters; offsets found on the reported line."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    password_plugins = {"Secret Keyword", "Basic Auth Credentials"}
    tmp = tempfile.mkdtemp()

    def find(text: str, suffix: str) -> list[tuple[int, int, str]]:
        path = Path(tmp, "f" + suffix)
        path.write_text(text, errors="surrogateescape")
        lines = text.splitlines(keepends=True)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line))
        out = []
        with default_settings():
            for secret in scan_file(str(path)):
                n = secret.line_number - 1
                value = secret.secret_value or ""
                col = lines[n].find(value) if n < len(lines) and value else -1
                s, e = (starts[n] + col, starts[n] + col + len(value)) if col >= 0 else (starts[n], starts[n + 1])
                out.append((s, e, "PASSWORD" if secret.type in password_plugins else "KEY"))
        return out

    return find


def kingfisher_system():
    from kingfisher_sdk import Rules, Scanner

    scanner = Scanner(Rules(cache=False), base64=False)

    def find(text: str, suffix: str) -> list[tuple[int, int, str]]:
        data = text.encode("utf-8", "surrogatepass")
        out = []
        for f in scanner.scan(data):
            if f.visible:
                loc = f.location
                s = len(data[: loc["start_offset"]].decode("utf-8", "surrogatepass"))
                e = s + len(data[loc["start_offset"] : loc["end_offset"]].decode("utf-8", "surrogatepass"))
                out.append((s, e, "KEY"))
        return out

    return find


def ms_masker_system():
    import importlib.resources

    from microsoft_security_utilities_secret_masker import SecretMasker, load_regex_patterns_from_json_file

    folder = importlib.resources.files("microsoft_security_utilities_secret_masker") / "GeneratedRegexPatterns"
    patterns = set()
    for f in folder.iterdir():
        if f.name.endswith(".json"):
            patterns |= set(load_regex_patterns_from_json_file(str(f)))
    masker = SecretMasker(patterns)
    return lambda text, suffix: [(d.start, d.end, "KEY") for d in masker.detect_secrets(text)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--systems", default="stackv2,previous,detect-secrets,kingfisher,ms-masker")
    ap.add_argument("--previous", default=PREVIOUS, help="git revision of the previous detector")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--show-misses", action="store_true", help="print stackv2's missed and false files")
    args = ap.parse_args(argv)

    docs = build(Path(sysconfig.get_paths()["purelib"]), args.files, args.seed)
    texts = [d["text"] for d in docs]
    mb = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6
    counts = {c: sum(d["category"] == c and d["positive"] for d in docs) for c in SECRET_TYPES}
    print(f"labelled set: {len(docs)} files, {mb:.2f} MB, positives {counts}")
    results = {"files": len(docs), "mb": round(mb, 3), "positives": counts, "systems": {}}
    for name in args.systems.split(","):
        t0 = time.perf_counter()
        if name == "previous":
            detections, seconds = run_previous(args.previous, texts)
            setup = time.perf_counter() - t0 - seconds
        else:
            if name == "stackv2":
                find = stackv2_system()
            elif name == "detect-secrets":
                find = detect_secrets_system()
            elif name == "kingfisher":
                find = kingfisher_system()
            elif name == "ms-masker":
                try:
                    find = ms_masker_system()
                except ImportError:
                    print(f"\n== {name}: not installed, skipped")
                    continue
            else:
                raise SystemExit(f"unknown system {name}")
            setup = time.perf_counter() - t0
            t0 = time.perf_counter()
            detections = [find(d["text"], Path(d["path"]).suffix) for d in docs]
            seconds = time.perf_counter() - t0
        res = score(docs, detections)
        res.update(setup_s=round(setup, 2), seconds=round(seconds, 2), mb_per_s=round(mb / seconds, 3))
        results["systems"][name] = res
        print(f"\n== {name}: setup {setup:.1f} s, {seconds:.1f} s for {mb:.2f} MB = {mb / seconds:.3f} MB/s (1 core)")
        for c in SECRET_TYPES:
            x = res[c]
            print(
                f"  {c:<9} recall {x['recall']}  precision {x['precision']}  negatives flagged "
                f"{x['negatives_flagged']}  (pos {x['positives']}, neg {x['negatives']})  missed {x['missed']}"
            )
        if args.show_misses and name == "stackv2":
            _show(docs, detections)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _show(docs: list[dict], detections: list) -> None:
    """Lines of stackv2's misses and false flags (for reading the errors, never for scoring)."""
    for doc, found in zip(docs, detections, strict=True):
        text = doc["text"]
        if doc["positive"]:
            s0, e0 = doc["truth"][0]
            if not any(s < e0 and s0 < e for s, e, _ in found):
                ls = text.rfind("\n", 0, s0) + 1
                print("  MISS", doc["category"], doc["what"], repr(text[ls : text.find("\n", e0)][:200]))
        else:
            for s, e, t in found:
                if t == doc["category"]:
                    ls = text.rfind("\n", 0, s) + 1
                    print("  FALSE", t, doc["path"][-60:], repr(text[ls : text.find("\n", e)][:200]))


if __name__ == "__main__":
    sys.exit(main())
