"""CPU per object of each step of a fetch, without a server: where the reader's time goes.

    .venv/bin/python bench/fetch/costs.py --objects 5000 --repeats 5

Over the first ``--objects`` files of ``run.py``'s corpus, each step runs over every object, the steps taking turns
``--repeats`` times (the machine is shared); prints the median and range of CPU-µs per object (``process_time``):

* signing one GET: botocore's ``S3SigV4Auth`` on an ``AWSRequest`` (the reader before) vs ``s3wire.SigV4Signer``;
* reading one response (SeaweedFS's headers, the object as body) from a socket pair: ``http.client`` (request,
  ``getresponse``, ``read``; the reader before) vs ``s3wire.ResponseParser`` fed by one ``recv``; both include
  the send and receive system calls of a loopback socket pair;
* ``process_blob`` and its parts: bounded gunzip, the two hashes (swh-model's ``MultiHash``, before, vs hashlib),
  decoding with the known ``src_encoding``.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

#: The headers SeaweedFS 4 sends with a GET of an object (values of the right length).
HEAD = (
    "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: {n}\r\nContent-Type: application/octet-stream\r\n"
    'Etag: "4c5d0b1de0a8c0b5f4f0b3f1e8e7d2a1"\r\nLast-Modified: Sun, 06 Dec 2026 06:00:00 GMT\r\n'
    "Server: SeaweedFS 4.48\r\nX-Amz-Request-Id: 1765000000000000000\r\nDate: Sun, 06 Dec 2026 06:00:00 GMT\r\n\r\n"
)


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return a, b


def steps(gzs: list[bytes], rows: list[dict]) -> dict:
    """name -> function(i) doing that step for object ``i``."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from swh.model.hashutil import MultiHash

    from stackv2.swh.s3wire import ResponseParser, SigV4Signer
    from stackv2.text.decode import content_hashes, gunzip_bounded, process_blob

    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    boto = S3SigV4Auth(creds, "s3", "us-east-1")
    ours = SigV4Signer(creds, "us-east-1", "127.0.0.1:8333")
    paths = [f"/softwareheritage/content/{r['blob_id']}" for r in rows]
    responses = [HEAD.format(n=len(gz)).encode() + gz for gz in gzs]
    raws = [gunzip_bounded(gz, 10 << 20) for gz in gzs]
    client, server = _pair()

    class _Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = client

    conn = _Conn("127.0.0.1", 8333)

    def boto_sign(i: int) -> None:
        req = AWSRequest(method="GET", url="http://127.0.0.1:8333" + paths[i])
        boto.add_auth(req)
        dict(req.headers.items())

    def http_client(i: int) -> None:
        server.sendall(responses[i])
        conn.request("GET", paths[i])
        server.recv(65536)
        resp = conn.getresponse()
        resp.read()

    def wire(i: int) -> None:
        server.sendall(responses[i])
        client.send(f"GET {paths[i]} HTTP/1.1\r\nHost: 127.0.0.1:8333\r\n\r\n".encode())
        server.recv(65536)
        p = ResponseParser(11 << 20)
        while not p.done:
            p.feed(client.recv(p.wanted()))

    def multihash(i: int) -> None:
        MultiHash.from_data(raws[i], hash_names=("sha1", "sha1_git")).digest()

    return {
        "sign: botocore S3SigV4Auth": boto_sign,
        "sign: s3wire.SigV4Signer": lambda i: ours.headers(paths[i]),
        "response: http.client": http_client,
        "response: s3wire.ResponseParser": wire,
        "process_blob": lambda i: process_blob(
            rows[i]["blob_id"],
            gzs[i],
            content_id=rows[i]["content_id"],
            max_length=10 << 20,
            encoding=rows[i]["src_encoding"],
        ),
        "  gunzip_bounded": lambda i: gunzip_bounded(gzs[i], 10 << 20),
        "  hashes: swh-model MultiHash": multihash,
        "  hashes: content_hashes (hashlib)": lambda i: content_hashes(raws[i]),
        "  decode (src_encoding)": lambda i: raws[i].decode(rows[i]["src_encoding"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from run import corpus_files

    from stackv2.swh.content_store import compress
    from stackv2.text.decode import content_hashes, decode_content

    files = corpus_files(args.objects)
    gzs = [compress(f) for f in files]
    rows = []
    for f in files:
        h = content_hashes(f)
        dec = decode_content(f)
        rows.append({"blob_id": h["sha1"], "content_id": h["sha1_git"], "src_encoding": dec[1] if dec else "UTF-8"})
    table = steps(gzs, rows)
    times: dict[str, list[float]] = {name: [] for name in table}
    n = len(gzs)
    for _ in range(args.repeats):
        for name, step in table.items():
            t = time.process_time()
            for i in range(n):
                step(i)
            times[name].append((time.process_time() - t) / n * 1e6)
    print(f"{n:,} objects, mean {sum(map(len, files)) / n:,.0f} B raw, {sum(map(len, gzs)) / n:,.0f} B gzip\n")
    print("| step | CPU-µs / object, median (min–max) |")
    print("| --- | --- |")
    for name, ts in times.items():
        ts.sort()
        print(f"| {name} | {ts[len(ts) // 2]:.1f} ({ts[0]:.1f}–{ts[-1]:.1f}) |")


if __name__ == "__main__":
    main()
