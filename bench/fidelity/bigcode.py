"""The acceptance check against BigCode's released scripts (docs/fidelity.md, "Checked against BigCode's scripts").

On one archive made by ``bench/scale/generate.py --gharchive`` (real files, synthetic GitHub repositories, GH
Archive hourly event files for them):

1. the GitHub metadata table: ``stackv2 gharchive build`` on the event files;
2. BigCode's scripts (``bench.fidelity.bigcode_run``: ``the_stack/*`` and ``intra_dedup.py``, patched only for
   paths and IO) on the archive and the event files: their ``the-stack-v2`` and ``the-stack-v2-dedup``;
3. our pipeline in reference mode and in corrected mode on the archive and the table, ``extract`` to ``compose``
   (``pii`` drops no row, ``malware`` is off without signatures, ``shards`` writes what compose kept: none of them
   changes which files a product holds, so they are left out);
4. BigCode released no code for the training sets (heuristic filters, decontamination, composition): their
   ``-train-full`` and ``-train-smol`` are their ``-dedup`` files carried through our ``filter`` and ``compose``
   stages in reference mode. The rows carried are our reference ``annotate`` rows of those files (every copy of
   a blob is there, so also the copies our exact dedup did not choose); a file of their ``-dedup`` whose
   repository our ``extract`` did not select cannot be carried and is counted (``not_carried``);
5. per product and mode, the files (repo_name, path, blob_id) in both, ours only and theirs only; agreement is
   both / either; every difference is classified (``bench.fidelity.bigcode_diff``): a tie BigCode broke by
   arrival order, or the rule (docs/fidelity.md) that decides it.

    python -m bench.fidelity.bigcode --files 4000 --out /tmp/fidelity-bigcode

Each step's output is kept under ``--out``; a rerun reuses the steps that completed (delete a folder to redo it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bench.fidelity import bigcode_diff
from bench.fidelity.bigcode_run import DEFAULT_MIRRORS
from bench.scale.generate import ScaleSpec, generate, site_packages
from pipelines.runner import run_pipeline
from stackv2.config import CORRECTED, REFERENCE, RunConfig, from_dict, to_dict
from stackv2.detect.license import load_permissive
from stackv2.release.products import SMOL_COLUMN, THE_STACK_V2, THE_STACK_V2_DEDUP, TRAIN_FULL, TRAIN_SMOL
from stackv2.schema import DEDUP_FIELDS
from stackv2.workdir import committed_files

STAGES = ("extract", "optout", "fetch", "annotate", "exact_dedup", "near_dedup", "filter", "compose")
PRODUCTS = (THE_STACK_V2, THE_STACK_V2_DEDUP, TRAIN_FULL, TRAIN_SMOL)
FILE = ["repo_name", "path", "blob_id"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def call(cmd: list[str], logfile: Path) -> None:
    """Run ``cmd``, its output to ``logfile``; a failure names the log."""
    log(f"{' '.join(cmd[1:4])} ... (log: {logfile})")
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("w") as f:
        if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"failed: {' '.join(cmd)}; see {logfile}")


def stage_table(work: Path, stage: str, output: str = "data", columns: list[str] | None = None) -> pa.Table:
    return ds.dataset(committed_files(work / stage / output), format="parquet").to_table(columns=columns)


def product_files(work: Path, from_stage: str = "exact_dedup") -> dict[str, set[tuple[str, str, str]]]:
    """Product -> files, read from the stages that make them (``stackv2.release.products``)."""

    def files(t: pa.Table) -> set[tuple[str, str, str]]:
        return set(zip(*(t[c].to_pylist() for c in FILE), strict=True))

    out = {}
    if from_stage == "exact_dedup":
        out[THE_STACK_V2] = files(stage_table(work, "exact_dedup", columns=FILE))
        out[THE_STACK_V2_DEDUP] = files(stage_table(work, "near_dedup", columns=FILE))
    composed = stage_table(work, "compose", columns=[*FILE, SMOL_COLUMN])
    out[TRAIN_FULL] = files(composed)
    out[TRAIN_SMOL] = files(composed.filter(composed[SMOL_COLUMN]))
    return out


def run_ours(base: dict, work: Path, overrides: dict) -> float:
    data = json.loads(json.dumps(base))
    data.update(overrides)
    data["work_dir"] = str(work)
    t0 = time.monotonic()
    run_pipeline(from_dict(RunConfig, data), log=lambda m: None)
    return round(time.monotonic() - t0, 1)


def carry_theirs(reference: Path, theirs_dedup: set, target: Path) -> int:
    """Our reference ``annotate`` rows of BigCode's ``-dedup`` files, as ``near_dedup`` output (its
    ``DEDUP_FIELDS`` null: no cluster), written to ``target``; returns how many of their files it lacks."""
    rows = stage_table(reference, "annotate")
    keys = list(zip(*(rows[c].to_pylist() for c in FILE), strict=True))
    keep = pa.array([k in theirs_dedup for k in keys])
    rows = rows.filter(keep)
    for f in DEDUP_FIELDS:
        rows = rows.append_column(f, pa.nulls(len(rows), f.type))
    target.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, target / "part-00000.parquet")
    return len(theirs_dedup) - len(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=4000, help="files in the generated archive")
    p.add_argument("--seed", type=int, default=ScaleSpec.seed)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--the-stack-v2", default=DEFAULT_MIRRORS["the_stack_v2"], help="git dir or checkout")
    p.add_argument("--bigcode-dataset", default=DEFAULT_MIRRORS["bigcode_dataset"], help="git dir or checkout")
    a = p.parse_args(argv)
    out = a.out.resolve()
    archive, table, theirs = out / "archive", out / "github_metadata", out / "bigcode"
    seconds: dict[str, float] = {}
    py = sys.executable

    if not (archive / "generate.json").exists():
        t0 = time.monotonic()
        generate(ScaleSpec(files=a.files, seed=a.seed, gharchive=True), archive, site_packages(), progress=False)
        seconds["generate"] = round(time.monotonic() - t0, 1)
    if not (table / "_summary.json").exists():
        t0 = time.monotonic()
        cmd = [py, "-m", "pipelines.cli", "gharchive", "build", "--events", str(archive / "gharchive")]
        call([*cmd, "--out", str(table), "--set", "spark.master=local[2]"], out / "gharchive.log")
        seconds["gharchive_build"] = round(time.monotonic() - t0, 1)
    if not (theirs / "summary.json").exists():
        t0 = time.monotonic()
        cmd = [py, "-m", "bench.fidelity.bigcode_run", "--archive", str(archive), "--out", str(theirs)]
        cmd += ["--github-events", str(archive / "gharchive"), "--resume"]
        call([*cmd, "--the-stack-v2", a.the_stack_v2, "--bigcode-dataset", a.bigcode_dataset], out / "bigcode.log")
        seconds["bigcode"] = round(time.monotonic() - t0, 1)

    base = to_dict(RunConfig())
    base.update({"graph": str(archive / "orc"), "content_store": str(archive), "github_metadata": str(table)})
    base["stages"] = list(STAGES)
    base["spark"]["master"] = "local[2]"
    for mode in (REFERENCE, CORRECTED):
        log(f"ours, {mode} mode")
        seconds[f"ours_{mode}"] = run_ours(base, out / mode, {"fidelity": mode})
    ours = {mode: product_files(out / mode) for mode in (REFERENCE, CORRECTED)}

    theirs_files = bigcode_diff.theirs_products(theirs)
    carried = out / "theirs-carried"
    for folder in (carried, out / "theirs-train"):  # cheap; made again from this run's files
        shutil.rmtree(folder, ignore_errors=True)
    not_carried = carry_theirs(out / REFERENCE, theirs_files[THE_STACK_V2_DEDUP], carried / "data")
    log("their -dedup through our filter and compose")
    seconds["theirs_train"] = run_ours(
        base, out / "theirs-train", {"fidelity": REFERENCE, "stages": ["filter", "compose"], "input": str(carried)}
    )
    theirs_files.update(product_files(out / "theirs-train", from_stage="compose"))

    facts = bigcode_diff.Facts.load(theirs, {mode: out / mode for mode in ours}, a.bigcode_dataset)
    permissive = load_permissive()
    report = {"files": a.files, "not_carried": not_carried, "seconds": seconds, "products": []}
    for mode, products in ours.items():
        for product in PRODUCTS:
            reference = ours[REFERENCE][product] if mode != REFERENCE else None
            report["products"].append(
                bigcode_diff.compare(
                    mode, product, products[product], theirs_files[product], facts, permissive, reference
                )
            )
    (out / "bigcode.json").write_text(json.dumps(report, indent=2) + "\n")
    print(bigcode_diff.markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
