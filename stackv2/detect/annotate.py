"""Every per-blob annotation but licenses at once, as the Spark adapter calls it: one call per unique ``blob_id``.

Licenses are found apart, in the few blobs known under a license-like name (``license.is_license_file``), so that
the pass over every blob never loads ScanCode's ~1.4 GB index. Per-path columns (``extension``) and
per-repository ones (``detected_licenses`` after propagation, ``license_type``) are computed afterwards from
these, see ``license.propagate`` and ``license.license_type``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from stackv2.detect.config import AnnotateConfig
from stackv2.detect.language import detect_language, first_filename, raw_bytes
from stackv2.detect.linestats import line_stats
from stackv2.detect.natural import detect_natural_language

#: Columns ``annotate_blob`` returns, in this order.
BLOB_COLUMNS = (
    "language",
    "is_vendor",
    "is_generated",
    "natural_language",
    "natural_language_score",
    "alpha_fraction",
    "alphanum_fraction",
    "num_lines",
    "avg_line_length",
    "max_line_length",
)


def annotate_blob(
    filenames: Sequence[str], content: str | None, src_encoding: str | None, cfg: AnnotateConfig
) -> dict[str, Any]:
    """Annotations of one blob known under the base names ``filenames`` (any order)."""
    content = content or ""
    lang = detect_language(first_filename(filenames), raw_bytes(content, src_encoding))
    natural, score = detect_natural_language(content, lang.language, cfg.natural)
    return {
        "language": lang.language,
        "is_vendor": lang.is_vendor,
        "is_generated": lang.is_generated,
        "natural_language": natural,
        "natural_language_score": score,
        **asdict(line_stats(content)),
    }
