"""The build report: PNG plots (matplotlib), an HTML page showing them with their numbers, and the numbers as JSON.

``ReportData`` holds plain values gathered from a work folder (``pipelines.run_report`` does that): each stage's
stats, the release summary of the ``shards`` stage, near-duplicate cluster sizes, PII counts. Any of them may be
missing (a stage not run): its plot is skipped and the page says what is missing instead of failing.
Figures are drawn with ``matplotlib.figure.Figure`` (no pyplot, no global backend state). The report folder may be
local or a URI (``stackv2.storage``): each file is written whole.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure

from stackv2.release.card import ReleaseSummary, human_bytes
from stackv2.release.products import TRAIN_FULL
from stackv2.stats import StageStats
from stackv2.storage import Location, like, location

TOP_LANGUAGES = 30
KEPT_COLOR = "#495057"
JSON_NAME = "report.json"
HTML_NAME = "index.html"


@dataclass
class ReportData:
    #: Stats of every stage that ran, in pipeline order.
    funnel: list[StageStats] = field(default_factory=list)
    #: Each product the ``shards`` stage wrote, in ``stackv2.release.products`` order.
    products: dict[str, ReleaseSummary] = field(default_factory=dict)
    #: cluster size -> number of near-duplicate clusters of that size
    cluster_sizes: dict[int, int] | None = None
    #: PII type -> redactions
    pii_counts: dict[str, int] | None = None
    #: What the malware scan used, and the signatures that matched (the paper's Table 26): files per signature.
    malware_note: str = ""
    malware_signatures: dict[str, int] = field(default_factory=dict)
    #: What could not be read, one line each (shown on the page, kept in the JSON).
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "funnel": [s.to_dict() for s in self.funnel],
            "products": {name: s.to_dict() for name, s in self.products.items()},
            "cluster_sizes": {str(k): v for k, v in sorted(self.cluster_sizes.items())}
            if self.cluster_sizes is not None
            else None,
            "pii_counts": dict(sorted(self.pii_counts.items())) if self.pii_counts is not None else None,
            "malware_note": self.malware_note,
            "malware_signatures": dict(self.malware_signatures),
            "missing": list(self.missing),
        }


def _figure(n_bars: int, horizontal: bool) -> Figure:
    height = max(3.0, 0.32 * n_bars + 1.2) if horizontal else 4.0
    return Figure(figsize=(9, height), dpi=100, layout="constrained")


def _save(fig: Figure, path: Path | Location) -> Path | Location:
    png = io.BytesIO()
    fig.savefig(png, format="png", metadata={"Software": None})
    location(path).write_bytes(png.getvalue())
    return path


def plot_funnel(funnel: Sequence[StageStats], path: Path | Location) -> Path | Location:
    """Rows kept per stage, with the rows each stage rejected stacked after them, by reason."""
    fig = _figure(len(funnel), horizontal=True)
    ax = fig.add_subplot()
    names = [s.stage for s in funnel][::-1]
    stages = list(funnel)[::-1]
    ax.barh(names, [s.rows_out for s in stages], color=KEPT_COLOR, label="kept")
    left = [s.rows_out for s in stages]
    reasons = sorted({r for s in funnel for r in s.rejected})
    palette = [colormaps["tab20"](i % 20) for i in range(len(reasons))]
    for reason, color in zip(reasons, palette, strict=True):
        counts = [s.rejected.get(reason, 0) for s in stages]
        ax.barh(names, counts, left=left, color=color, label=reason)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    ax.set_xlabel("rows")
    ax.set_title("Rows through the pipeline: kept and rejected by reason")
    fig.legend(loc="outside right upper", fontsize="small")
    return _save(fig, path)


def plot_languages(release: ReleaseSummary, path: Path | Location) -> Path | Location:
    top = list(release.languages.items())[:TOP_LANGUAGES][::-1]
    fig = _figure(len(top), horizontal=True)
    ax = fig.add_subplot()
    bars = ax.barh([k for k, _ in top], [v["bytes"] / 1e6 for _, v in top], color="C0")
    ax.bar_label(bars, labels=[f"{v['files']:,} files" for _, v in top], padding=3, fontsize="small")
    ax.set_xlabel("MB of UTF-8 text")
    ax.set_title(f"Bytes per language (top {min(TOP_LANGUAGES, len(release.languages))} of {len(release.languages)})")
    ax.margins(x=0.2)
    return _save(fig, path)


def _length_label(k: int) -> str:
    """Lower bound of bin ``k`` (sizes in [2**k, 2**(k+1))) in binary units: 512 B, 1 KiB, 2 KiB ..."""
    if k < 0:
        return "0 B"
    unit = min(k // 10, 3)
    return f"{2 ** (k - 10 * unit)} {('B', 'KiB', 'MiB', 'GiB')[unit]}"


def plot_lengths(release: ReleaseSummary, path: Path | Location) -> Path | Location:
    bins = sorted(release.length_histogram)
    fig = _figure(len(bins), horizontal=False)
    ax = fig.add_subplot()
    ax.bar([_length_label(k) for k in bins], [release.length_histogram[k] for k in bins], color="C1")
    ax.set_xlabel("file size (lower bound of a power-of-two bin)")
    ax.set_ylabel("files")
    ax.set_title("File-length distribution of the released files")
    ax.tick_params(axis="x", labelrotation=60, labelsize="small")
    return _save(fig, path)


def plot_clusters(cluster_sizes: Mapping[int, int], path: Path | Location) -> Path | Location:
    sizes = sorted(cluster_sizes)
    fig = _figure(len(sizes), horizontal=False)
    ax = fig.add_subplot()
    ax.bar([str(k) for k in sizes], [cluster_sizes[k] for k in sizes], color="C4")
    ax.set_yscale("log")
    ax.set_xlabel("files in the cluster")
    ax.set_ylabel("clusters")
    ax.set_title("Near-duplicate cluster sizes")
    ax.tick_params(axis="x", labelrotation=60, labelsize="small")
    return _save(fig, path)


def plot_pii(pii_counts: Mapping[str, int], path: Path | Location) -> Path | Location:
    kinds = sorted(pii_counts, key=lambda k: -pii_counts[k])
    fig = _figure(len(kinds), horizontal=False)
    ax = fig.add_subplot()
    bars = ax.bar(kinds, [pii_counts[k] for k in kinds], color="C3")
    ax.bar_label(bars, fmt="{:,.0f}", fontsize="small")
    ax.set_ylabel("redactions")
    ax.set_title("PII redactions by type")
    return _save(fig, path)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.missing{color:#a61e4d}"""


