"""PII benchmark: precision/recall per type and throughput of stackv2's redaction, datatrove's PIIFormatter and
presidio's default recognizers, on one labelled set built from real code.

The labelled set: real text files of the installed distributions (site-packages), sampled with a seed. Half get
1-3 planted values (e-mail, public IP, key, password) on a new line at a random line start, at known offsets; the
rest are untouched. The real files' own e-mail addresses (author headers, copyright lines) are labelled PII by an
independent simple regex, except RFC 2606 example domains. Every other detection is a false positive: IPs, keys
and passwords already in real files (test vectors, documentation addresses) count against a system.

    .venv/bin/python bench/pii/bench.py --files 600 --seed 1 [--systems stackv2,datatrove,presidio] \
        [--pii gibberish_all_plugins=true ...]

A detection is a true positive when it overlaps a labelled span of its type. Times are one core, one process,
after each system's setup (reported separately).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import re
import string
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path

EXTENSIONS = {
    ".py",
    ".pyi",
    ".js",
    ".ts",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".cfg",
    ".ini",
    ".md",
    ".rst",
    ".txt",
    ".c",
    ".h",
    ".cpp",
    ".html",
    ".sh",
    ".pyx",
    ".css",
}
TYPES = ("EMAIL", "IP_ADDRESS", "KEY", "PASSWORD")
_ADDR = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
FIRST = ["jane", "john", "maria", "wei", "ahmed", "olga", "pierre", "sofia", "kenji", "amara", "lukas", "priya"]
LAST = ["doe", "smith", "garcia", "zhang", "hassan", "ivanova", "dubois", "rossi", "tanaka", "okafor", "muller"]
DOMAINS = [
    "gmail.com",
    "acme-corp.io",
    "uni-bonn.de",
    "mail.example.co.uk",
    "outlook.fr",
    "proton.me",
    "research.lab.org",
    "startup.dev",
    "company.com.au",
    "web.net",
]


def corpus_files(root: Path, n: int, seed: int, max_bytes: int) -> list[Path]:
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix in EXTENSIONS
        and p.is_file()
        and 200 <= p.stat().st_size <= max_bytes
        and ".dist-info" not in str(p)
    )
    return random.Random(seed).sample(files, min(n, len(files)))


def real_addresses(text: str) -> list[tuple[int, int]]:
    """E-mail addresses already in a real file, by a regex independent of the systems measured."""
    out = []
    for m in _ADDR.finditer(text):
        domain = m.group().rpartition("@")[2].lower().rstrip(".")
        tld = domain.rpartition(".")[2]
        if tld.isalpha() and len(tld) >= 2 and not re.search(r"(^|\.)example\.(com|net|org)$", domain):
            out.append((m.start(), m.end() - (m.group().endswith("."))))
    return out


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def plant_value(rng: random.Random, kind: str) -> tuple[str, str]:
    """(line with one value, value) for ``kind``."""
    an = string.ascii_letters + string.digits
    if kind == "EMAIL":
        v = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
        return f"# Contact: {rng.choice(FIRST).title()} {rng.choice(LAST).title()} <{v}>", v
    if kind == "IP_ADDRESS":
        while True:
            if rng.random() < 0.75:
                v = ".".join(str(rng.randint(1, 254)) for _ in range(4))
            else:
                v = str(ipaddress.IPv6Address((0x2001 + rng.randint(0, 0xDFFF)) << 112 | rng.getrandbits(112)))
            ip = ipaddress.ip_address(v)
            if ip.is_global and len(v) > 7 and v not in ("8.8.8.8", "1.1.1.1"):
                return f'SERVER_ADDRESS = "{v}"', v
    if kind == "KEY":
        fmt = rng.choice(["github", "aws", "slack", "stripe", "base64", "sendgrid", "hex"])
        v = {
            "github": lambda: "ghp_" + _rand(rng, an, 36),
            "aws": lambda: "AKIA" + _rand(rng, string.ascii_uppercase + "234567", 16),
            "slack": lambda: f"xoxb-{rng.randint(10**9, 10**10)}-{rng.randint(10**11, 10**12)}-{_rand(rng, an, 24)}",
            "stripe": lambda: "sk_live_" + _rand(rng, an, 24),
            "base64": lambda: _rand(rng, an + "+/", rng.randint(32, 44)),
            "sendgrid": lambda: f"SG.{_rand(rng, an, 22)}.{_rand(rng, an, 43)}",
            "hex": lambda: _rand(rng, "0123456789abcdef", 40),
        }[fmt]()
        return f'API_TOKEN = "{v}"', v
    v = _rand(rng, an, rng.randint(6, 10)) + rng.choice("!#%&*?") + str(rng.randint(0, 99))
    return rng.choice([f'db_password = "{v}"', f"  password: {v}", f'"password": "{v}",']), v


def build_set(files: list[Path], seed: int) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for i, path in enumerate(files):
        text = path.read_text(errors="replace")
        truth: list[tuple[int, int, str]] = [(s, e, "EMAIL") for s, e in real_addresses(text)]
        if i % 2 == 0:
            for kind in rng.sample(TYPES, rng.randint(1, 3)):
                line, value = plant_value(rng, kind)
                starts = [0, *(m.end() for m in re.finditer("\n", text))]
                pos = rng.choice(starts)
                shift = len(line) + 1
                truth = [(s + shift if s >= pos else s, e + shift if s >= pos else e, t) for s, e, t in truth]
                text = text[:pos] + line + "\n" + text[pos:]
                s = pos + line.index(value)
                truth.append((s, s + len(value), kind))
        docs.append({"path": str(path), "text": text, "truth": truth, "planted": i % 2 == 0})
    return docs


# ------------------------------------------------------------------ systems: text -> [(start, end, type)]


def stackv2_system(overrides: list[str]):
    from stackv2.config import apply_overrides, from_dict
    from stackv2.pii import PiiConfig, redact
    from stackv2.pii.engine import get_engine

    cfg = from_dict(PiiConfig, apply_overrides({}, overrides), "pii")
    get_engine(cfg)
    return lambda text: [(s.start, s.end, s.entity) for s in redact(text, cfg).spans]


def datatrove_system():
    from datatrove.pipeline.formatters.pii import PIIFormatter

    f = PIIFormatter()

    def spans(text: str):
        """PIIFormatter's own replacers (regex + validator), as ``format`` applies them, with offsets."""
        out = []
        for rep, kind in ((f.emails_replacer, "EMAIL"), (f.ip_replacer, "IP_ADDRESS")):
            out += [
                (m.start(), m.end(), kind)
                for m in rep.regex.finditer(text)
                if not rep.validator or rep.validator(m.group(0))
            ]
        return out

    return spans, f.format


