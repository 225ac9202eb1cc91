"""The lean, high-throughput reader of SWH content objects on S3 (``s3://softwareheritage/content/<sha1>``).

Why not one ``boto3`` ``get_object`` per blob (the dataset card's recipe)? botocore spends ~1 ms of CPU per call
and the card's loop has one request in flight, so users report ~22 blobs/s per process. Here:

* many requests in flight per process, on one event loop: up to ``concurrency`` keep-alive connections with
  non-blocking sockets (``selectors``), each carrying one request at a time. No thread per connection: handing the
  GIL between 64 threads, futures and ``http.client``'s parsing cost more CPU than the GETs themselves
  (docs/fetch.md, "CPU per object");
* what goes on the wire is ``s3wire``'s: one preformatted request, SigV4-signed with a key derived once per day
  (the same headers as botocore's ``S3SigV4Auth``), or unsigned for public buckets (``unsigned=True``), and an
  incremental HTTP/1.1 response parser;
* boto3's standard settings still decide *where* and *who*: endpoint (``AWS_ENDPOINT_URL_S3``, config files),
  region and the credential chain are resolved once through botocore, whose credentials object is asked for its
  current (refreshed) values once a second;
* exponential backoff with full jitter on throttling (503 SlowDown), other 5xx, 429, timeouts, dropped
  connections and malformed answers, bounded per object (``max_attempts``) and per run (a retry budget, so an
  outage does not turn into a retry storm); a waiting retry sits in a timer heap while other transfers go on;
* bounded memory: a response larger than ``max_compressed`` is refused from its ``Content-Length`` without
  reading it, decompression stops at the size cap (``text.decode.gunzip_bounded``), and ``fetch`` keeps at most
  ``window`` requests admitted ahead of the one being yielded, yielding them in input order;
* every object goes through ``text.decode.process_blob`` (bounded gunzip, sha1/sha1_git check, binary check,
  decoding), in the loop's thread as its answer completes, so reasons are the same as for every other fetcher.

Credentials are never logged: error details carry only the HTTP status and the S3 error code.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
import random
import re
import selectors
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
from urllib.parse import quote, urlsplit

from stackv2.swh.config import FetchConfig
from stackv2.swh.content_store import CONTENT_PREFIX
from stackv2.swh.s3wire import BodyTooLarge, ProtocolError, ResponseParser, SigV4Signer
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


# Connection states.
_CONNECTING, _HANDSHAKE, _SENDING, _RECEIVING, _IDLE = range(5)
#: Seconds between checks of the connections' deadlines.
_TICK = 0.5
#: A non-blocking socket that cannot go on now (TLS may want to read in order to write, or the reverse).
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Job:
    """One requested object: its request, its tries so far, and once settled its (outcome, compressed bytes)."""

    __slots__ = ("attempts", "blob_id", "content_id", "encoding", "result")

    def __init__(self, blob_id: str, content_id: str | None, encoding: str | None) -> None:
        self.blob_id, self.content_id, self.encoding = blob_id, content_id, encoding
        self.attempts = 0
        self.result: tuple[BlobOutcome, int] | None = None


class _Conn:
    """One keep-alive connection, its state and the job it carries."""

    __slots__ = ("deadline", "job", "out", "parser", "sock", "state")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock: socket.socket = sock
        self.state = _CONNECTING
        self.job: _Job | None = None
        self.out = b""
        self.parser: ResponseParser | None = None
        self.deadline = deadline


class S3Reader:
    """GETs ``<prefix><sha1>`` from ``bucket`` over up to ``cfg.concurrency`` keep-alive connections, all driven
    by one event loop in the calling thread (non-blocking sockets, ``selectors``). Each ``stream``/``fetch`` call
    runs its own loop, so the reader is thread-safe; idle connections wait for the next call until ``close``.
    Defaults: the public SWH bucket (docs/spec.md §1.6)."""

    def __init__(self, cfg: FetchConfig, bucket: str = SWH_BUCKET, prefix: str = CONTENT_PREFIX) -> None:
        self.cfg, self.prefix = cfg, prefix
        self.endpoint, creds = resolve_endpoint(cfg, bucket)
        ep = self.endpoint
        self.host_header = ep.url.split("://", 1)[1]
        self._signer = SigV4Signer(creds, ep.region, self.host_header) if creds is not None else None
        self._ssl = ssl.create_default_context() if ep.scheme == "https" else None
        self._path = quote(f"{ep.base_path}{prefix}", safe="/~")
        self._addresses: list[tuple] = []
        self._turn = 0
        self.budget = RetryBudget(cfg.retry_budget_min, cfg.retry_budget_ratio)
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()

    @property
    def retries(self) -> int:
        return self.budget.spent

    def fetch_one(
        self, blob_id: str, content_id: str | None = None, encoding: str | None = None
    ) -> tuple[BlobOutcome, int]:
        """Get and process one blob; returns its outcome and the compressed bytes transferred."""
        with contextlib.closing(self.stream([(blob_id, content_id, encoding)], 1)) as results:
            return next(results)

    def stream(self, requests: Iterable[Request], window: int) -> Iterator[tuple[BlobOutcome, int]]:
        """(outcome, compressed bytes) of every request, in input order, with at most ``window`` requests
        admitted ahead of the one being yielded."""
        with self._lock:
            idle, self._idle = self._idle, []
        loop = _Loop(self, idle)
        try:
            yield from loop.run(requests, window)
        finally:
            with self._lock:
                self._idle.extend(loop.close())

    def close(self) -> None:
        """Close the idle connections (a ``stream`` closes its busy ones when it ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.sock.close()

    def request(self, blob_id: str) -> bytes:
        """The bytes of ``GET <prefix><blob_id>``, signed unless the reader is unsigned."""
        path = f"{self._path}{blob_id}"
        auth = self._signer.headers(path) if self._signer is not None else ""
        return f"GET {path} HTTP/1.1\r\nHost: {self.host_header}\r\n{auth}\r\n".encode()

    def connect(self) -> socket.socket:
        """A non-blocking socket connecting to the next of the endpoint's addresses (resolved once, and again
        after a failed connection; several addresses are taken in turn)."""
        if not self._addresses:
            ep = self.endpoint
            self._addresses = [(a[0], a[4]) for a in socket.getaddrinfo(ep.host, ep.port, type=socket.SOCK_STREAM)]
        self._turn = (self._turn + 1) % len(self._addresses)
        family, addr = self._addresses[self._turn]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, os.strerror(err))
        except OSError:
            sock.close()
            self._addresses = []
            raise
        return sock

    def connected(self, sock: socket.socket) -> socket.socket:
        """The socket once its connection is up (raises if it failed), wrapped in TLS for https (the handshake is
        the caller's to drive)."""
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._addresses = []
            raise OSError(err, os.strerror(err))
        if self._ssl is None:
            return sock
        return self._ssl.wrap_socket(sock, server_hostname=self.endpoint.host, do_handshake_on_connect=False)

    def outcome(self, job: _Job, resp: ResponseParser) -> tuple[BlobOutcome, int]:
        """What a complete response means for its job; raises ``RetryableError`` for answers worth another try."""
        status = resp.status
        if status == 200:
            gz = resp.body
            out = process_blob(
                job.blob_id,
                gz,
                content_id=job.content_id,
                max_length=self.cfg.max_length,
                verify=self.cfg.verify_hashes,
                encoding=job.encoding,
            )
            return out, len(gz)
        m = _ERROR_CODE.search(resp.body[:4096])
        code = m.group(1).decode("ascii", "replace") if m else ""
        if status == 404 or code == "NoSuchKey":
            return BlobOutcome(reason=MISSING_OBJECT), 0
        if status in RETRY_STATUS:
            raise RetryableError(f"HTTP {status} {code}".strip())
        region = resp.headers.get("x-amz-bucket-region")
        hint = f" (the bucket is in {region}: pass --region {region})" if region else ""
        return BlobOutcome(reason=FETCH_ERROR, detail=f"HTTP {status} {code}{hint}".strip()), 0


