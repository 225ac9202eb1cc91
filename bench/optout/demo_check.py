"""Acceptance check of ``stackv2 optout apply`` on a finished demo run: after the apply, no file under the work
folder holds a row, a tree, a name or a token document of the repositories that opted out (docs/optout.md).

    .venv/bin/stackv2 demo --out /tmp/demo15
    .venv/bin/python bench/optout/demo_check.py /tmp/demo15

The demo's work folder is copied (the original stays as it is); the check runs on the copy. It does not trust the
tool: before the apply it collects what identifies the requesters' data (their directory ids, the blobs and the
distinctive lines only their files hold), then scans every file of the work folder for them, Parquet cell by cell,
other files byte by byte, and the Megatron documents decoded back to text. The audit folder is left out: it names
the requesters by design. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from stackv2.optout.registry import Matcher, load_registry
from stackv2.optout.release import products
from stackv2.release.layout import file_columns, shard_files
from stackv2.storage import location
from stackv2.tokenize.megatron import MegatronReader
from stackv2.tokenize.tokenizer import load_tokenizer
from stackv2.workdir import OPTOUT_AUDIT, release_dir, tokens_dir

REQUESTS = [
    {"id": "oo-1", "date": "2024-01-10", "user": "psf", "repos": "all"},
    {"id": "oo-2", "date": "2024-02-01", "user": "pypa", "repos": ["pypa/pip"]},
    {"id": "oo-3", "date": "2024-03-05", "user": "Yelp", "repos": "all"},
]
#: Lines shorter than this are too common to say whose file they come from.
MIN_LINE = 30


def content_rows(work: Path) -> pa.Table:
    """Every row with content the run kept: every product's released files and the dedup stages' rejected rows
    (promotable)."""
    columns = ["repo_name", "directory_id", "blob_id", "content"]
    shards = [s for product in products(location(release_dir(work))) for s in shard_files(product)]
    tables = [t for shard in shards for t in file_columns(shard, columns)]
    for table in ("near_dedup/rejected", "exact_dedup/rejected"):
        files = [str(p) for p in sorted((work / table).glob("*.parquet"))]
        if files:
            tables.append(ds.dataset(files).to_table(columns=columns))
    return pa.concat_tables(tables)


def lines(text: str | None) -> set[str]:
    return {s for s in (line.strip() for line in (text or "").splitlines()) if len(s) >= MIN_LINE}


def fingerprints(work: Path, matcher: Matcher) -> dict:
    """What only the requesters' data holds: directory ids, blobs and lines no other repository's file has."""
    rows = content_rows(work)
    mine = pc.is_valid(matcher.match(rows["repo_name"]))
    theirs, others = rows.filter(mine), rows.filter(pc.invert(mine))
    other_lines = set().union(*map(lines, others["content"].to_pylist()))
    own_lines = set().union(*map(lines, theirs["content"].to_pylist())) - other_lines
    return {
        "repos": sorted(set(theirs["repo_name"].to_pylist())),
        "directories": set(theirs["directory_id"].to_pylist()) - set(others["directory_id"].to_pylist()),
        "blobs": set(theirs["blob_id"].to_pylist()) - set(others["blob_id"].to_pylist()),
        "lines": own_lines,
        "released_files": int(pc.sum(mine.cast(pa.int64())).as_py()),
    }


def decoded_documents(work: Path) -> list[str]:
    tokens = tokens_dir(work)
    tok = load_tokenizer(tokens / "tokenizer.json")
    out = []
    for idx in sorted((tokens / "megatron").glob("*.idx")):
        reader = MegatronReader(idx.with_suffix(""))
        out += [tok.decode(reader[i].tolist(), skip_special_tokens=False) for i in range(len(reader))]
    return out


def lines_in_tokens(work: Path, wanted: set[str]) -> int:
    found = set()
    for doc in decoded_documents(work):
        found |= lines(doc) & wanted
    return len(found)


def scan(work: Path, fp: dict, names: re.Pattern[bytes]) -> dict[str, list[str]]:
    """Every file of the work folder but the audits: where a requester's name, tree or blob still appears.

    ``cluster_id`` is counted apart: a near-duplicate cluster is named after the blob its representative had at
    build time, and keeps that name when the representative opts out (docs/optout.md)."""
    hits: dict[str, list[str]] = {"parquet": [], "other_files": [], "cluster_ids": []}
    ids = fp["directories"] | fp["blobs"]
    for p in sorted(work.rglob("*")):
        if not p.is_file() or p.is_relative_to(work / OPTOUT_AUDIT):
            continue
        if p.suffix == ".parquet":
            t = pq.read_table(p)
            for name in t.column_names:
                if not pa.types.is_string(t.schema.field(name).type) or name == "content":
                    continue
                values = set(pc.unique(t[name]).drop_null().to_pylist())
                if name == "cluster_id":
                    hits["cluster_ids"] += sorted(values & fp["blobs"])
                elif values & ids or any(names.search(v.encode()) for v in values):
                    hits["parquet"].append(f"{p.relative_to(work)}:{name}")
        elif p.suffix not in (".bin", ".ds", ".idx", ".index") and names.search(p.read_bytes()):
            hits["other_files"].append(str(p.relative_to(work)))
    return hits


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path, help="the folder `stackv2 demo --out` wrote (with work/ and run.yaml)")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/optout_demo_check"))
    args = ap.parse_args()
    shutil.rmtree(args.scratch, ignore_errors=True)
    work = args.scratch / "work"
    shutil.copytree(args.demo / "work", work)
    registry = args.scratch / "registry.jsonl"
    registry.write_text("".join(json.dumps(r) + "\n" for r in REQUESTS))
    matcher = Matcher(load_registry(registry))
    cli = [sys.executable, "-m", "pipelines.cli", "optout"]
    common = ["--registry", str(registry), "--release", str(release_dir(work)), "--work", str(work)]

    fp = fingerprints(work, matcher)
    names = re.compile(rb"(?i)(?<![A-Za-z0-9_.-])(psf|yelp)/[A-Za-z0-9_.-]+|pypa/pip(?![A-Za-z0-9_-])")
    token_files = sorted(p for fmt in ("megatron", "datatrove") for p in (tokens_dir(work) / fmt).iterdir())
    before_tokens = {p: sha(p) for p in token_files}
    before = {
        "lines_in_tokens": lines_in_tokens(work, fp["lines"]),
        "verify_exit": subprocess.run([*cli, "verify", *common], capture_output=True).returncode,
    }

    t0 = time.monotonic()
    done = subprocess.run([*cli, "apply", *common, "--config", str(args.demo / "run.yaml")], capture_output=True)
    seconds = time.monotonic() - t0
    if done.returncode:
        print(done.stderr.decode(), file=sys.stderr)
        return 1
    audit = json.loads(done.stdout)
    verify = subprocess.run([*cli, "verify", *common], capture_output=True, text=True)
    hits = scan(work, fp, names)
    untouched = [p for p in token_files if p.exists() and sha(p) == before_tokens[p]]
    rewritten = set(audit["tokens"]["shards_rewritten"])
    expected_untouched = [p for p in token_files if p.name.split(".")[0] not in rewritten]
    result = {
        "requests": len(REQUESTS),
        "repositories": fp["repos"],
        "released_rows_of_requesters": fp["released_files"],
        "distinctive_lines": len(fp["lines"]),
        "own_directories": len(fp["directories"]),
        "own_blobs": len(fp["blobs"]),
        "before": before,
        "apply_seconds": round(seconds, 1),
        "files_removed": audit["files_removed"],
        "promotions": audit["promotions"],
        "tokens": audit["tokens"],
        "after": {
            "lines_in_tokens": lines_in_tokens(work, fp["lines"]),
            "parquet_hits": hits["parquet"],
            "other_file_hits": hits["other_files"],
            "cluster_ids_named_after_a_removed_blob": len(set(hits["cluster_ids"])),
            "verify_exit": verify.returncode,
            "verify_summary": verify.stdout.strip().splitlines()[-1],
            "token_files_untouched_identical": f"{len(untouched)}/{len(expected_untouched)}",
        },
    }
    print(json.dumps(result, indent=2))
    clean = (
        not hits["parquet"]
        and not hits["other_files"]
        and result["after"]["lines_in_tokens"] == 0
        and verify.returncode == 0
        and untouched == expected_untouched
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
