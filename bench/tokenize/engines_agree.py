"""Both engines give the same ids for every document of the demo corpus, as it is and with PII placeholders in it.

Corpus: what ``stackv2 demo`` archives by default (``--max-repos 60 --max-files-per-repo 400``, ``DEMO_INCLUDE``
first), every file that decodes as fetch decodes it, one repository per distribution. Each repository becomes a
document (metadata on, every file FIM-transformed, so sentinels and cuts fall everywhere) and is encoded by the
``tokenizers`` engine and by the ``tiktoken`` engine (no start-up budget: nothing but the two engines). Then the
same again with placeholders spliced into every file at seeded positions (``--placeholders`` per file), mid-word
and mid-line alike. Reports files holding special strings, documents compared, and every difference.
``--hypothesis N`` also runs N cases of the tests' mixed-text strategy (special strings whole, cut and glued,
placeholders, Unicode; ``tests/test_tokenize_fast.py``) against this tokenizer: both engines, and HF's own
added-token matching with only the placeholders added. Exit status 1 on any difference.

    .venv/bin/python bench/tokenize/engines_agree.py [--tokenizer TOK] [--out /tmp/engines] [--hypothesis 5000]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

from tokenizers import Tokenizer

from pipelines.cli import DEMO_INCLUDE, _installed
from stackv2.swh.archive.installed import installed_distributions
from stackv2.text.decode import decode_content
from stackv2.tokenize.config import TokenizeConfig
from stackv2.tokenize.fast import TiktokenEncoder
from stackv2.tokenize.format import format_repo
from stackv2.tokenize.tokenizer import PLACEHOLDERS, SPECIAL_TOKENS, DocumentEncoder, load_tokenizer, train_tokenizer

MAX_BYTES = 10 * 1024 * 1024


def demo_repos(max_repos: int, max_files: int) -> dict[str, list[tuple[str, str]]]:
    repos = {}
    for dist in installed_distributions(max_repos, max_files, include=_installed(DEMO_INCLUDE)):
        files = []
        for path, local in dist.files.items():
            raw = local.read_bytes()
            if len(raw) < MAX_BYTES and b"\0" not in raw and (decoded := decode_content(raw)) is not None:
                files.append(("/" + path, decoded[0]))
        if files:
            repos[dist.name] = files
    return repos


def with_placeholders(repos: dict[str, list[tuple[str, str]]], per_file: int, seed: int) -> dict:
    rng = random.Random(seed)
    out = {}
    for name, files in repos.items():
        spliced = []
        for path, text in files:
            for _ in range(per_file):
                at = rng.randint(0, len(text))
                text = text[:at] + rng.choice(PLACEHOLDERS) + text[at:]
            spliced.append((path, text))
        out[name] = spliced
    return out


def compare(repos: dict, slow: DocumentEncoder, fast: TiktokenEncoder) -> dict:
    cfg = TokenizeConfig(metadata_rate=1.0, fim_repo_rate=1.0, fim_file_rate=1.0)
    docs = [format_repo(name, files, cfg) for name, files in repos.items()]
    timings, encoded = {}, {}
    for name, enc in (("tokenizers", slow), ("tiktoken", fast)):
        t0 = time.perf_counter()
        encoded[name] = enc.encode(docs)
        timings[name] = round(time.perf_counter() - t0, 2)
    differ = [
        d.repo_name
        for d, a, b in zip(docs, encoded["tokenizers"], encoded["tiktoken"], strict=True)
        if a.ids.tolist() != b.ids.tolist() or a.file_tokens != b.file_tokens
    ]
    placeholder_ids = set(slow.placeholder_ids.values())
    return {
        "documents": len(docs),
        "tokens": sum(len(e.ids) for e in encoded["tokenizers"]),
        "placeholder_tokens": sum(int(sum(i in placeholder_ids for i in e.ids.tolist())) for e in encoded["tiktoken"]),
        "seconds": timings,
        "documents_differing": differ,
    }


def mixed_text_cases(tok_path: Path, examples: int) -> int:
    """Texts checked by ``examples`` hypothesis cases; raises on the first difference."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for ``tests``
    from tests.test_tokenize_fast import MIXED_TEXT

    slow, fast = DocumentEncoder(load_tokenizer(tok_path)), TiktokenEncoder(load_tokenizer(tok_path))
    conf = json.loads(Tokenizer.from_file(str(tok_path)).to_str())
    conf["added_tokens"] = [t for t in conf["added_tokens"] if t["content"] in PLACEHOLDERS]
    placeholders_only = Tokenizer.from_str(json.dumps(conf))
    checked = [0]

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.one_of(MIXED_TEXT, st.text(max_size=300)), min_size=1, max_size=8))
    def check(texts: list[str]) -> None:
        ids = slow.encode_texts(texts)
        assert fast.encode_texts(texts) == ids
        assert ids == [e.ids for e in placeholders_only.encode_batch(texts, add_special_tokens=False)]
        checked[0] += len(texts)

    check()
    return checked[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-repos", type=int, default=60)
    ap.add_argument("--max-files-per-repo", type=int, default=400)
    ap.add_argument("--tokenizer", default=None, help="tokenizer.json (default: a 49,152 BPE trained on the corpus)")
    ap.add_argument("--train-mb", type=float, default=10, help="MB of the corpus the default tokenizer learns from")
    ap.add_argument("--placeholders", type=int, default=3, help="placeholders spliced into each file")
    ap.add_argument("--hypothesis", type=int, default=0, help="cases of the mixed-text property to run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="engines-agree-"))
    out.mkdir(parents=True, exist_ok=True)
    repos = demo_repos(args.max_repos, args.max_files_per_repo)
    contents = [c for files in repos.values() for _, c in files]
    special_strings = tuple(dict.fromkeys(SPECIAL_TOKENS + PLACEHOLDERS))
    specials = re.compile("|".join(map(re.escape, special_strings)))
    tok_path = Path(args.tokenizer) if args.tokenizer else out / "tokenizer.json"
    if not tok_path.exists():
        sample, size = [], 0
        for text in random.Random(0).sample(contents, len(contents)):
            sample.append(text)
            size += len(text.encode())
            if size >= args.train_mb * 1e6:
                break
        train_tokenizer(sample, 49_152).save(str(tok_path))
    slow = DocumentEncoder(load_tokenizer(tok_path))
    fast = TiktokenEncoder(load_tokenizer(tok_path))
    report = {
        "repositories": len(repos),
        "files": len(contents),
        "mb": round(sum(len(c.encode()) for c in contents) / 1e6, 1),
        "files_with_special_strings": sum(1 for c in contents if specials.search(c)),
        "special_strings_in_content": {t: n for t in special_strings if (n := sum(c.count(t) for c in contents))},
        "tokenizer": str(tok_path),
        "as_is": compare(repos, slow, fast),
        "with_placeholders": compare(with_placeholders(repos, args.placeholders, seed=1), slow, fast),
    }
    if args.hypothesis:
        report["hypothesis"] = {"cases": args.hypothesis, "texts": mixed_text_cases(tok_path, args.hypothesis)}
    (out / "engines_agree.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 1 if report["as_is"]["documents_differing"] or report["with_placeholders"]["documents_differing"] else 0


if __name__ == "__main__":
    sys.exit(main())
