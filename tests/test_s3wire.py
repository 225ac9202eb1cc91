"""The S3 reader's wire format: SigV4 headers equal botocore's, and the response parser gives the same answer
however the bytes are cut, refuses what is malformed or too large, and frames bodies as RFC 9112 §6.3 says."""

from __future__ import annotations

import datetime

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from stackv2.swh.s3wire import BodyTooLarge, ProtocolError, ResponseParser, SigV4Signer

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _botocore_headers(creds: Credentials, region: str, url: str, when: datetime.datetime, monkeypatch) -> dict:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)
    req = AWSRequest(method="GET", url=url)
    S3SigV4Auth(creds, "s3", region).add_auth(req)
    return {k.lower(): v for k, v in req.headers.items()}


def _ours(creds: Credentials, region: str, host: str, path: str, when: datetime.datetime, signer=None) -> dict:
    signer = signer or SigV4Signer(creds, region, host)
    lines = signer.headers(path, when.replace(tzinfo=datetime.UTC).timestamp()).split("\r\n")
    assert lines[-1] == ""
    return {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[:-1])}


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEJr//////////wEaDOtemporarytoken=="])
@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://softwareheritage.s3.amazonaws.com/content/" + "a1" * 20, "us-east-1"),
        ("http://127.0.0.1:8333/swh-bucket/archive/content/" + "0f" * 20, "eu-west-3"),
    ],
)
def test_signature_equals_botocores(monkeypatch, token, url, region):
    creds = Credentials("AKIDEXAMPLE", SECRET, token)
    host, path = url.split("://", 1)[1].split("/", 1)
    when = datetime.datetime(2026, 11, 26, 23, 59, 59)
    expected = _botocore_headers(creds, region, url, when, monkeypatch)
    got = _ours(creds, region, host, "/" + path, when)
    assert got == expected  # botocore signs the URL's host without sending the header: ours sends that value
    assert got["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/")


def test_cached_key_follows_the_date_and_the_secret(monkeypatch):
    """One signer across midnight and a credential rotation: every signature still equals botocore's."""
    url = "http://127.0.0.1:8333/b/content/" + "ab" * 20

    class Rotating:
        secret = SECRET

        def get_frozen_credentials(self):
            return Credentials("AKIDEXAMPLE", self.secret, None).get_frozen_credentials()

    creds = Rotating()
    signer = SigV4Signer(creds, "us-east-1", "127.0.0.1:8333")
    times = [datetime.datetime(2026, 11, 26, 23, 59, 59), datetime.datetime(2026, 11, 27, 0, 0, 1)]
    for secret in (SECRET, "another-secret-after-rotation"):
        creds.secret = secret
        for when in times:
            boto = Credentials("AKIDEXAMPLE", secret, None)
            expected = _botocore_headers(boto, "us-east-1", url, when, monkeypatch)
            # each time is a new second, so the signer asks the credentials again
            assert _ours(creds, "us-east-1", "127.0.0.1:8333", url[21:], when, signer) == expected


def _parse(chunks: list[bytes], max_body: int = 1 << 20, eof: bool = False) -> ResponseParser:
    p = ResponseParser(max_body)
    for c in chunks:
        p.feed(c)
    if eof:
        p.eof()
    return p


def _cut(data: bytes, points: list[int]) -> list[bytes]:
    points = sorted({min(p, len(data)) for p in points})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


BODY = bytes(range(256)) * 40 + b"\r\n\r\nnot a header\r\n"
RESPONSES = {
    "length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: x\r\nx-amz-meta-a: 1\r\nx-amz-meta-a: 2\r\n\r\n%s"
        % (len(BODY), BODY),
        200,
        BODY,
        True,
    ),
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"a00;ext=1\r\n"
        + BODY[:2560]
        + b"\r\n%x\r\n" % (len(BODY) - 2560)
        + BODY[2560:]
        + b"\r\n0\r\nx-trailer: t\r\n\r\n",
        200,
        BODY,
        True,
    ),
    "continue then 404": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope!",
        404,
        b"nope!",
        False,
    ),
    "no content": (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", True),
    "http/1.0 keep-alive": (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
        200,
        b"abc",
        True,
    ),
}


@pytest.mark.parametrize("name", RESPONSES)
@given(points=st.lists(st.integers(0, 12_000), max_size=8))
def test_any_cut_gives_the_same_response(name, points):
    raw, status, body, keep_alive = RESPONSES[name]
    p = _parse(_cut(raw, points))
    assert p.done and (p.status, p.body, p.keep_alive, p.extra) == (status, body, keep_alive, b"")
    if name == "length":
        assert p.headers["x-amz-meta-a"] == "1, 2" and p.headers["etag"] == "x"


def test_body_up_to_the_close():
    p = _parse([b"HTTP/1.1 200 OK\r\n\r\nab", b"cd"])
    assert not p.done
    p.eof()
    assert p.done and p.body == b"abcd" and not p.keep_alive


def test_bytes_past_the_response_are_kept_apart():
    p = _parse([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabHTTP/1.1", b" 200"])
    assert p.body == b"ab" and p.extra == b"HTTP/1.1 200"


def test_too_large_is_known_before_the_body():
    with pytest.raises(BodyTooLarge) as e:
        _parse([b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n"], max_body=1000)
    assert (e.value.status, e.value.length) == (200, 1001)
    with pytest.raises(BodyTooLarge):
        _parse([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"3e9\r\n"], max_body=1000)
    with pytest.raises(BodyTooLarge):
        _parse([b"HTTP/1.1 200 OK\r\n\r\n", b"x" * 1001], max_body=1000)
    assert _parse([b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000], max_body=1000).done


@pytest.mark.parametrize(
    "raw",
    [
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name : x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: line\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"a" * 70_000,
    ],
)
def test_malformed_is_refused(raw):
    with pytest.raises(ProtocolError):
        _parse([raw])


@pytest.mark.parametrize(
    "chunks", [[], [b"HTTP/1.1 200 OK\r\nContent-Le"], [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"]]
)
def test_close_inside_a_response_is_an_error(chunks):
    with pytest.raises(ProtocolError):
        _parse(chunks, eof=True)
