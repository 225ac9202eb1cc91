"""What the lean S3 reader puts on the wire and reads back: one GET's request bytes, SigV4 signed with a cached key,
and an incremental HTTP/1.1 response parser.

Why not ``http.client`` and botocore's signer? Per object, ``http.client`` parses headers through
``email.parser`` and reads the status line and each header with its own ``readline``, and botocore builds an
``AWSRequest`` and derives the signing key anew (four HMACs) for every request: together ~0.2 CPU-ms of the
reader's ~0.4 per object (docs/fetch.md, "CPU per object"). Here the request is one preformatted string, the
signing key is derived once per UTC day (it depends only on the secret, the date, the region and the service),
and a response is parsed from whatever the socket returned, usually in one piece. ``tests/test_s3wire.py`` checks
the signature against botocore's and the parser against every way a response can be cut.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any

#: SHA-256 of the empty body: the payload hash of a GET (what botocore signs for S3 GETs without a body).
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: A response head (status line + headers) longer than this is refused: S3's are well under 2 KiB.
MAX_HEAD = 64 * 1024
#: Longest chunk-size line accepted in a chunked body.
_MAX_CHUNK_LINE = 1024


class ProtocolError(Exception):
    """The bytes read are no valid HTTP/1.1 response (or the connection ended inside one)."""


class BodyTooLarge(Exception):
    """The response body is longer than the parser's limit; ``status`` is the response's."""

    def __init__(self, status: int, length: int | None) -> None:
        super().__init__(f"HTTP {status} body of {length if length is not None else 'unknown'} bytes")
        self.status, self.length = status, length


class SigV4Signer:
    """AWS Signature Version 4 headers for ``GET`` requests on one host, as botocore's ``S3SigV4Auth`` signs them
    (signed headers ``host``, ``x-amz-content-sha256`` = the empty body's hash, ``x-amz-date``, and
    ``x-amz-security-token`` with temporary credentials).

    ``credentials`` is botocore's credentials object, asked for its current values once per second, so
    refreshable credentials (roles, SSO) keep refreshing; the derived key is cached per (secret, date).
    """

    def __init__(self, credentials: Any, region: str, host: str, service: str = "s3") -> None:
        self._credentials = credentials
        self._scope_tail = f"{region}/{service}/aws4_request"
        self._host = host
        self._second = -1
        self._key_for: tuple[str, str] | None = None
        self._key = b""
        self._amz_date = self._day = self._fixed_canonical = self._signed = self._extra = self._auth_prefix = ""

    def _refresh(self, second: int) -> None:
        frozen = self._credentials.get_frozen_credentials()
        self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        self._day = self._amz_date[:8]
        if self._key_for != (frozen.secret_key, self._day):
            key = f"AWS4{frozen.secret_key}".encode()
            for part in (self._day, *self._scope_tail.split("/")):
                key = hmac.digest(key, part.encode(), "sha256")
            self._key, self._key_for = key, (frozen.secret_key, self._day)
        token = frozen.token
        self._signed = "host;x-amz-content-sha256;x-amz-date" + (";x-amz-security-token" if token else "")
        self._fixed_canonical = (
            f"host:{self._host}\nx-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{self._amz_date}\n"
            + (f"x-amz-security-token:{token}\n" if token else "")
            + f"\n{self._signed}\n{EMPTY_SHA256}"
        )
        self._extra = f"x-amz-content-sha256: {EMPTY_SHA256}\r\nx-amz-date: {self._amz_date}\r\n" + (
            f"x-amz-security-token: {token}\r\n" if token else ""
        )
        self._auth_prefix = (
            f"Authorization: AWS4-HMAC-SHA256 Credential={frozen.access_key}/{self._day}/{self._scope_tail}, "
            f"SignedHeaders={self._signed}, Signature="
        )
        self._second = second

    def headers(self, path: str, now: float | None = None) -> str:
        """The header lines (each ending ``\\r\\n``) that sign ``GET path`` at ``now`` (default: the clock).
        ``path`` is sent as is: it must already be URI-encoded (S3 signs the path without normalizing it)."""
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._refresh(second)
        canonical = f"GET\n{path}\n\n{self._fixed_canonical}"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{self._amz_date}\n{self._day}/{self._scope_tail}\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.digest(self._key, to_sign.encode(), "sha256").hex()
        return f"{self._extra}{self._auth_prefix}{signature}\r\n"


#: ``HTTP/1.x NNN reason`` (RFC 9112 §4).
_STATUS_LINE = re.compile(r"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?")
#: A header field line (RFC 9110 §5.1 token, no space before the colon, no obsolete line folding), with its CRLF.
_FIELD_PATTERN = r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*?)[ \t]*\r\n"
_FIELD = re.compile(_FIELD_PATTERN)
_FIELDS = re.compile(f"(?:{_FIELD_PATTERN})*")

# Parser states.
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _UNTIL_CLOSE, _DONE = range(7)


class ResponseParser:
    """One HTTP/1.1 response to a ``GET``, fed the bytes as they arrive (``feed``, then ``eof`` if the connection
    closes). Framing as RFC 9112 §6.3: no body for 1xx/204/304, else chunked, else ``Content-Length``, else up
    to the close. Interim 1xx responses are skipped. A body over ``max_body`` raises ``BodyTooLarge`` as soon as
    that is known (from ``Content-Length``, before reading it); malformed input raises ``ProtocolError``.

    When ``done``: ``status``, ``headers`` (lower-case names, repeated ones joined by ", "), ``body``,
    ``keep_alive`` (the connection can carry the next request) and ``extra`` (bytes past the response: a
    connection that sent any is not reused).
    """

    __slots__ = (
        "_buf",
        "_length",
        "_parts",
        "_state",
        "_total",
        "body",
        "extra",
        "headers",
        "keep_alive",
        "max_body",
        "status",
    )

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.keep_alive = False
        self.extra = b""
        self._buf = bytearray()
        self._state = _HEAD
        self._length = 0
        self._parts: list[bytes] = []
        self._total = 0

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def started(self) -> bool:
        """Whether any byte of the response has arrived."""
        return bool(self._buf) or self._state != _HEAD

    def wanted(self) -> int:
        """How many bytes to ask the socket for next: the rest of a known body, else 64 KiB."""
        if self._state == _BODY:
            return max(self._length - len(self._buf), 1)
        return 65536

    def feed(self, data: bytes) -> None:
        if self._state == _DONE:
            self.extra += data
            return
        self._buf += data
        while self._step():
            pass

    def eof(self) -> None:
        """The peer closed the connection: completes a body read up to the close, else ``ProtocolError``."""
        if self._state == _UNTIL_CLOSE:
            self.body, self._buf = bytes(self._buf), bytearray()
            self.keep_alive = False
            self._state = _DONE
        elif self._state != _DONE:
            raise ProtocolError(
                "connection closed before the response was complete" if self.started else "no response"
            )

    def _step(self) -> bool:
        """Consume what the buffer allows; ``True`` if the state changed and the buffer may allow more."""
        state, buf = self._state, self._buf
        if state == _BODY:
            if len(buf) < self._length:
                return False
            self.body = bytes(buf[: self._length])
            self._finish(buf, self._length)
            return False
        if state == _HEAD:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolError("response head too long")
                return False
            if end > MAX_HEAD:
                raise ProtocolError("response head too long")
            head = bytes(buf[:end])
            del buf[: end + 4]
            self._head(head)
            return True
        if state == _UNTIL_CLOSE:
            if len(buf) > self.max_body:
                raise BodyTooLarge(self.status, None)
            return False
        if state in (_CHUNK_SIZE, _TRAILER):
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > _MAX_CHUNK_LINE:
                    raise ProtocolError("chunk line too long")
                return False
            line = bytes(buf[:end])
            del buf[: end + 2]
            if state == _TRAILER:
                if not line:
                    self.body = b"".join(self._parts)
                    self._parts = []
                    self._finish(buf, 0)
                return True
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
                raise ProtocolError("bad chunk size")
            size = int(size_text, 16)
            if size == 0:
                self._state = _TRAILER
                return True
            self._total += size
            if self._total > self.max_body:
                raise BodyTooLarge(self.status, None)
            self._length = size
            self._state = _CHUNK_DATA
            return True
        if state == _CHUNK_DATA:
            if len(buf) < self._length + 2:
                return False
            if buf[self._length : self._length + 2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            self._parts.append(bytes(buf[: self._length]))
            del buf[: self._length + 2]
            self._state = _CHUNK_SIZE
            return True
        return False

    def _finish(self, buf: bytearray, used: int) -> None:
        self.extra = bytes(buf[used:])
        self._buf = bytearray()
        self._state = _DONE

    def _head(self, head: bytes) -> None:
        text = head.decode("latin-1")
        line_end = text.find("\r\n")
        status_line = text if line_end < 0 else text[:line_end]
        m = _STATUS_LINE.fullmatch(status_line)
        if m is None:
            raise ProtocolError("bad status line")
        version, status = m.group(1), int(m.group(2))
        fields = "" if line_end < 0 else text[line_end + 2 :] + "\r\n"
        if not _FIELDS.fullmatch(fields):
            raise ProtocolError("bad header line")
        headers: dict[str, str] = {}
        for name, value in _FIELD.findall(fields):
            key = name.lower()
            if key not in headers:
                headers[key] = value
            elif key == "content-length":
                if headers[key] != value:
                    raise ProtocolError("conflicting Content-Length")
            else:
                headers[key] = f"{headers[key]}, {value}"
        if 100 <= status < 200:  # interim answer (100 Continue, 103 Early Hints): the real one follows
            if status == 101:
                raise ProtocolError("unexpected protocol switch")
            return
        self.status, self.headers = status, headers
        connection = headers.get("connection", "").lower()
        if version == "1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection
        coding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if status in (204, 304):
            self.body = b""
            self._finish(self._buf, 0)
        elif coding is not None:
            if coding.lower().replace(" ", "").split(",")[-1] != "chunked" or length is not None:
                raise ProtocolError(f"unsupported framing: Transfer-Encoding {coding!r}")
            self._state = _CHUNK_SIZE
        elif length is not None:
            if not (length.isascii() and length.isdigit()):
                raise ProtocolError("bad Content-Length")
            self._length = int(length)
            if self._length > self.max_body:
                raise BodyTooLarge(status, self._length)
            self._state = _BODY
        else:
            self.keep_alive = False
            self._state = _UNTIL_CLOSE
