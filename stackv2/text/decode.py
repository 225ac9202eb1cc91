"""From a stored gzip object to text: bounded decompression, verification, binary check, decoding.

Rules: docs/spec.md §1.6, §4.

``process_blob`` is the one function every fetcher (local, boto3, the fast S3 path) calls on the bytes it got,
so the reasons a blob is rejected are the same whichever way it was read.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cchardet
from swh.model.hashutil import MultiHash

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


def gunzip_bounded(data: bytes, max_size: int) -> bytes:
    """Inflate a gzip stream without ever holding more than ``max_size`` (+1 chunk) bytes of output.

    A gzip bomb is stopped as soon as its output passes the cap, so memory stays bounded whatever the
    compression ratio. Concatenated gzip members are accepted, as ``gzip.decompress`` does.
    """
    out = bytearray()
    pos = data
    while True:
        d = zlib.decompressobj(wbits=31)
        try:
            while pos:
                out += d.decompress(pos, max_size + 1 - len(out))
                if len(out) > max_size:
                    raise TooLarge(f"inflates to more than {max_size} bytes")
                pos = d.unconsumed_tail
                if d.eof:
                    break
        except zlib.error as e:
            raise CorruptObject(f"invalid gzip data: {e}") from None
        if not d.eof:
            raise CorruptObject("truncated gzip stream")
        rest = d.unused_data.lstrip(b"\0")
        if not rest:
            return bytes(out)
        pos = rest


def decode_content(raw: bytes) -> tuple[str, str] | None:
    """UTF-8 first, else the encoding cchardet detects; ``None`` when neither decodes (docs/spec.md §4)."""
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    enc = cchardet.detect(raw)["encoding"]
    if not enc or enc.upper() in ("UTF-8", "UTF8"):
        return None
    try:
        return raw.decode(enc), enc
    except (UnicodeDecodeError, LookupError):
        return None


def content_hashes(data: bytes) -> dict[str, str]:
    """``sha1`` (the S3 key, ``blob_id``) and ``sha1_git`` (``content_id``) of raw bytes, by swh-model."""
    return {k: v.hex() for k, v in MultiHash.from_data(data, hash_names=("sha1", "sha1_git")).digest().items()}


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
    """Inflate (bounded), verify, reject binary, decode. ``encoding`` forces a known ``src_encoding``."""
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
    if b"\0" in raw:
        return BlobOutcome(reason=BINARY)
    if encoding:
        try:
            decoded: tuple[str, str] | None = (raw.decode(encoding), encoding)
        except (UnicodeDecodeError, LookupError):
            decoded = None
    else:
        decoded = decode_content(raw)
    if decoded is None:
        return BlobOutcome(reason=UNDECODABLE, detail=f"encoding {encoding or 'detected'} failed")
    text, enc = decoded
    return BlobOutcome(content=text, src_encoding=enc, length_bytes=len(text.encode("utf-8")))
