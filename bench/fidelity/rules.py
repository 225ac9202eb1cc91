"""How many files each departure from BigCode's code moves (docs/fidelity.md).

The pipeline from extract to shards runs on one archive in corrected mode, in reference mode, and in corrected mode
with one rule of ``stackv2.config.REFERENCE_RULES`` set to BigCode's value at a time. For each run and product,
the files (repository, path, blob) released by one side only are counted against the corrected run. Each variant
starts from a copy of the corrected run's work folder, so the stages before the one a rule changes are reused.

    python -m bench.fidelity.rules --archive work/demo/archive --out /tmp/fidelity [--github-metadata TABLE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds

from pipelines._job import PIPELINE
from pipelines.runner import run_pipeline
from stackv2.config import REFERENCE, REFERENCE_RULES, RunConfig, apply_overrides, from_dict, to_dict
from stackv2.workdir import committed_files

STAGES = PIPELINE[: PIPELINE.index("shards") + 1]


def released(work: Path) -> dict[str, set[tuple[str, str, str]]]:
    """Product -> its released files, from the shards stage's row table."""
    t = ds.dataset(committed_files(work / "shards" / "data"), format="parquet").to_table(
        columns=["product", "repo_name", "path", "blob_id"]
    )
    out: dict[str, set[tuple[str, str, str]]] = {}
    for p, r, f, b in zip(*(t[c].to_pylist() for c in t.column_names), strict=True):
        out.setdefault(p, set()).add((r, f, b))
    return out


def run(base: dict, work: Path, overrides: list[str], copy_from: Path | None) -> dict[str, set]:
    if copy_from is not None and not work.exists():
        shutil.copytree(copy_from, work)
    data = json.loads(json.dumps(base))
    data["work_dir"] = str(work)
    cfg = from_dict(RunConfig, apply_overrides(data, overrides))
    t0 = time.monotonic()
    run_pipeline(cfg, log=lambda m: None)
    print(f"  {work.name}: {time.monotonic() - t0:.0f}s", file=sys.stderr)
    return released(work)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", required=True, help="an archive folder (orc/ and content/), e.g. the demo's")
    p.add_argument("--out", required=True, help="folder for the runs' work folders and rules.json")
    p.add_argument("--github-metadata", default=None, help="GitHub metadata table or GH Archive events")
    p.add_argument("--origin-pattern", default=None, help="corrected mode's origin regex (default: the paper's)")
    args = p.parse_args(argv)
    out = Path(args.out)
    base = to_dict(RunConfig())
    archive = Path(args.archive).resolve()
    base.update({"graph": str(archive / "orc"), "content_store": str(archive), "stages": list(STAGES)})
    base["github_metadata"] = args.github_metadata
    base["spark"]["master"] = "local[2]"
    if args.origin_pattern:
        base["extract"]["origin_pattern"] = args.origin_pattern

    corrected = run(base, out / "corrected", [], None)
    variants = {"reference": run(base, out / "reference", [f"fidelity={REFERENCE}"], out / "corrected")}
    for setting, value in REFERENCE_RULES:
        variants[setting] = run(base, out / setting, [f"{setting}={json.dumps(value)}"], out / "corrected")

    rows = []
    for name, products in variants.items():
        for product in sorted(set(products) | set(corrected)):
            a, b = corrected.get(product, set()), products.get(product, set())
            both = len(a & b)
            rows.append(
                {
                    "variant": name,
                    "product": product,
                    "corrected": len(a),
                    "variant_files": len(b),
                    "only_corrected": len(a - b),
                    "only_variant": len(b - a),
                    "agreement": round(both / max(len(a | b), 1), 4),
                }
            )
    (out / "rules.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| variant | product | corrected | variant | only corrected | only variant | both / either |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['product']} | {r['corrected']:,} | {r['variant_files']:,} | "
            f"{r['only_corrected']:,} | {r['only_variant']:,} | {r['agreement']:.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
