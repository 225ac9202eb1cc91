"""From a stored gzip object to text: bounded decompression, verification, binary check, decoding.

Rules: docs/spec.md §1.6, §4.

``process_blob`` is the one function every fetcher (local, boto3, the fast S3 path) calls on the bytes it got,
so the reasons a blob is rejected are the same whichever way it was read.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import cchardet
from isal import isal_zlib

#: Reasons a blob is rejected by fetch (besides ``missing_object`` / ``fetch_error`` from the store).
TOO_LARGE = "too_large"
BINARY = "binary"
UNDECODABLE = "undecodable"
HASH_MISMATCH = "hash_mismatch"
CORRUPT_OBJECT = "corrupt_object"
MISSING_OBJECT = "missing_object"
FETCH_ERROR = "fetch_error"
REASONS = (MISSING_OBJECT, FETCH_ERROR, CORRUPT_OBJECT, HASH_MISMATCH, TOO_LARGE, BINARY, UNDECODABLE)

_CHUNK = 1 << 20


class TooLarge(ValueError):
    """The object inflates beyond the configured cap."""


class CorruptObject(ValueError):
    """The object is not a complete, valid gzip stream."""


#: The gzip header's FLG bits that RFC 1952 reserves (must be zero).
_GZIP_RESERVED_FLAGS = 0xE0


def gunzip_bounded(data: bytes, max_size: int) -> bytes:
    """Inflate a gzip stream without ever holding more than ``max_size`` (+1 chunk) bytes of output.

    A gzip bomb is stopped as soon as its output passes the cap, so memory stays bounded whatever the
    compression ratio. Concatenated gzip members are accepted, as ``gzip.decompress`` does. ISA-L's inflate
    (``isal_zlib``, zlib's interface) gives the same bytes in about half zlib's CPU time (docs/fetch.md).
    """
    out = bytearray()
    pos = data
    while True:
        if len(pos) > 3 and pos[3] & _GZIP_RESERVED_FLAGS:
            raise CorruptObject("invalid gzip data: reserved header flags set")  # zlib refuses them, ISA-L did not
        d = isal_zlib.decompressobj(wbits=31)
        try:
            while pos:
                out += d.decompress(pos, max_size + 1 - len(out))
                if len(out) > max_size:
                    raise TooLarge(f"inflates to more than {max_size} bytes")
                pos = d.unconsumed_tail
                if d.eof:
                    break
        except isal_zlib.error as e:
            raise CorruptObject(f"invalid gzip data: {e}") from None
        if not d.eof:
            raise CorruptObject("truncated gzip stream")
        rest = d.unused_data.lstrip(b"\0")
        if not rest:
            return bytes(out)
        pos = rest


#: Bytes at the start of a file searched for an encoding declaration: HTML's own prescan reads 1024 (WHATWG HTML
#: "prescan a byte stream"); an XML declaration opens the file; a PEP 263 line is one of the first two.
SNIFF_BYTES = 1024
#: Byte-order marks, longest first (UTF-32 LE's starts with UTF-16 LE's), with the name cchardet gives them.
#: Python's "UTF-16"/"UTF-32" codecs read the byte order from the BOM and drop it; "UTF-8" keeps it as U+FEFF.
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF8, "UTF-8"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
#: BOMs of encodings whose text has NUL bytes: such a file is text, not binary, when its decoding has no U+0000.
WIDE_BOMS = tuple(bom for bom, name in _BOMS if name != "UTF-8")
#: PEP 263's regex, on each of the first two lines (the second only after a comment or blank line, as CPython).
_PEP263 = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-_.a-zA-Z0-9]+)")
_COMMENT_OR_BLANK = re.compile(rb"^[ \t\f]*(?:#.*)?$")
#: XML declaration (XML 1.0 §4.3.3 ``EncName``), at the start of the file.
_XML_DECL = re.compile(rb"""^\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
#: ``<meta charset=...>`` and ``<meta http-equiv="Content-Type" content="...; charset=...">`` alike.
_HTML_META = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
#: Names cchardet 2.4 reports (the reference's ``src_encoding`` values), keyed by Python codec: a declared
#: ``latin-1`` is written ``ISO-8859-1`` as a guessed one would be.
_CCHARDET_NAMES = (
    "ASCII",
    "BIG5",
    "CP737",
    "EUC-JP",
    "EUC-KR",
    "GB18030",
    "IBM852",
    "IBM855",
    "IBM862",
    "IBM865",
    "IBM866",
    "ISO-2022-JP",
    "ISO-8859-1",
    "ISO-8859-2",
    "ISO-8859-3",
    "ISO-8859-4",
    "ISO-8859-5",
    "ISO-8859-6",
    "ISO-8859-7",
    "ISO-8859-8",
    "ISO-8859-9",
    "ISO-8859-10",
    "ISO-8859-11",
    "ISO-8859-13",
    "ISO-8859-15",
    "ISO-8859-16",
    "KOI8-R",
    "MAC-CYRILLIC",
    "SHIFT_JIS",
    "TIS-620",
    "UTF-8",
    "WINDOWS-1250",
    "WINDOWS-1251",
    "WINDOWS-1252",
    "WINDOWS-1253",
    "WINDOWS-1255",
    "WINDOWS-1256",
    "WINDOWS-1257",
    "WINDOWS-1258",
)
_BY_CODEC = {codecs.lookup(name).name: name for name in _CCHARDET_NAMES}
_ASCII = bytes(range(128))
#: Python's text codecs that are no character set (Python docs, "Python Specific Encodings").
_NOT_CHARSETS = frozenset(("idna", "punycode", "raw-unicode-escape", "undefined", "unicode-escape"))


@functools.cache
def encoding_name(label: str, html: bool = False) -> str | None:
    """The ``src_encoding`` for a declared label: cchardet's spelling, else Python's codec name in capitals (one
    name per codec, however it was declared). ``None`` for a label Python does not know, a codec that is no
    character set, or one that is not an ASCII superset (a declaration readable as ASCII cannot be UTF-16).
    In HTML, ``latin-1`` and ``ascii`` mean windows-1252 (WHATWG Encoding Standard), as browsers read them."""
    try:
        codec = codecs.lookup(label).name
        if codec in _NOT_CHARSETS or _ASCII.decode(codec) != _ASCII.decode("ascii"):
            return None
    except (LookupError, UnicodeError):
        return None
    if html and codec in ("ascii", "iso8859-1"):
        return "WINDOWS-1252"
    return _BY_CODEC.get(codec, codec.upper())


def declared_encoding(raw: bytes) -> str | None:
    """The encoding a file declares in its first ``SNIFF_BYTES``: an XML declaration, a PEP 263 coding line or an
    HTML meta charset, in that order (the first that names a usable encoding)."""
    head = raw[:SNIFF_BYTES]
    if m := _XML_DECL.match(head):
        return encoding_name(m.group(1).decode())
    lines = head.splitlines()[:2]
    if lines and (m := _PEP263.match(lines[0])):
        return encoding_name(m.group(1).decode())
    if len(lines) == 2 and _COMMENT_OR_BLANK.match(lines[0]) and (m := _PEP263.match(lines[1])):
        return encoding_name(m.group(1).decode())
    if m := _HTML_META.search(head):
        return encoding_name(m.group(1).decode(), html=True)
    return None


def _candidates(raw: bytes) -> Iterator[str]:
    """Encodings to try, surest first; each is computed only if the ones before it failed."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            yield name
            break
    yield "UTF-8"
    if declared := declared_encoding(raw):
        yield declared
    guess = cchardet.detect(raw)["encoding"]
    if guess and guess.upper() not in ("UTF-8", "UTF8"):
        yield guess


def decode_content(raw: bytes) -> tuple[str, str] | None:
    """Text and ``src_encoding``, or ``None`` when nothing decodes (docs/spec.md §4, docs/fidelity.md "Decoding").

    A byte-order mark first, then strict UTF-8 (the reference's first step, so every UTF-8 file decodes as it
    did), then the file's own declaration, then cchardet's guess. ``raw.decode(src_encoding)`` is the text."""
    tried = set()
    for enc in _candidates(raw):
        if enc in tried:
            continue
        tried.add(enc)
        try:
            return raw.decode(enc), enc
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def content_hashes(data: bytes) -> dict[str, str]:
    """``sha1`` (the S3 key, ``blob_id``) and ``sha1_git`` (``content_id``) of raw bytes, as swh-model defines them
    (``sha1_git`` is git's blob id: the sha1 of ``b"blob <length>\\0"`` + the bytes). hashlib straight over the
    buffer: swh-model's ``MultiHash`` reads it back through a file object, ~5 µs more per file."""
    git = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)  # identifiers, not security
    git.update(data)
    return {"sha1": hashlib.sha1(data, usedforsecurity=False).hexdigest(), "sha1_git": git.hexdigest()}


@dataclass(frozen=True, slots=True)
class BlobOutcome:
    """What fetch makes of one stored object: text and its source encoding, or a reject reason."""

    content: str | None = None
    src_encoding: str | None = None
    length_bytes: int | None = None
    reason: str | None = None
    detail: str | None = None


def process_blob(
    blob_id: str,
    gz: bytes,
    *,
    content_id: str | None = None,
    max_length: int,
    verify: bool = True,
    encoding: str | None = None,
) -> BlobOutcome:
    """Inflate (bounded), verify, then ``decode_blob``. ``encoding`` forces a known ``src_encoding``."""
    try:
        raw = gunzip_bounded(gz, max_length - 1)
    except TooLarge as e:
        return BlobOutcome(reason=TOO_LARGE, detail=str(e))
    except CorruptObject as e:
        return BlobOutcome(reason=CORRUPT_OBJECT, detail=str(e))
    if verify:
        got = content_hashes(raw)
        if got["sha1"] != blob_id:
            return BlobOutcome(reason=HASH_MISMATCH, detail=f"sha1 of bytes is {got['sha1']}")
        if content_id and got["sha1_git"] != content_id:
            return BlobOutcome(reason=HASH_MISMATCH, detail="sha1_git differs from content_id")
    return decode_blob(raw, encoding)


def decode_blob(raw: bytes, encoding: str | None = None) -> BlobOutcome:
    """Reject binary, decode: with ``encoding`` when given (published data, decoded as released), else detected.

    Binary means a NUL byte, as in the reference, except behind a UTF-16/32 byte-order mark, where NUL bytes are
    part of the text: there it means a NUL character in the decoded text, or no decoding at all."""
    has_nul = b"\0" in raw
    if has_nul and (encoding or not raw.startswith(WIDE_BOMS)):
        return BlobOutcome(reason=BINARY)
    if encoding:
        try:
            decoded: tuple[str, str] | None = (raw.decode(encoding), encoding)
        except (UnicodeDecodeError, LookupError):
            decoded = None
    else:
        decoded = decode_content(raw)
    if has_nul and (decoded is None or "\0" in decoded[0]):
        return BlobOutcome(reason=BINARY, detail="NUL bytes behind a UTF-16/32 byte-order mark")
    if decoded is None:
        return BlobOutcome(reason=UNDECODABLE, detail=f"encoding {encoding or 'detected'} failed")
    text, enc = decoded
    length_bytes = len(text) if text.isascii() else len(text.encode("utf-8"))  # isascii: O(1), no copy
    return BlobOutcome(content=text, src_encoding=enc, length_bytes=length_bytes)
