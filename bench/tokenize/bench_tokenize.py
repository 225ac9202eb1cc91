"""Tokens/s of the tokenize stage vs raw ``Tokenizer.encode_batch`` and datatrove's ``DocumentTokenizer``.

Same texts for every contender: the ``.py`` files of the installed distributions (one repository per top-level
package, as in the demo corpus), up to ``--mb`` MB. Contenders, each run ``--repeat`` times (best kept):

* ``raw encode_batch``: ``Tokenizer.encode_batch(contents)`` on all cores, nothing else (the reference limit);
* ``stage core (<engine>)``: what one Spark task of the stage does — repository documents, FIM, encoding,
  writing Megatron ``.bin/.idx`` and datatrove ``.ds`` files (``stackv2.tokenize.stream.tokenize_shard``); the
  tiktoken engine includes its start-up check of the first ``verify_bytes`` against ``tokenizers``;
* ``datatrove DocumentTokenizer``: the same contents as documents, written to ``.ds`` files (its defaults);
* ``spark stage`` (``--spark``): the whole stage through Spark ``local[*]`` on a release made of the same files.

The tiktoken engine's ids are checked against the ``tokenizers`` engine on the whole sample (raw texts and token
files); ``engines_agree.py`` does the same on the demo corpus, with PII placeholders spliced in.

    .venv/bin/python bench/tokenize/bench_tokenize.py --mb 20 --spark
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer

from stackv2.tokenize.config import TIKTOKEN, TOKENIZERS, TokenizeConfig
from stackv2.tokenize.fast import make_encoder
from stackv2.tokenize.format import EOS
from stackv2.tokenize.stream import FileRow, TokenSink, tokenize_shard
from stackv2.tokenize.tokenizer import DocumentEncoder, load_tokenizer, train_tokenizer

SITE = Path(pa.__file__).resolve().parent.parent


def corpus(max_bytes: int) -> list[FileRow]:
    rows, total = [], 0
    for p in sorted(SITE.rglob("*.py")):
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = p.relative_to(SITE)
        rows.append(FileRow(f"pypi/{rel.parts[0]}", "/" + "/".join(rel.parts[1:]), str(len(rows)), "Python", text))
        total += len(text.encode())
        if total >= max_bytes:
            break
    return sorted(rows, key=lambda r: (r.repo_name, r.path))


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    t0 = time.perf_counter()
    tokens = fn()
    return time.perf_counter() - t0, tokens


def stage_core(rows: list[FileRow], tok_path: Path, engine: str, out: Path) -> Callable[[], int]:
    cfg = TokenizeConfig(engine=engine)

    def run() -> int:
        shutil.rmtree(out, ignore_errors=True)
        encoder = make_encoder(load_tokenizer(tok_path), engine, cfg.verify_bytes)
        sink = TokenSink(out, "part-00000", cfg.formats, encoder.dtype, tok_path.name)
        for _ in tokenize_shard(rows, encoder, cfg, sink, "part-00000"):
            pass
        sink.close()
        return sink.tokens

    return run


def datatrove_run(rows: list[FileRow], tok_path: Path, out: Path) -> Callable[[], int]:
    def run() -> int:
        shutil.rmtree(out, ignore_errors=True)
        step = DocumentTokenizer(str(out), str(tok_path), eos_token=EOS, seed=0)
        step.run(iter([Document(text=r.content, id=r.blob_id) for r in rows]))
        return int(step.stats["tokens"].total)

    return run


def spark_stage(rows: list[FileRow], tok_path: Path, work: Path, engine: str) -> Callable[[], int]:
    from pipelines._job import StageContext, run_stage
    from pipelines._session import spark_session
    from pipelines.stages.tokenize import STAGE
    from stackv2.config import RunConfig, SparkConfig
    from stackv2.workdir import adopt_outputs

    cores = os.cpu_count() or 1
    (work / "shards" / "data").mkdir(parents=True, exist_ok=True)  # the shards stage's row table
    pq.write_table(pa.Table.from_pylist([r._asdict() for r in rows]), work / "shards" / "data" / "part-00000.parquet")
    adopt_outputs(work / "shards")
    cfg = RunConfig(
        work_dir=str(work),
        spark=SparkConfig(master=f"local[{cores}]", shuffle_partitions=cores, driver_memory="2g"),
        tokenize=TokenizeConfig(tokenizer=str(tok_path), engine=engine),
    )
    spark = spark_session(cfg.spark)

    def run() -> int:
        ctx = StageContext(spark=spark, cfg=cfg, work_dir=work, previous="shards", config_hash=str(time.time()))
        stats, _ = run_stage(ctx, "tokenize", STAGE.run)
        return stats.extra["tokens"]

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=20, help="MB of source text")
    ap.add_argument("--tokenizer", default=None, help="tokenizer.json (default: train a 49,152 BPE on the texts)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--spark", action="store_true", help="also run the Spark stage end to end")
    ap.add_argument("--out", default=None, help="folder for the trained tokenizer and the results JSON")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-tokenize-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = corpus(int(args.mb * 1e6))
    text_bytes = sum(len(r.content.encode()) for r in rows)
    print(
        f"{len(rows)} files, {len({r.repo_name for r in rows})} repositories, {text_bytes / 1e6:.1f} MB, "
        f"{cores} cores",
        file=sys.stderr,
    )
    tok_path = Path(args.tokenizer) if args.tokenizer else out / "tokenizer.json"
    if not tok_path.exists():
        t0 = time.perf_counter()
        train_tokenizer([r.content for r in rows], 49_152).save(str(tok_path))
        print(f"trained 49,152 BPE in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    tok = load_tokenizer(tok_path)
    contents = [r.content for r in rows]

    contenders: dict[str, Callable[[], int]] = {
        "raw encode_batch": lambda: sum(len(e.ids) for e in tok.encode_batch(contents, add_special_tokens=False)),
        f"stage core ({TOKENIZERS})": stage_core(rows, tok_path, TOKENIZERS, out / "core-tokenizers"),
        f"stage core ({TIKTOKEN})": stage_core(rows, tok_path, TIKTOKEN, out / "core-tiktoken"),
        "datatrove DocumentTokenizer": datatrove_run(rows, tok_path, out / "datatrove"),
    }
    if args.spark:
        contenders[f"spark stage ({TOKENIZERS})"] = spark_stage(rows, tok_path, out / "spark-tk", TOKENIZERS)
        contenders[f"spark stage ({TIKTOKEN})"] = spark_stage(rows, tok_path, out / "spark-tt", TIKTOKEN)
    results = {}
    for _ in range(args.repeat):  # interleave the contenders so load spikes hit all of them alike
        for name, fn in contenders.items():
            seconds, tokens = timed(fn)
            prev = results.get(name)
            if prev is None or seconds < prev["seconds"]:
                results[name] = {"seconds": round(seconds, 3), "tokens": tokens}
    for r in results.values():
        r["tokens_per_s"] = round(r["tokens"] / r["seconds"])
        r["tokens_per_s_per_core"] = round(r["tokens_per_s"] / cores)
    raw = results["raw encode_batch"]["tokens_per_s"]
    dt = results["datatrove DocumentTokenizer"]["tokens_per_s"]
    for r in results.values():
        r["vs_raw_encode_batch"] = round(r["tokens_per_s"] / raw, 2)
        r["vs_datatrove"] = round(r["tokens_per_s"] / dt, 2)

    fast = make_encoder(load_tokenizer(tok_path), TIKTOKEN)
    same_raw = fast.encode_texts(contents) == DocumentEncoder(load_tokenizer(tok_path)).encode_texts(contents)
    core = {e: (out / f"core-{e}" / "megatron" / "part-00000.bin").read_bytes() for e in (TOKENIZERS, TIKTOKEN)}
    report = {
        "files": len(rows),
        "mb": round(text_bytes / 1e6, 1),
        "cores": cores,
        "tiktoken_ids_identical_raw": same_raw,
        "tiktoken_token_files_identical": core[TOKENIZERS] == core[TIKTOKEN],
        "results": results,
    }
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print("\n| contender | tokens | s | tokens/s | tokens/s/core | × raw encode_batch | × datatrove |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['tokens']:,} | {r['seconds']} | {r['tokens_per_s']:,} | {r['tokens_per_s_per_core']:,} "
            f"| {r['vs_raw_encode_batch']} | {r['vs_datatrove']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