def presidio_system():
    """presidio's predefined recognizers (no spaCy NER model is installed: the shipped blank pipeline)."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    from stackv2.pii.engine import BLANK_SPACY, install_offline_tldextract

    install_offline_tldextract()
    engine = AnalyzerEngine(nlp_engine=SpacyNlpEngine(models=[{"lang_code": "en", "model_name": str(BLANK_SPACY)}]))
    names = {"EMAIL_ADDRESS": "EMAIL", "IP_ADDRESS": "IP_ADDRESS"}
    return lambda text: [
        (r.start, r.end, names.get(r.entity_type, "OTHER:" + r.entity_type))
        for r in engine.analyze(text=text, language="en")
    ]


def score(docs: list[dict], detections: list[list[tuple[int, int, str]]]) -> dict:
    tp, fp, fn, other = Counter(), Counter(), Counter(), Counter()
    for doc, found in zip(docs, detections, strict=True):
        truth = doc["truth"]
        for s, e, t in found:
            if t.startswith("OTHER:"):
                other[t[6:]] += 1
            elif any(t == tt and s < te and ts < e for ts, te, tt in truth):
                tp[t] += 1
            else:
                fp[t] += 1
        for ts, te, tt in truth:
            if not any(t == tt and s < te and ts < e for s, e, t in found):
                fn[tt] += 1
    per_type = {}
    for t in TYPES:
        n_truth = sum(1 for d in docs for *_, tt in d["truth"] if tt == t)
        found_truth = n_truth - fn[t]
        per_type[t] = {
            "truth": n_truth,
            "detections": tp[t] + fp[t],
            "false_positives": fp[t],
            "precision": round(tp[t] / (tp[t] + fp[t]), 3) if tp[t] + fp[t] else None,
            "recall": round(found_truth / n_truth, 3) if n_truth else None,
        }
    return {"per_type": per_type, "other_detections": dict(other.most_common())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-bytes", type=int, default=100_000, help="presidio's defaults are quadratic in size")
    ap.add_argument("--systems", default="stackv2,datatrove,presidio")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--pii", action="append", default=[], metavar="KEY=VALUE", help="PiiConfig override for stackv2")
    args = ap.parse_args(argv)

    root = Path(sysconfig.get_paths()["purelib"])
    docs = build_set(corpus_files(root, args.files, args.seed, args.max_bytes), args.seed)
    mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    truth = Counter(t for d in docs for *_, t in d["truth"])
    print(f"labelled set: {len(docs)} files, {mb:.2f} MB, labels {dict(truth)}")
    results = {"files": len(docs), "mb": round(mb, 3), "labels": dict(truth), "systems": {}}
    for name in args.systems.split(","):
        t0 = time.perf_counter()
        if name == "stackv2":
            find = stackv2_system(args.pii)
            timed = None
        elif name == "datatrove":
            find, timed = datatrove_system()
        elif name == "presidio":
            find = presidio_system()
            timed = None
        else:
            raise SystemExit(f"unknown system {name}")
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        detections = [find(d["text"]) for d in docs]
        seconds = time.perf_counter() - t0
        if timed is not None:  # datatrove's throughput is that of ``format`` itself, not of our span extraction
            t0 = time.perf_counter()
            for d in docs:
                timed(d["text"])
            seconds = time.perf_counter() - t0
        res = score(docs, detections)
        res.update(setup_s=round(setup, 2), seconds=round(seconds, 2), mb_per_s=round(mb / seconds, 3))
        results["systems"][name] = res
        print(f"\n== {name}: setup {setup:.1f} s, {seconds:.1f} s for {mb:.2f} MB = {mb / seconds:.3f} MB/s (1 core)")
        for t, r in res["per_type"].items():
            print(
                f"  {t:<11} precision {r['precision']}  recall {r['recall']}  "
                f"(detections {r['detections']}, false {r['false_positives']}, labelled {r['truth']})"
            )
        if res["other_detections"]:
            print(f"  other types detected: {res['other_detections']}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
