"""Programming language, vendor and generated flags with go-enry, the paper's tool (docs/spec.md §4).

The reference gives a blob the language of ``filenames[0]``, where ``filenames`` is an unordered
``collect_set`` of the blob's base names ("TODO: better filename heuristic?"). We make that deterministic:
the first file name is the smallest of the blob's distinct base names in code-point order (which is also
Spark's UTF-8 byte order), so every path, repository and partitioning gives a blob the same language.
Like the reference, ``is_vendor`` and ``is_generated`` see that base name only, not the folders above it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import enry


@dataclass(frozen=True)
class LanguageInfo:
    language: str | None
    is_vendor: bool
    is_generated: bool


def basename(path: str) -> str:
    """The last component of a ``/``-separated path (Spark: ``element_at(split(path, '/'), -1)``)."""
    return path[path.rfind("/") + 1 :]


def extension(path: str) -> str:
    """The file extension without its dot (``/a/b.tar.gz`` -> ``gz``); ``""`` for ``Makefile`` or ``.bashrc``."""
    name = basename(path).lstrip(".")
    dot = name.rfind(".")
    return name[dot + 1 :] if dot != -1 else ""


def first_filename(filenames: Iterable[str]) -> str:
    """The deterministic "first" base name of a blob seen under several names (module docstring)."""
    return min(filenames, default="")


def raw_bytes(content: str, src_encoding: str | None) -> bytes:
    """The blob's bytes as enry saw them in the reference (before decoding), rebuilt from the decoded text."""
    if src_encoding and src_encoding.upper() not in ("UTF-8", "UTF8"):
        try:
            return content.encode(src_encoding)
        except (LookupError, UnicodeError):
            pass
    return content.encode("utf-8", "surrogatepass")


def detect_language(filename: str, data: bytes) -> LanguageInfo:
    """go-enry's language (None when it has no guess), ``is_vendor`` and ``is_generated`` for one blob."""
    return LanguageInfo(
        language=enry.get_language(filename, data) or None,
        is_vendor=bool(enry.is_vendor(filename)),
        is_generated=bool(enry.is_generated(filename, data)),
    )