class _Loop:
    """One ``S3Reader.stream`` call: jobs in input order, jobs waiting for a connection or for their retry time,
    and the connections, each advanced by its socket's readiness. Retries wait in a timer heap, never in a sleep,
    so the other transfers go on meanwhile."""

    def __init__(self, reader: S3Reader, idle: list[_Conn]) -> None:
        self.reader, self.cfg = reader, reader.cfg
        self.sel = selectors.DefaultSelector()
        self.idle = idle
        for conn in idle:
            self.sel.register(conn.sock, selectors.EVENT_READ, conn)
        self.busy: set[_Conn] = set()
        self.ready: deque[_Job] = deque()
        self.timers: list[tuple[float, int, _Job]] = []
        self._seq = 0

    def run(self, requests: Iterable[Request], window: int) -> Iterator[tuple[BlobOutcome, int]]:
        order: deque[_Job] = deque()
        pending = iter(requests)
        more, check_at = True, 0.0
        while True:
            while more and len(order) < window:
                req = next(pending, None)
                if req is None:
                    more = False
                    break
                job = _Job(*req)
                self.reader.budget.request()
                order.append(job)
                self.ready.append(job)
            if order and order[0].result is not None:
                paused = time.monotonic()
                yield order.popleft().result
                held = time.monotonic() - paused
                if held > 1.0:  # the consumer held the loop: that time is no server's delay
                    for conn in self.busy:
                        conn.deadline += held
                continue
            if not order:
                return
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                self.ready.append(heapq.heappop(self.timers)[2])
            self._dispatch(now)
            wait = _TICK if not self.timers else min(_TICK, max(self.timers[0][0] - now, 0.0))
            for key, _ in self.sel.select(wait):
                conn = key.data
                if conn.state == _IDLE:
                    self._on_idle_event(conn)
                else:
                    self._step(conn)
            now = time.monotonic()
            if now >= check_at:  # timeouts are checked every tick: they fire up to a tick late
                check_at = now + _TICK
                for conn in [c for c in self.busy if c.deadline < now]:
                    self._settle(conn, RetryableError("timeout"))

    def _dispatch(self, now: float) -> None:
        """Give waiting jobs to idle connections, then to new ones up to ``concurrency``."""
        while self.ready and (self.idle or len(self.busy) < self.cfg.concurrency):
            job = self.ready.popleft()
            if self.idle:
                conn = self.idle.pop()
                conn.job = job
                self._start(conn, now)
            else:
                try:
                    sock = self.reader.connect()
                except OSError as e:
                    self._retry(job, RetryableError(type(e).__name__))
                    continue
                conn = _Conn(sock, now + self.cfg.connect_timeout)
                conn.job = job
                self.sel.register(sock, selectors.EVENT_WRITE, conn)  # writable once connected (or failed)
                self.busy.add(conn)
                continue
            self.busy.add(conn)
            self._step(conn)

    def _on_idle_event(self, conn: _Conn) -> None:
        """An idle connection became readable: the server closed it (or sent what nobody asked for), so drop it;
        unless it was TLS housekeeping (a session ticket), which leaves no application data."""
        try:
            conn.sock.recv(1)
        except _WOULD_BLOCK:
            return
        except OSError:
            pass
        self.idle.remove(conn)
        self._drop(conn)

    def _start(self, conn: _Conn, now: float) -> None:
        conn.out = self.reader.request(conn.job.blob_id)
        conn.parser = ResponseParser(self.cfg.max_compressed)
        conn.state, conn.deadline = _SENDING, now + self.cfg.read_timeout

    def _step(self, conn: _Conn) -> None:
        """Advance a busy connection as far as its socket allows; settle its job when the answer is complete."""
        try:
            resp = self._advance(conn)
        except BodyTooLarge as e:
            if e.status == 200:
                self._settle(conn, (BlobOutcome(reason=TOO_LARGE, detail=_too_large(e, self.cfg)), 0))
            elif e.status in RETRY_STATUS:
                self._settle(conn, RetryableError(f"HTTP {e.status}"))
            else:
                self._settle(conn, (BlobOutcome(reason=FETCH_ERROR, detail=f"HTTP {e.status}"), 0))
            return
        except ssl.SSLCertVerificationError as e:  # no retry fixes a certificate nobody trusts
            self._settle(conn, (BlobOutcome(reason=FETCH_ERROR, detail=f"TLS: {e.verify_message}"), 0))
            return
        except (OSError, ProtocolError) as e:  # refused, reset, TLS failures, malformed or cut answers
            self._settle(conn, RetryableError(type(e).__name__))
            return
        if resp is not None:
            try:
                result: tuple[BlobOutcome, int] | RetryableError = self.reader.outcome(conn.job, resp)
            except RetryableError as e:
                result = e
            self._settle(conn, result, reusable=resp.keep_alive and not resp.extra)

    def _advance(self, conn: _Conn) -> ResponseParser | None:
        """The complete response once there is one; ``None`` while waiting for the socket."""
        sel, sock = self.sel, conn.sock
        if conn.state == _CONNECTING:
            tls = self.reader.connected(sock)
            if tls is sock:
                self._start(conn, time.monotonic())
            else:
                sel.unregister(sock)
                conn.sock = sock = tls
                sel.register(sock, selectors.EVENT_WRITE, conn)
                conn.state = _HANDSHAKE
        if conn.state == _HANDSHAKE:
            try:
                sock.do_handshake()
            except ssl.SSLWantReadError:
                sel.modify(sock, selectors.EVENT_READ, conn)
                return None
            except ssl.SSLWantWriteError:
                sel.modify(sock, selectors.EVENT_WRITE, conn)
                return None
            self._start(conn, time.monotonic())
        if conn.state == _SENDING:
            try:
                sent = sock.send(conn.out)
            except _WOULD_BLOCK:
                sent = 0
            conn.out = conn.out[sent:]
            if conn.out:
                sel.modify(sock, selectors.EVENT_WRITE, conn)
                return None
            conn.state = _RECEIVING
            if sel.get_key(sock).events != selectors.EVENT_READ:
                sel.modify(sock, selectors.EVENT_READ, conn)
            return None  # the answer cannot be there yet: wait for it rather than try a read
        parser = conn.parser
        while True:
            try:
                data = sock.recv(parser.wanted())
            except _WOULD_BLOCK:
                return None
            except ssl.SSLZeroReturnError:
                data = b""
            if data:
                parser.feed(data)
            else:
                parser.eof()
            if parser.done:
                conn.deadline = 0.0
                return parser
            conn.deadline = time.monotonic() + self.cfg.read_timeout

    def _settle(self, conn: _Conn, result: tuple[BlobOutcome, int] | Exception, reusable: bool = False) -> None:
        """Record a job's result (or schedule its retry), then keep the connection for the next job or close it."""
        job = conn.job
        if isinstance(result, RetryableError):
            self._retry(job, result)
        else:
            job.result = result
        conn.job, conn.parser, conn.out = None, None, b""
        self.busy.discard(conn)
        if reusable:
            conn.state = _IDLE
            self.idle.append(conn)
        else:
            self._drop(conn)

    def _retry(self, job: _Job, error: RetryableError) -> None:
        """Schedule another try after a full-jitter backoff, unless the object's tries or the budget are spent."""
        job.attempts += 1
        if job.attempts >= self.cfg.max_attempts:
            job.result = BlobOutcome(reason=FETCH_ERROR, detail=f"{error} after {job.attempts} attempts"), 0
        elif not self.reader.budget.try_spend():
            job.result = BlobOutcome(reason=FETCH_ERROR, detail=f"{error}; retry budget exhausted"), 0
        else:
            cap = min(self.cfg.backoff_max, self.cfg.backoff_base * 2**job.attempts)
            self._seq += 1
            heapq.heappush(self.timers, (time.monotonic() + random.uniform(0, cap), self._seq, job))

    def _drop(self, conn: _Conn) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        conn.sock.close()

    def close(self) -> list[_Conn]:
        """Close the busy connections; returns the idle ones, reusable by a later stream."""
        for conn in self.busy:
            conn.sock.close()
        self.busy.clear()
        self.sel.close()
        return self.idle


