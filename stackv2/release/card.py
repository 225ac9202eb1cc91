"""The summary of a release's rows and its dataset card (``README.md``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from stackv2 import __version__
from stackv2.malware.database import TEST_DATABASE
from stackv2.release.layout import DATA_DIR, MANIFEST, UNKNOWN_LANGUAGE_DIR, language_dir
from stackv2.release.products import Product
from stackv2.stats import StageStats


@dataclass
class ReleaseSummary:
    """What the card and the report say about the released rows; plain values (kept in the stage's stats)."""

    #: language (``None`` -> ``"unknown"``) -> {"files": n, "bytes": n}
    languages: dict[str, dict[str, int]] = field(default_factory=dict)
    license_types: dict[str, int] = field(default_factory=dict)
    #: floor(log2(length_bytes)) -> files (bin -1 holds empty files)
    length_histogram: dict[int, int] = field(default_factory=dict)
    repos: int = 0
    shards: int = 0
    repo_shards: int = 0
    shard_bytes: int = 0

    @property
    def files(self) -> int:
        return sum(v["files"] for v in self.languages.values())

    @property
    def bytes(self) -> int:
        return sum(v["bytes"] for v in self.languages.values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["length_histogram"] = {str(k): v for k, v in sorted(self.length_histogram.items())}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReleaseSummary:
        d = dict(d)
        d["length_histogram"] = {int(k): int(v) for k, v in d.get("length_histogram", {}).items()}
        return cls(**d)


def release_summary(groups: Iterable[Mapping[str, Any]]) -> ReleaseSummary:
    """Fold rows of (language, license_type, length_bin, files, bytes) — one aggregation — into a summary."""
    s = ReleaseSummary()
    for g in groups:
        lang = g["language"] or UNKNOWN_LANGUAGE_DIR
        entry = s.languages.setdefault(lang, {"files": 0, "bytes": 0})
        entry["files"] += g["files"]
        entry["bytes"] += g["bytes"]
        lt = g["license_type"] or "unknown"
        s.license_types[lt] = s.license_types.get(lt, 0) + g["files"]
        s.length_histogram[g["length_bin"]] = s.length_histogram.get(g["length_bin"], 0) + g["files"]
    s.languages = dict(sorted(s.languages.items(), key=lambda kv: (-kv[1]["bytes"], kv[0])))
    s.license_types = dict(sorted(s.license_types.items()))
    s.length_histogram = dict(sorted(s.length_histogram.items()))
    return s


def registry_date(optout: StageStats | None) -> str | None:
    """The opt-out registry date the ``optout`` stage recorded (``extra["registry_date"]``), if it ran."""
    if optout is None:
        return None
    value = optout.extra.get("registry_date")
    return str(value) if value else None


#: The card's opt-out section, whose paragraph ``stackv2 optout apply`` replaces to state the cutoff it honoured.
OPTOUT_HEADING = "## Opt-out"


def optout_statement(registry: str | None, cutoff: str | None = None) -> str:
    """The card's opt-out paragraph: the build's registry date, or the cutoff applied to the released data."""
    if cutoff:
        return (
            f"Opt-out requests dated on or before **{cutoff}** are honoured: their repositories were removed from "
            "every file of this dataset (`stackv2 optout apply`; the manifest's `cutoff`)."
        )
    if registry:
        return (
            f"Repositories whose owners opted out in the registry dated **{registry}** were removed before download."
        )
    return "No opt-out registry was applied to this build."


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    return next((label for bound, label in bounds if n < bound), "1B<n<10B")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


CITATION = """@article{lozhkov2024starcoder,
  title   = {StarCoder 2 and The Stack v2: The Next Generation},
  author  = {Lozhkov, Anton and Li, Raymond and Ben Allal, Loubna and others},
  journal = {arXiv preprint arXiv:2402.19173},
  year    = {2024}
}"""


#: The malware note of a product made before the scan.
NOT_SCANNED = "Not scanned: the malware scan runs on the training sets, after PII redaction, as the paper's did."


def malware_note(malware: StageStats | None) -> str:
    """What the ``malware`` stage scanned with, for a card (from the stage's stats)."""
    if malware is None:
        return "Not scanned for malware: the malware stage did not run."
    if not malware.extra.get("enabled"):
        return "Not scanned for malware: the scan was off (`malware.enabled`), as it is without a signature database."
    versions = dict(malware.extra.get("versions", {}))
    engine = versions.pop("engine", "ClamAV")
    note = f"Scanned with {engine}; databases: " + ", ".join(f"`{k}` ({v})" for k, v in sorted(versions.items()))
    if set(versions) == {TEST_DATABASE}:
        note += (
            ". That is only a test database built with `sigtool` (the EICAR test file), not ClamAV's official "
            "signatures: the scan ran, but it could not have found real malware."
        )
    found = malware.extra.get("top_signatures", {})
    if found:
        note += " Files removed, by signature: " + ", ".join(f"{k} {v:,}" for k, v in found.items()) + "."
    return note


def dataset_card(
    summary: ReleaseSummary,
    funnel: Sequence[StageStats],
    *,
    config_hash: str,
    registry: str | None,
    product: Product,
    malware: str = "",
) -> str:
    """A product's ``README.md``: a Hub card (YAML header, with one config per language for file-level products)
    and the numbers."""
    pattern = f"{DATA_DIR}/*.parquet" if product.repo_level else f"{DATA_DIR}/*/*.parquet"
    yaml_lines = [
        "---",
        "license: other",
        "language:",
        "- code",
        "multilinguality:",
        "- multilingual",
        f"pretty_name: {json.dumps(product.name)}",
        "size_categories:",
        f"- {json.dumps(_size_category(summary.files))}",
        "task_categories:",
        "- text-generation",
        "configs:",
        "- config_name: default",
        "  default: true",
        "  data_files:",
        "  - split: train",
        f"    path: {json.dumps(pattern)}",
    ]
    for lang in [] if product.repo_level else sorted(summary.languages):
        yaml_lines += [
            f"- config_name: {json.dumps(lang)}",
            "  data_files:",
            "  - split: train",
            f"    path: {json.dumps(f'{DATA_DIR}/{language_dir(lang)}/*.parquet')}",
        ]
    yaml_lines.append("---")

    lang_rows = [
        (lang, language_dir(lang), f"{v['files']:,}", f"{v['bytes']:,}", human_bytes(v["bytes"]))
        for lang, v in summary.languages.items()
    ]
    lic_rows = [(k, f"{v:,}", f"{100 * v / max(summary.files, 1):.1f} %") for k, v in summary.license_types.items()]
    funnel_rows = []
    for st in funnel:
        reasons = ", ".join(f"{r}: {n:,}" for r, n in sorted(st.rejected.items())) or "-"
        funnel_rows.append((st.stage, f"{st.rows_in:,}", f"{st.rows_out:,}", f"{st.rows_rejected:,}", reasons))
    optout = optout_statement(registry)
    redaction = (
        " (after PII redaction)."
        if product.redacted
        else ", as archived (no PII redaction: the published ids point to the archive's contents)."
    )
    content = "Unlike the published id tables, every row carries its `content`" + redaction
    if product.repo_level:
        layout = (
            f"- `{DATA_DIR}/train-NNNNN-of-MMMMM.parquet` ({summary.shards} shard(s)): one row per repository, the "
            f"fields of\n  `{product.published}` with its `files` (each with `content`) and `num_files`."
        )
        example = 'ds = load_dataset("path/to/this/folder", split="train", streaming=True)'
    else:
        layout = (
            f"- `{DATA_DIR}/<Language>/train-NNNNN-of-MMMMM.parquet` ({summary.shards} shard(s)): one row per file, "
            "the 26\n  columns of `bigcode/the-stack-v2` in their published order, plus `content`."
        )
        example = 'ds = load_dataset("path/to/this/folder", "Python", split="train", streaming=True)'
    body = f"""
# {product.name}

{product.description[0].upper() + product.description[1:]}: a code dataset in the layout of
[{product.published}](https://huggingface.co/datasets/{product.published}), rebuilt from the Software Heritage archive
by `stackv2` {__version__}: **{summary.files:,} files** ({human_bytes(summary.bytes)} of UTF-8 text) from
**{summary.repos:,} repositories** in **{len(summary.languages)} languages**. {content}

## Layout

{layout}
- `{MANIFEST}`: every shard's path, rows, bytes and sha256 (`stackv2 optout verify` and the release tools check it).

```python
from datasets import load_dataset

{example}
```

## Languages

{_table(("language", "folder", "files", "bytes", "size"), lang_rows)}

## License types

{_table(("license_type", "files", "share"), lic_rows)}

## How the rows were selected

Every stage keeps the rows it does not pass on, with a reason; rows in = rows out + rows rejected.

{_table(("stage", "rows in", "rows out", "rejected", "by reason"), funnel_rows)}

{OPTOUT_HEADING}

{optout}

## Malware

{malware or NOT_SCANNED}

## Reproduce

Run `stackv2 run --config <the run's config>` on the same SWH graph export and content store. The stages' config
hash of this release is `{config_hash}`; a rerun with the same inputs and config writes the same shard bytes
(check them against `{MANIFEST}`).

## Citation

```bibtex
{CITATION}
```
"""
    return "\n".join(yaml_lines) + "\n" + body


def release_index(products: Sequence[tuple[Product, ReleaseSummary]]) -> str:
    """The release folder's ``README.md``: one line per product, each with its own card in its folder."""
    rows = [
        (f"[`{p.name}`]({p.name}/README.md)", p.description, f"{s.files:,}", f"{s.repos:,}", human_bytes(s.bytes))
        for p, s in products
    ]
    return f"""# Release

The products of one `stackv2` run, as BigCode published them (docs/spec.md §2). Each folder has its dataset card,
its `{MANIFEST}` and its `{DATA_DIR}/` shards.

{_table(("product", "what", "files", "repositories", "size"), rows)}
"""
