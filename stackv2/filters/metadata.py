"""Checks on annotated columns only: completeness, size, excluded languages/extensions, Text file names."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from stackv2.filters.config import FilterConfig
from stackv2.text.decode import TOO_LARGE as TOO_LARGE  # the same reason as fetch's size cap

MISSING_ANNOTATION = "missing_annotation"
EXCLUDED_LANGUAGE = "excluded_language"
EXCLUDED_EXTENSION = "excluded_extension"
TEXT_FILENAME = "text_filename"


#: Columns every later check reads without a null guard (``language``, ``extension``, ``path`` may be null).
REQUIRED: tuple[str, ...] = (
    "content",
    "length_bytes",
    "license_type",
    "is_generated",
    "alpha_fraction",
    "alphanum_fraction",
    "num_lines",
    "avg_line_length",
    "max_line_length",
)


def missing_annotation(row: Mapping[str, Any], cfg: FilterConfig) -> bool:
    """A row annotate could not complete is rejected with a reason rather than crashing the job."""
    return any(row[c] is None for c in REQUIRED)


def too_large(row: Mapping[str, Any], cfg: FilterConfig) -> bool:
    """The released code keeps ``length < 10 MiB``; re-checked on the stored UTF-8 length (docs/spec.md §1.6, §5.4)."""
    return row["length_bytes"] >= cfg.max_length_bytes


def excluded_language(row: Mapping[str, Any], cfg: FilterConfig) -> bool:
    return row["language"] in cfg.excluded_languages


def _norm_ext(ext: str | None) -> str:
    return (ext or "").lstrip(".").lower()


def excluded_extension(row: Mapping[str, Any], cfg: FilterConfig) -> bool:
    """Extensions compare case-insensitively, with or without the leading dot."""
    return bool(cfg.excluded_extensions) and _norm_ext(row["extension"]) in {
        _norm_ext(e) for e in cfg.excluded_extensions
    }


def text_filename(row: Mapping[str, Any], cfg: FilterConfig) -> bool:
    """``Text`` is mostly noise; keep only requirement files and readme/notes/todo/... (docs/spec.md §5.3)."""
    if row["language"] != "Text":
        return False
    name = posixpath.basename(row["path"] or "").lower()
    stem = posixpath.splitext(name)[0]
    return not (any(s in name for s in cfg.text_name_substrings) or stem in cfg.text_name_stems)