def _too_large(e: BodyTooLarge, cfg: FetchConfig) -> str:
    if e.length is not None:
        return f"stored object is {e.length} bytes compressed"
    return f"stored object exceeds {cfg.max_compressed} bytes compressed"


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
    reader: Any, requests: Iterable[Request], *, window: int | None = None, progress: Progress | None = None
) -> Iterator[BlobOutcome]:
    """Fetch and process every request, yielding outcomes in input order.

    An ``S3Reader`` runs ``reader.cfg.concurrency`` at a time on its event loop, admitting at most ``window``
    (default 4 x concurrency) requests ahead of the one being yielded, so memory stays bounded whatever the input
    length. Any other reader with ``fetch_one`` (``stackv2.swh.reader.StoreReader``) is called in this thread, or
    on a pool of ``reader.cfg.folder_threads`` threads with the same bound.
    """
    if isinstance(reader, S3Reader):
        results = reader.stream(requests, window or 4 * reader.cfg.concurrency)
    elif reader.cfg.folder_threads > 1:
        results = _pooled(reader, requests, reader.cfg.folder_threads, window or 4 * reader.cfg.folder_threads)
    else:
        results = (reader.fetch_one(*req) for req in requests)
    for outcome, nbytes in results:
        if progress is not None:
            progress.add(outcome, nbytes)
        yield outcome


def _pooled(reader: Any, requests: Iterable[Request], threads: int, window: int) -> Iterator[tuple[BlobOutcome, int]]:
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="fetch") as pool:
        for req in requests:
            pending.append(pool.submit(reader.fetch_one, *req))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
