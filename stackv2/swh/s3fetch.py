"""The lean, high-throughput reader of SWH content objects on S3 (``s3://softwareheritage/content/<sha1>``).

Why not one ``boto3`` ``get_object`` per blob (the dataset card's recipe)? botocore spends ~1 ms of CPU per call
and the card's loop has one request in flight, so users report ~22 blobs/s per process. Here:

* many requests in flight per process: a pool of worker threads, each with its own persistent
  ``http.client`` connection (keep-alive; the parse and the socket I/O are all a GET needs);
* boto3's standard settings still decide *where* and *who*: endpoint (``AWS_ENDPOINT_URL_S3``, config files),
  region and the credential chain are resolved once through botocore, and each request is signed by
  botocore's own SigV4 signer (~50 µs) — or sent unsigned for public buckets (``unsigned=True``);
* exponential backoff with full jitter on throttling (503 SlowDown), other 5xx, 429, timeouts and dropped
  connections, bounded per object (``max_attempts``) and per run (a retry budget, so an outage does not turn
  into a retry storm);
* bounded memory: a response larger than ``max_compressed`` is refused from its ``Content-Length`` without
  reading it, decompression stops at the size cap (``text.decode.gunzip_bounded``), and ``fetch`` keeps at most
  ``window`` results in flight, yielding them in input order;
* every object goes through ``text.decode.process_blob`` (bounded gunzip, sha1/sha1_git check, binary check,
  decoding), so reasons are the same as for every other fetcher.

Credentials are never logged: error details carry only the HTTP status and the S3 error code.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import ssl
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from stackv2.swh.config import FetchConfig
from stackv2.swh.content_store import CONTENT_PREFIX
from stackv2.text.decode import FETCH_ERROR, MISSING_OBJECT, TOO_LARGE, BlobOutcome, process_blob

#: The public bucket of SWH content objects (docs/spec.md §1.6).
SWH_BUCKET = "softwareheritage"
#: Answers worth retrying: throttling and transient server errors.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")


class RetryableError(Exception):
    """A transient failure (throttling, 5xx, timeout, dropped connection): worth another try."""


class FetchFailed(RuntimeError):
    """A definite failure for this object (e.g. 403), or retries exhausted."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    #: Path in front of the key: ``/bucket/`` (path style) or ``/`` (virtual-hosted).
    base_path: str
    region: str
    url: str


def resolve_endpoint(cfg: FetchConfig, bucket: str) -> tuple[Endpoint, Any]:
    """Endpoint, region and credentials exactly as boto3 would resolve them; returns (endpoint, credentials).

    Custom endpoints (SeaweedFS, MinIO, a proxy) use path-style URLs. On AWS the host is the bucket's global
    virtual host (``softwareheritage.s3.amazonaws.com``): DNS routes it to the bucket's region whatever region
    the user's configuration names, where a regional host would answer 301 (a failure users of the SWH bucket
    report). Signed requests still need the bucket's region (``--region``; us-east-1 for SWH).
    """
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config

    session = botocore.session.get_session()
    client = session.create_client(
        "s3",
        endpoint_url=cfg.endpoint_url,
        region_name=cfg.region or session.get_config_variable("region") or "us-east-1",
        config=Config(signature_version=UNSIGNED) if cfg.unsigned else None,
    )
    url = client.meta.endpoint_url
    region = client.meta.region_name or "us-east-1"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if re.fullmatch(r"s3([.-][a-z0-9-]+)?\.amazonaws\.com", host) and "." not in bucket:
        host, base = f"{bucket}.s3.amazonaws.com", "/"
    else:
        base = f"{parts.path.rstrip('/')}/{bucket}/"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    creds = None
    if not cfg.unsigned:
        creds = session.get_credentials()
        if creds is None:
            raise FetchFailed(
                "no AWS credentials found (environment, ~/.aws, instance role); "
                "use unsigned access (--no-sign-request) for a public bucket"
            )
    default_port = port == (443 if parts.scheme == "https" else 80)
    netloc = host if default_port else f"{host}:{port}"
    return Endpoint(parts.scheme, host, port, base, region, f"{parts.scheme}://{netloc}"), creds


