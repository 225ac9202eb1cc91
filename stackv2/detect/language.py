"""Programming language, vendor and generated flags with go-enry, the paper's tool (docs/spec.md §4).

The reference gives a blob the language of ``filenames[0]``, where ``filenames`` is an unordered
``collect_set`` of the blob's base names ("TODO: better filename heuristic?"). We make that deterministic:
the first file name is the smallest of the blob's distinct base names in code-point order (which is also
Spark's UTF-8 byte order), so every path, repository and partitioning gives a blob the same language.
Like the reference, ``is_vendor`` and ``is_generated`` see that base name only, not the folders above it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import enry
from enry._c_enry import ffi as _ffi
from enry.definitions import lib as _go_enry
from enry.utils import go_str_slice_to_py

#: How much of a file go-enry's ``IsBinary`` looks at for a NUL byte.
_BINARY_SNIFF = 8000
#: Lines go-enry's modeline strategy reads at each end of a file (``getHeaderAndFooter``'s ``searchScope``).
_MODELINE_SCOPE = 5
#: What any match of go-enry's Vim modeline pattern holds,
#: ``(?:(?m:\s|^)vi(?:m[<=>]?\d+|m)?|[\t\x20]*ex)\s*[:]\s*(.*)(?m:$)``, with its prefix dropped and ``\s`` widened
#: from Go's ``[\t\n\f\r ]`` to Python's (adds ``\v``): it matches wherever that pattern does, and more.
_VIM_MODELINE_CORE = re.compile(rb"(?:vi(?:m[<=>]?\d+|m)?|ex)\s*:")


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


def _modeline_scope(data: bytes) -> bytes:
    """The text go-enry searches for modelines (``getHeaderAndFooter``): the first and last five lines, joined, or
    all of ``data`` when it has fewer than ten line breaks (found from the front, not counted over the whole)."""
    breaks = [-1]
    for _ in range(2 * _MODELINE_SCOPE):
        breaks.append(data.find(b"\n", breaks[-1] + 1))
        if breaks[-1] == -1:
            return data
    foot_start = len(data)
    for _ in range(_MODELINE_SCOPE):
        foot_start = data.rindex(b"\n", 0, foot_start)
    return data[: breaks[_MODELINE_SCOPE]] + data[foot_start + 1 :]


def _may_have_modeline(data: bytes) -> bool:
    """False only where neither of go-enry's modeline patterns can match: Emacs' needs ``-*-``, Vim's a
    ``_VIM_MODELINE_CORE``."""
    scope = _modeline_scope(data)
    return b"-*-" in scope or _VIM_MODELINE_CORE.search(scope) is not None


def _extension_languages(filename: str) -> list[str]:
    """go-enry's extension strategy, ``GetLanguagesByExtension``: every language of the file's extension. (The
    binding wraps only the first one, with a ``safe`` flag that means "found", not "the only one".)"""
    return go_str_slice_to_py(_go_enry, _go_enry.GetLanguagesByExtension(filename.encode(), b"", 0, _ffi.NULL))


def language_of(filename: str, data: bytes) -> str:
    """``enry.get_language(filename, data)``, exactly, without go-enry's modeline scan where its answer is known.

    go-enry tries its strategies in order (modeline, file name, shebang, extension, ...) and answers with the first
    that finds exactly one language; binary content (a NUL in the first 8000 bytes) has none. Where no modeline can
    match, the file name names no language (go-enry's own table), there is no shebang (it needs a leading ``#!``)
    and the extension names exactly one (go-enry's own table), that one is the answer; anything else is go-enry's
    full call. The modeline scan is Go's regexp over the first and last five lines, which is the whole of a
    minified file: most of go-enry's time on minified JavaScript and CSS. ``detect_language`` over 24,557 fetched
    files: 6.4 -> 4.0 CPU s, the same answers (``bench/annotate/blob_parts.py``; the tests check each stand-in
    against go-enry).
    """
    by_extension = _extension_languages(filename)
    if (
        len(by_extension) == 1
        and not enry.get_languages_by_filename(filename)
        and not data.startswith(b"#!")  # go-enry's shebang strategy reads nothing else
        and data.find(b"\0", 0, _BINARY_SNIFF) == -1  # go-enry's IsBinary
        and not _may_have_modeline(data)
    ):
        return by_extension[0]
    return enry.get_language(filename, data)


def detect_language(filename: str, data: bytes) -> LanguageInfo:
    """go-enry's language (None when it has no guess), ``is_vendor`` and ``is_generated`` for one blob."""
    return LanguageInfo(
        language=language_of(filename, data) or None,
        is_vendor=bool(enry.is_vendor(filename)),
        is_generated=bool(enry.is_generated(filename, data)),
    )