def _section(title: str, png: str | None, table: str, why_missing: str | None) -> str:
    parts = [f"<h2>{html.escape(title)}</h2>"]
    if why_missing:
        parts.append(f'<p class="missing">Not available: {html.escape(why_missing)}</p>')
    else:
        parts.append(f'<img src="{png}" alt="{html.escape(title)}">' + table)
    return "\n".join(parts)


def render(data: ReportData, out: Path | Location) -> Path | Location:
    """Write the PNGs, ``report.json`` and ``index.html`` into ``out``; returns the page's path."""
    folder = location(out)
    folder.mkdir()
    # The charts show the training set when there is one (what the tokens are made of), else the last product.
    shown = TRAIN_FULL if TRAIN_FULL in data.products else next(reversed(data.products), None)
    rel = data.products.get(shown) if shown else None
    langs = rel.languages if rel else {}
    lengths = rel.length_histogram if rel else {}
    clusters, pii = data.cluster_sizes or {}, data.pii_counts or {}
    no_release = "the shards stage has not run (or released no file)"
    funnel_rows = [
        (
            s.stage,
            f"{s.rows_in:,}",
            f"{s.rows_out:,}",
            f"{s.rows_rejected:,}",
            ", ".join(f"{r}: {n:,}" for r, n in sorted(s.rejected.items())) or "-",
        )
        for s in data.funnel
    ]
    sections: list[tuple[str, str, bool, Callable[[Path | Location], Path | Location], str, str]] = [
        (
            "Pipeline funnel",
            "funnel.png",
            bool(data.funnel),
            lambda p: plot_funnel(data.funnel, p),
            _html_table(("stage", "rows in", "rows out", "rejected", "by reason"), funnel_rows),
            "no stage has written its _stats.json yet",
        ),
        (
            f"Bytes per language of {shown}",
            "languages.png",
            bool(langs),
            lambda p: plot_languages(rel, p),
            _html_table(
                ("language", "files", "bytes"),
                [(k, f"{v['files']:,}", human_bytes(v["bytes"])) for k, v in langs.items()],
            ),
            no_release,
        ),
        (
            f"File lengths in {shown}",
            "lengths.png",
            bool(lengths),
            lambda p: plot_lengths(rel, p),
            _html_table(("size from", "files"), [(_length_label(k), f"{v:,}") for k, v in lengths.items()]),
            no_release,
        ),
        (
            "Near-duplicate clusters",
            "clusters.png",
            bool(clusters),
            lambda p: plot_clusters(clusters, p),
            _html_table(("cluster size", "clusters"), [(k, f"{v:,}") for k, v in sorted(clusters.items())]),
            "no near_dedup clusters table (near_dedup not run, or no near-duplicates)",
        ),
        (
            "PII redactions",
            "pii.png",
            bool(pii),
            lambda p: plot_pii(pii, p),
            _html_table(("type", "redactions"), [(k, f"{v:,}") for k, v in sorted(pii.items())]),
            "no PII counts (pii stage not run, or nothing redacted)",
        ),
    ]
    parts = []
    for title, png, present, draw, table, why in sections:
        (folder / png).delete()
        if present:
            draw(like(out, folder / png))
        parts.append(_section(title, png, table, None if present else why))
    if rel:
        lead = "<h2>Products</h2>" + _html_table(
            ("product", "files", "repositories", "languages", "size", "shards", "on disk"),
            [
                (
                    name,
                    f"{s.files:,}",
                    f"{s.repos:,}",
                    len(s.languages),
                    human_bytes(s.bytes),
                    s.shards,
                    human_bytes(s.shard_bytes),
                )
                for name, s in data.products.items()
            ],
        )
        licenses = f"<h2>License types in {shown}</h2>" + _html_table(
            ("license_type", "files"), [(k, f"{v:,}") for k, v in rel.license_types.items()]
        )
    else:
        lead, licenses = '<p class="missing">No release yet: the shards stage has not run.</p>', ""
    missing = "".join(f"<li>{html.escape(m)}</li>" for m in data.missing)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>stackv2 build report</title>"
        f"<style>{_CSS}</style></head><body><h1>stackv2 build report</h1>{lead}"
        + "\n".join(parts)
        + licenses
        + (f"<h2>Malware</h2><p>{html.escape(data.malware_note)}</p>" if data.malware_note else "")
        + (
            _html_table(("signature", "files"), [(k, f"{v:,}") for k, v in data.malware_signatures.items()])
            if data.malware_signatures
            else ""
        )
        + (f"<h2>Inputs not found</h2><ul>{missing}</ul>" if missing else "")
        + f"<p>The same numbers: <a href='{JSON_NAME}'>{JSON_NAME}</a>.</p></body></html>\n"
    )
    (folder / JSON_NAME).write_text(json.dumps(data.to_dict(), indent=2, sort_keys=True) + "\n")
    (folder / HTML_NAME).write_text(page)
    return like(out, folder / HTML_NAME)