class RetryBudget:
    """Retries allowed so far: a floor plus a fraction of the objects requested (thread-safe)."""

    def __init__(self, minimum: int, ratio: float) -> None:
        self.minimum, self.ratio = minimum, ratio
        self.requested = 0
        self.spent = 0
        self._lock = threading.Lock()

    def request(self) -> None:
        with self._lock:
            self.requested += 1

    def try_spend(self) -> bool:
        with self._lock:
            if self.spent >= self.minimum + self.ratio * self.requested:
                return False
            self.spent += 1
            return True


class S3Reader:
    """GETs ``<prefix><sha1>`` from ``bucket`` over persistent connections, one per worker thread; thread-safe.
    Defaults: the public SWH bucket (docs/spec.md §1.6)."""

    def __init__(self, cfg: FetchConfig, bucket: str = SWH_BUCKET, prefix: str = CONTENT_PREFIX) -> None:
        self.cfg, self.prefix = cfg, prefix
        self.endpoint, creds = resolve_endpoint(cfg, bucket)
        self._signer = None
        if creds is not None:
            from botocore.auth import S3SigV4Auth

            self._signer = S3SigV4Auth(creds, "s3", self.endpoint.region)
        self._local = threading.local()
        self._ssl = ssl.create_default_context() if self.endpoint.scheme == "https" else None
        self.budget = RetryBudget(cfg.retry_budget_min, cfg.retry_budget_ratio)
        self._conns: set[http.client.HTTPConnection] = set()
        self._conns_lock = threading.Lock()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            ep, timeout = self.endpoint, self.cfg.connect_timeout
            if self._ssl is not None:
                conn = http.client.HTTPSConnection(ep.host, ep.port, timeout=timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)
            conn.connect()
            conn.sock.settimeout(self.cfg.read_timeout)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.add(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._conns_lock:
                self._conns.discard(conn)

    def _headers(self, path: str) -> dict[str, str]:
        if self._signer is None:
            return {}
        from botocore.awsrequest import AWSRequest

        req = AWSRequest(method="GET", url=self.endpoint.url + path)
        self._signer.add_auth(req)
        return dict(req.headers.items())

    def _get_once(self, path: str) -> bytes | None:
        """One GET: the body, ``None`` for a missing key; raises RetryableError / FetchFailed / TooLarge."""
        try:
            conn = self._conn()
            conn.request("GET", path, headers=self._headers(path))
            resp = conn.getresponse()
            status = resp.status
            length = resp.getheader("Content-Length")
            if status == 200 and length is not None and int(length) > self.cfg.max_compressed:
                self._drop()  # do not read the body: the connection is not reusable
                raise _Oversize(f"stored object is {int(length)} bytes compressed")
            body = resp.read(self.cfg.max_compressed + 1)
            if not resp.isclosed():
                self._drop()
                if status == 200:
                    raise _Oversize(f"stored object exceeds {self.cfg.max_compressed} bytes compressed")
            if resp.will_close:
                self._drop()
        except (OSError, http.client.HTTPException) as e:  # timeouts, resets, refused, bad status lines
            self._drop()
            raise RetryableError(type(e).__name__) from None
        if status == 200:
            return body
        m = _ERROR_CODE.search(body[:4096])
        code = m.group(1).decode("ascii", "replace") if m else ""
        if status == 404 or code == "NoSuchKey":
            return None
        if status in RETRY_STATUS:
            raise RetryableError(f"HTTP {status} {code}".strip())
        region = resp.getheader("x-amz-bucket-region")
        hint = f" (the bucket is in {region}: pass --region {region})" if region else ""
        raise FetchFailed(f"HTTP {status} {code}{hint}".strip())

    def get(self, sha1: str) -> bytes | None:
        """The stored gzip bytes of ``sha1``, ``None`` if missing; retries transient failures with backoff."""
        path = f"{self.endpoint.base_path}{self.prefix}{sha1}"
        self.budget.request()
        attempt = 0
        while True:
            try:
                return self._get_once(path)
            except RetryableError as e:
                attempt += 1
                if attempt >= self.cfg.max_attempts:
                    raise FetchFailed(f"{e} after {attempt} attempts") from None
                if not self.budget.try_spend():
                    raise FetchFailed(f"{e}; retry budget exhausted") from None
                cap = min(self.cfg.backoff_max, self.cfg.backoff_base * 2**attempt)
                time.sleep(random.uniform(0, cap))

    def fetch_one(
        self, blob_id: str, content_id: str | None = None, encoding: str | None = None
    ) -> tuple[BlobOutcome, int]:
        """Get and process one blob; returns its outcome and the compressed bytes transferred."""
        try:
            gz = self.get(blob_id)
        except _Oversize as e:
            return BlobOutcome(reason=TOO_LARGE, detail=str(e)), 0
        except FetchFailed as e:
            return BlobOutcome(reason=FETCH_ERROR, detail=str(e)), 0
        if gz is None:
            return BlobOutcome(reason=MISSING_OBJECT), 0
        out = process_blob(
            blob_id,
            gz,
            content_id=content_id,
            max_length=self.cfg.max_length,
            verify=self.cfg.verify_hashes,
            encoding=encoding,
        )
        return out, len(gz)

    @property
    def retries(self) -> int:
        return self.budget.spent

    def close(self) -> None:
        """Close every worker's connection."""
        with self._conns_lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            conn.close()


class _Oversize(Exception):
    """The compressed object is above ``max_compressed``: rejected ``too_large`` without reading it."""


@dataclass
class Progress:
    """Files/s, MB/s and errors by reason, printed every ``every`` seconds and summarised at the end."""

    label: str = "fetch"
    every: float = 10.0
    out: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))
    files: int = 0
    bytes: int = 0
    reasons: Counter = field(default_factory=Counter)
    t0: float = field(default_factory=time.monotonic)
    _last: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: BlobOutcome, nbytes: int) -> None:
        with self._lock:
            self.files += 1
            self.bytes += nbytes
            if outcome.reason:
                self.reasons[outcome.reason] += 1
            now = time.monotonic()
            if now - self._last >= self.every:
                self._last = now
                self.out(self.line())

    def line(self) -> str:
        dt = max(time.monotonic() - self.t0, 1e-9)
        errs = ", ".join(f"{k}={v}" for k, v in sorted(self.reasons.items())) or "none"
        return (
            f"[{self.label}] {self.files:,} objects in {dt:,.1f}s: {self.files / dt:,.0f} objects/s, "
            f"{self.bytes / dt / 1e6:,.2f} MB/s (compressed); rejected: {errs}"
        )


Request = tuple[str, str | None, str | None]
"""(blob_id, content_id or None, src_encoding or None)."""


def fetch(
    reader: S3Reader, requests: Iterable[Request], *, window: int | None = None, progress: Progress | None = None
) -> Iterator[BlobOutcome]:
    """Fetch and process every request, ``reader.cfg.concurrency`` at a time, yielding outcomes in input order.

    At most ``window`` (default 4 x concurrency) requests are submitted ahead of the one being yielded, so
    memory stays bounded whatever the input length.
    """
    window = window or 4 * reader.cfg.concurrency
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(reader.cfg.concurrency, thread_name_prefix="s3fetch") as pool:
        for req in requests:
            pending.append(pool.submit(reader.fetch_one, *req))
            if len(pending) >= window:
                yield _done(pending.popleft(), progress)
        while pending:
            yield _done(pending.popleft(), progress)


def _done(fut: Future, progress: Progress | None) -> BlobOutcome:
    outcome, nbytes = fut.result()
    if progress is not None:
        progress.add(outcome, nbytes)
    return outcome
