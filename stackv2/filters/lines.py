"""Line-count and line-length checks on annotate's line statistics (docs/spec.md §5.2.1, §5.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stackv2.filters.config import FilterConfig

LONG_LINES = "long_lines"
TOO_MANY_LINES = "too_many_lines"


def long_lines(row: Mapping[str, Any], cfg: FilterConfig) -> bool:
    """Minified or data-like files: > 100k lines, or avg > 100 / max > 1,000 chars (prose languages: max > 100k)."""
    if row["num_lines"] > cfg.max_lines:
        return True
    if row["language"] in cfg.long_line_exempt_languages:
        return row["max_line_length"] > cfg.exempt_max_line_length
    return row["avg_line_length"] > cfg.max_avg_line_length or row["max_line_length"] > cfg.max_line_length


def too_many_lines(row: Mapping[str, Any], cfg: FilterConfig) -> bool:
    """Large Text/JSON/YAML/OWL/DOT files are data dumps rather than code (docs/spec.md §5.3)."""
    return row["language"] in cfg.data_languages and row["num_lines"] > cfg.max_data_lines
