"""Project the measured scale runs to the 2023-09-06 export: core-hours and shuffle volume per stage.

Per stage, a least-squares line ``cost = fixed + per_file * files_in`` is fitted through the runs (each run one
point; files_in = the stage's rows in), for CPU seconds and for shuffle bytes written. The fixed part (JVM and
Python worker start-up, per-job scheduling, model loading) does not grow with the archive; the per-file slope is
what the projection multiplies. Assumptions (docs/scaling.md states each one):

* ``--files`` files reach fetch (default 3.0e9: The Stack v2 card's "over 3B files", 67.5 TB);
* every later stage sees the fraction of those files that it saw in the largest measured run;
* per-file cost does not depend on scale (no superlinear step): checked, as far as the runs allow, by the fit's
  residuals printed beside each slope.

    python -m bench.scale.project /tmp/scale/r*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares ``y = a + b x``; returns (a, b, max relative residual)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    a = my - b * mx
    worst = max((abs(a + b * x - y) / y for x, y in zip(xs, ys, strict=True) if y), default=0.0)
    return a, b, worst


def project(runs: list[dict], files: float, metric: str = "cpu_seconds") -> list[dict]:
    runs = sorted(runs, key=lambda r: r["stages"][0]["rows_in"])
    largest = runs[-1]
    first = largest["stages"][0]["rows_in"]
    fetch_in = next((s["rows_in"] for s in largest["stages"] if s["stage"] == "fetch"), first)
    rows = []
    for st in largest["stages"]:
        name = st["stage"]
        points = [
            next(s for s in r["stages"] if s["stage"] == name)
            for r in runs
            if any(s["stage"] == name for s in r["stages"])
        ]
        xs = [p["rows_in"] for p in points]
        cpu_a, cpu_b, cpu_res = fit(xs, [p.get(metric) or 0.0 for p in points])
        _, sh_b, _ = fit(xs, [p.get("shuffle_write_bytes", 0) for p in points])
        share = st["rows_in"] / fetch_in
        n = files * share
        rows.append(
            {
                "stage": name,
                "runs": len(points),
                "files_in_share": round(share, 3),
                "files_in": n,
                "fixed_cpu_s": round(cpu_a, 1),
                "cpu_ms_per_file": round(cpu_b * 1e3, 3),
                "fit_max_residual": round(cpu_res, 3),
                "shuffle_bytes_per_file": round(sh_b, 1),
                # A slope <= 0 is noise (the stage's fixed cost swamps its per-file cost): not projected.
                "core_hours": n * cpu_b / 3600 if cpu_b > 0 else None,
                "shuffle_tb": n * sh_b / 1e12,
                "peak_rss_gb_2_slots": round((st["peak_rss_bytes"] or 0) / 1e9, 2),
            }
        )
    return rows


def totals(runs: list[dict], through: str = "shards") -> list[dict]:
    """Per run, the stages from the first to ``through``: files and GB of content entering the first (extract's
    listing), CPU seconds, CPU seconds per GB and ms per file, and growth: how the CPU per file compares with the
    smallest run's (1.0 is linear; 1.1 is 10 % more per file)."""
    out = []
    for r in sorted(runs, key=lambda r: r["stages"][0]["rows_in"]):
        names = [s["stage"] for s in r["stages"]]
        upto = r["stages"][: names.index(through) + 1] if through in names else r["stages"]
        files, gb = upto[0]["rows_in"], upto[0]["bytes_in"] / 1e9
        cpu = sum(s.get("cpu_seconds") or 0.0 for s in upto)
        out.append(
            {
                "label": r.get("label", ""),
                "files": files,
                "gb": round(gb, 3),
                "stages": f"{upto[0]['stage']}..{upto[-1]['stage']}",
                "cpu_seconds": round(cpu, 1),
                "cpu_s_per_gb": round(cpu / gb, 1) if gb else None,
                "cpu_ms_per_file": round(cpu / files * 1e3, 3),
            }
        )
    for t in out:
        t["per_file_vs_smallest"] = round(t["cpu_ms_per_file"] / out[0]["cpu_ms_per_file"], 3)
    return out


def totals_markdown(rows: list[dict]) -> str:
    lines = [
        "| run | files | GB of content | stages | CPU s | CPU s / GB | CPU ms / file | per file vs smallest |",
        "|" + "---|" * 8,
    ]
    for t in rows:
        lines.append(
            f"| {t['label']} | {t['files']:,} | {t['gb']} | {t['stages']} | {t['cpu_seconds']:,} "
            f"| {t['cpu_s_per_gb']} | {t['cpu_ms_per_file']} | {t['per_file_vs_smallest']} |"
        )
    return "\n".join(lines)


def markdown(rows: list[dict], files: float) -> str:
    total = sum(r["core_hours"] for r in rows if r["core_hours"] is not None)
    lines = [
        f"Projection for {files:.3g} files reaching fetch:",
        "",
        "| stage | files in (share) | fixed s | ms / file | fit residual | core-hours | share of total "
        "| shuffle B / file | shuffle TB |",
        "|" + "---|" * 9,
    ]
    for r in rows:
        measured = r["core_hours"] is not None
        hours = f"{r['core_hours']:,.0f}" if measured else "not measurable"
        share = f"{r['core_hours'] / total:.0%}" if measured else "—"
        lines.append(
            f"| {r['stage']} | {r['files_in']:.3g} ({r['files_in_share']}) | {r['fixed_cpu_s']} "
            f"| {r['cpu_ms_per_file']} | {r['fit_max_residual']:.0%} | {hours} | {share} "
            f"| {r['shuffle_bytes_per_file']:,.0f} "
            f"| {r['shuffle_tb']:,.1f} |"
        )
    lines.append(f"| **total** | | | | | **{total:,.0f}** | | | **{sum(r['shuffle_tb'] for r in rows):,.1f}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="JSON files written by bench.scale.run --json")
    p.add_argument("--files", type=float, default=3.0e9, help="files reaching fetch in the full run")
    p.add_argument(
        "--metric",
        default="cpu_seconds",
        choices=["cpu_seconds", "task_seconds"],
        help="cost measure: CPU of the process tree (default) or Spark task time (stopped runs)",
    )
    p.add_argument("--through", default="shards", help="last stage of the per-run totals (default: shards)")
    a = p.parse_args(argv)
    runs = [json.loads(r.read_text()) for r in a.results]
    print(markdown(project(runs, a.files, a.metric), a.files))
    print()
    print(totals_markdown(totals(runs, a.through)))


if __name__ == "__main__":
    main()
