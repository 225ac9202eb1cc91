"""A fault-injecting HTTP/1.1 proxy on loopback, in front of the test S3 server.

Per request it can add latency (a remote S3 is ~30 ms away; loopback is not), answer ``503 SlowDown`` as S3 does
when throttling, or drop the connection without an answer (a crashed or restarting server). Faults are drawn
from a seeded RNG, so a run injects the same pattern each time. Requests keep their connection (keep-alive),
each client connection having its own upstream connection, as a real load balancer would.

Run in-process (``FaultProxy(...).start()``, a background thread with its own event loop) for tests, or as a
separate process for benchmarks so its CPU is not billed to the client being measured::

    python -m tests.faultproxy --upstream 127.0.0.1:8333 --port 18333 --latency-ms 30
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
from dataclasses import dataclass, field

SLOWDOWN = b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s"
_SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    port: int = 0
    latency: float = 0.0
    #: Fraction of requests answered 503 SlowDown.
    fail_rate: float = 0.0
    #: Fraction of requests whose connection is closed without an answer.
    drop_rate: float = 0.0
    seed: int = 0
    requests: int = 0
    injected_503: int = 0
    injected_drops: int = 0
    _rng: random.Random = field(init=False)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.base_events.Server | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r = up_w = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                head, expects = _without_expect(head)
                if expects:  # answer it here, as a load balancer does: the client then sends its body
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await writer.drain()
                body = await _read_body(reader, head)
                self.requests += 1
                draw = self._rng.random()
                if self.latency:
                    await asyncio.sleep(self.latency)
                if draw < self.drop_rate:
                    self.injected_drops += 1
                    return
                if draw < self.drop_rate + self.fail_rate:
                    self.injected_503 += 1
                    writer.write(SLOWDOWN % (len(_SLOWDOWN_BODY), _SLOWDOWN_BODY))
                    await writer.drain()
                    continue
                if up_w is None:
                    up_r, up_w = await asyncio.open_connection(self.upstream_host, self.upstream_port)
                up_w.write(head + body)
                await up_w.drain()
                await _relay_response(up_r, writer, head.startswith(b"HEAD "))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            if up_w is not None:
                up_w.close()

    def start(self) -> FaultProxy:
        """Serve from a daemon thread; returns once the port is bound."""
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="faultproxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """A request's body as sent: ``Content-Length`` bytes, or a chunked body with its trailers (the AWS C++ SDK
    streams uploads as ``aws-chunked`` with a checksum trailer)."""
    if b"transfer-encoding: chunked" not in head.lower():
        length = _content_length(head)
        return await reader.readexactly(length) if length else b""
    body = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        body.append(size_line)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body.append(await reader.readexactly(size + 2))
    while True:  # trailers, then the blank line that ends the body
        line = await reader.readuntil(b"\r\n")
        body.append(line)
        if line == b"\r\n":
            return b"".join(body)


def _without_expect(head: bytes) -> tuple[bytes, bool]:
    """The request head without its ``Expect: 100-continue`` line (boto3 and the AWS C++ SDK send one with a PUT
    body), and whether it had one. The proxy reads the whole body before it forwards a request or answers 503, so it
    answers the expectation itself; upstream never sees it."""
    lines = head.split(b"\r\n")
    kept = [line for line in lines if line.split(b":", 1)[0].strip().lower() != b"expect"]
    return b"\r\n".join(kept), len(kept) != len(lines)


async def _relay_response(up: asyncio.StreamReader, client: asyncio.StreamWriter, is_head: bool) -> None:
    """Copy one HTTP response (Content-Length or chunked body) from upstream to the client."""
    head = await up.readuntil(b"\r\n\r\n")
    client.write(head)
    lower = head.lower()
    if is_head or b" 204 " in head.split(b"\r\n", 1)[0] or b" 304 " in head.split(b"\r\n", 1)[0]:
        pass
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size_line = await up.readuntil(b"\r\n")
            client.write(size_line)
            size = int(size_line.split(b";")[0], 16)
            client.write(await up.readexactly(size + 2))
            if size == 0:
                break
    else:
        remaining = _content_length(head)
        while remaining:
            chunk = await up.read(min(remaining, 1 << 20))
            if not chunk:
                raise ConnectionError("upstream closed mid-body")
            client.write(chunk)
            remaining -= len(chunk)
            await client.drain()
    await client.drain()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="host:port of the server behind the proxy")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--drop-rate", type=float, default=0.0)
    a = ap.parse_args()
    host, _, port = a.upstream.rpartition(":")
    proxy = FaultProxy(host, int(port), a.port, a.latency_ms / 1000, a.fail_rate, a.drop_rate)

    async def serve() -> None:
        await proxy._serve()
        print(f"faultproxy listening on {proxy.endpoint_url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
