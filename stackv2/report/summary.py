"""The one-screen summary printed at the end of a run, from the stages' ``_stats.json``."""

from __future__ import annotations

from pathlib import Path

from stackv2.release.card import malware_note
from stackv2.stats import StageStats


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def run_summary(stats: list[StageStats], work_dir: Path) -> str:
    lines = [f"stackv2 run summary ({work_dir})", ""]
    lines.append(f"{'stage':<11} {'in':>9} {'out':>9} {'rejected':>9}  {'time':>7}  rejected by reason")
    for s in stats:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.rejected.items(), key=lambda kv: -kv[1]))
        lines.append(
            f"{s.stage:<11} {s.rows_in:>9,} {s.rows_out:>9,} {s.rows_rejected:>9,}  {s.seconds:>6.1f}s  {reasons}"
        )
    by_stage = {s.stage: s for s in stats}
    if "extract" in by_stage:
        e = by_stage["extract"].extra
        lines.append("")
        lines.append(
            f"repositories: {e.get('repositories', 0):,} selected of {e.get('roots', 0):,} roots; "
            f"files: {by_stage['extract'].rows_out:,} ({_mb(e.get('bytes', 0))})"
        )
    if "fetch" in by_stage:
        f = by_stage["fetch"].extra
        encodings = ", ".join(f"{k} {v}" for k, v in sorted(f.get("encodings", {}).items(), key=lambda kv: -kv[1]))
        lines.append(
            f"fetched: {by_stage['fetch'].rows_out:,} files, {_mb(f.get('bytes', 0))} of text from "
            f"{f.get('unique_blobs', 0):,} unique blobs; encodings: {encodings}"
        )
    if "near_dedup" in by_stage:
        langs = by_stage["near_dedup"].extra.get("languages", {})
        clusters = sum(v.get("clusters", 0) for v in langs.values() if isinstance(v, dict))
        lines.append(f"near-duplicate clusters: {clusters:,} over {len(langs)} languages")
    if "pii" in by_stage:
        p = by_stage["pii"].extra
        counts = ", ".join(f"{k} {v}" for k, v in sorted(p.get("redactions", {}).items()) if v)
        lines.append(f"PII: {p.get('files_with_pii', 0):,} files redacted ({counts or 'nothing found'})")
    if "malware" in by_stage:
        m = by_stage["malware"]
        top = ", ".join(f"{k} {v}" for k, v in m.extra.get("top_signatures", {}).items())
        lines.append(
            f"malware: {malware_note(m)}" if not top else f"malware: {m.rows_rejected:,} files removed ({top})"
        )
    if "notebooks" in by_stage:
        n = by_stage["notebooks"]
        lines.append(
            f"notebooks: {n.rows_in:,} in the-stack-v2, {n.extra.get('scripts', 0):,} scripts and "
            f"{n.extra.get('structured', 0):,} structured kept"
        )
    if "shards" in by_stage:
        for name, p in by_stage["shards"].extra.get("products", {}).items():
            files = sum(v["files"] for v in p.get("languages", {}).values())
            size = sum(v["bytes"] for v in p.get("languages", {}).values())
            lines.append(f"{name}: {files:,} files ({_mb(size)}) from {p.get('repos', 0):,} repositories")
    if "tokenize" in by_stage:
        t = by_stage["tokenize"].extra
        lines.append(
            f"tokens: {t.get('tokens', 0):,} in {t.get('documents', 0):,} repository documents "
            f"({t.get('fim_files', 0):,} files with FIM)"
        )
    for s in stats:
        for key, value in s.extra.items():
            if key.startswith("summary_"):
                lines.append(f"{key.removeprefix('summary_').replace('_', ' ')}: {value}")
    lines.append("")
    lines.append("outputs:")
    for s in stats:
        lines.append(f"  {s.stage:<11} {work_dir / s.stage}")
    return "\n".join(lines)
