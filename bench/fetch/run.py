"""Fetch benchmark: the dataset card's recipe vs our lean reader vs the server's raw ceiling, on one SeaweedFS.

    .venv/bin/python bench/fetch/run.py --objects 20000

Corpus: the first ``--objects`` distinct real source files of this venv's site-packages (sorted by path, so the
size mix is that of real code), gzip-compressed and stored at ``content/<sha1>`` in a SeaweedFS started on
loopback. Two conditions: ``direct`` (loopback; CPU per object is the limit) and ``latency`` (through
``tests/faultproxy.py`` in its own process adding ``--latency-ms`` per request: a remote S3). Each method runs
in its own worker process so its CPU time and peak RSS are its own:

* ``card``: the dataset card's code (docs/spec.md §2.4): one blocking boto3 ``smart_open`` read per blob, gunzip,
  decode with ``src_encoding`` — signed, like the card;
* ``ours``: ``stackv2.swh.s3fetch`` (signed, then unsigned): fetch + bounded gunzip + sha1/sha1_git check + decode;
* ``ceiling``: GETs with bytes discarded, nothing verified or decoded: aiohttp at ``--ceiling-concurrency`` and
  at 64, and (``ceiling-threads``) our own transport, threads with keep-alive ``http.client`` connections; the
  ratios use the best of them.

``card`` is sequential, so it runs on the first ``--card-objects`` only; its rate is what matters. Prints a
Markdown table (objects/s, MB/s of compressed objects, CPU seconds per 1k objects, peak RSS) and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

BUCKET = "softwareheritage"
EXTENSIONS = {
    ".py",
    ".pyi",
    ".c",
    ".h",
    ".cpp",
    ".hpp",
    ".pyx",
    ".pxd",
    ".js",
    ".ts",
    ".json",
    ".md",
    ".rst",
    ".txt",
    ".toml",
    ".cfg",
    ".yaml",
    ".yml",
    ".html",
    ".css",
    ".sh",
    ".f",
    ".f90",
    ".java",
    ".go",
    ".rs",
    ".pxi",
    ".cc",
    ".hh",
    ".cu",
    ".pyf",
    ".cmake",
    ".ini",
    ".tpl",
    ".tmpl",
    ".xsl",
    ".svg",
    ".csv",
    ".po",
}
#: Other real text files, used only to make up the count: dist-info files, scancode's license texts and rules.
OTHER_TEXT = {"", ".LICENSE", ".RULE", ".ABOUT", ".NOTICE"}


def corpus_files(n: int, max_bytes: int = 10 * 1024 * 1024) -> list[bytes]:
    """``n`` distinct non-empty text files from site-packages: every source file (``EXTENSIONS``) in path order,
    then, if that is not enough, an evenly spaced sample of the other text files (dist-info metadata, license
    texts and rules of scancode) to make up the count."""
    import sysconfig

    from stackv2.text.decode import content_hashes

    root = Path(sysconfig.get_paths()["purelib"])
    paths = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    code = [p for p in paths if p.suffix in EXTENSIONS]
    other = [p for p in paths if p.suffix in OTHER_TEXT]
    seen, out = set(), []

    def take(candidates: list[Path], limit: int) -> None:
        for p in candidates:
            if len(out) >= limit:
                return
            data = p.read_bytes()
            if not data or len(data) >= max_bytes or b"\0" in data:
                continue
            h = content_hashes(data)["sha1"]
            if h not in seen:
                seen.add(h)
                out.append(data)

    take(code, n)
    if len(out) < n:
        step = max(1, len(other) // (2 * (n - len(out))))
        take(other[::step], n)
    return out


def load(server, files: list[bytes]) -> list[dict]:
    """Store the corpus; returns [{blob_id, content_id, src_encoding, gz_bytes}] in corpus order."""
    from stackv2.swh.content_store import compress
    from stackv2.text.decode import content_hashes, decode_content
    from tests.s3server import put_objects

    rows, objects = [], {}
    for data in files:
        h = content_hashes(data)
        dec = decode_content(data)
        gz = compress(data)
        objects[f"content/{h['sha1']}"] = gz
        rows.append(
            {
                "blob_id": h["sha1"],
                "content_id": h["sha1_git"],
                "src_encoding": dec[1] if dec else "UTF-8",
                "gz_bytes": len(gz),
            }
        )
    put_objects(server, BUCKET, objects, threads=32)
    return rows


# ---- workers (each in its own process) -----------------------------------------------------------------------


def work_card(endpoint: str, rows: list[dict]) -> int:
    import boto3
    from smart_open import open as sopen

    s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")
    n = 0
    for r in rows:
        with sopen(
            f"s3://{BUCKET}/content/{r['blob_id']}", "rb", compression=".gz", transport_params={"client": s3}
        ) as fin:
            content = fin.read().decode(r["src_encoding"])
        n += content is not None
    return n


def work_ours(endpoint: str, rows: list[dict], unsigned: bool, concurrency: int) -> int:
    from stackv2.swh.s3fetch import S3FetchConfig, S3Reader, fetch

    reader = S3Reader(S3FetchConfig(endpoint_url=endpoint, unsigned=unsigned, concurrency=concurrency))
    reqs = ((r["blob_id"], r["content_id"], r["src_encoding"]) for r in rows)
    ok = sum(o.reason is None for o in fetch(reader, reqs))
    reader.close()
    return ok


def work_ceiling(endpoint: str, rows: list[dict], concurrency: int) -> int:
    import aiohttp

    async def run() -> int:
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:
            queue = iter(rows)
            done = 0

            async def loop() -> None:
                nonlocal done
                for r in queue:
                    async with session.get(f"{endpoint}/{BUCKET}/content/{r['blob_id']}") as resp:
                        await resp.read()
                        done += resp.status == 200

            await asyncio.gather(*(loop() for _ in range(concurrency)))
            return done

    return asyncio.run(run())


def work_ceiling_threads(endpoint: str, rows: list[dict], concurrency: int) -> int:
    """The same transport as ours (threads, one keep-alive ``http.client`` connection each), bytes discarded."""
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)
    local = threading.local()

    def get(r: dict) -> bool:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(url.hostname, url.port)
        local.conn.request("GET", f"/{BUCKET}/content/{r['blob_id']}")
        resp = local.conn.getresponse()
        resp.read()
        return resp.status == 200

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(get, rows, chunksize=16))


def worker(args: argparse.Namespace) -> None:
    rows = json.loads(Path(args.rows).read_text())[: args.n]
    t0, r0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    if args.method == "card":
        ok = work_card(args.endpoint, rows)
    elif args.method.startswith("ours"):
        ok = work_ours(args.endpoint, rows, args.method == "ours-unsigned", args.concurrency)
    elif args.method == "ceiling-threads":
        ok = work_ceiling_threads(args.endpoint, rows, args.concurrency)
    else:
        ok = work_ceiling(args.endpoint, rows, args.concurrency)
    dt, r1 = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(
        json.dumps(
            {
                "method": args.method,
                "objects": len(rows),
                "ok": ok,
                "seconds": dt,
                "cpu": cpu,
                "gz_bytes": sum(r["gz_bytes"] for r in rows),
                "max_rss_mb": peak_rss_mb(),
            }
        )
    )


def peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``: unlike ``ru_maxrss`` it does not inherit the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---- driver --------------------------------------------------------------------------------------------------


def run_worker(method: str, endpoint: str, rows_file: Path, n: int, concurrency: int, env: dict) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "worker",
        "--method",
        method,
        "--endpoint",
        endpoint,
        "--rows",
        str(rows_file),
        "--n",
        str(n),
        "--concurrency",
        str(concurrency),
    ]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    if res["ok"] != res["objects"]:
        raise RuntimeError(f"{method}: only {res['ok']} of {res['objects']} objects fetched")
    return res


def fmt(r: dict) -> str:
    rate, mbs = r["objects"] / r["seconds"], r["gz_bytes"] / r["seconds"] / 1e6
    return (
        f"| {r['condition']} | {r['method']} | {r['concurrency']} | {r['objects']:,} | {rate:,.0f} | {mbs:,.1f} | "
        f"{r['cpu'] / r['objects'] * 1000:,.2f} | {r['max_rss_mb']:,.0f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    w.add_argument("--method", required=True)
    w.add_argument("--endpoint", required=True)
    w.add_argument("--rows", required=True)
    w.add_argument("--n", type=int, required=True)
    w.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--objects", type=int, default=20_000)
    ap.add_argument("--card-objects", type=int, default=1_000, help="objects the sequential card method reads")
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=64, help="our requests in flight")
    ap.add_argument("--latency-concurrency", type=int, default=128, help="our requests in flight, latency run")
    ap.add_argument("--ceiling-concurrency", type=int, default=256)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.cmd == "worker":
        worker(args)
        return

    from tests.s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3, free_port_block

    tmp = Path(tempfile.mkdtemp(prefix="stackv2-bench-fetch-"))
    server = SeaweedS3(tmp / "weed").start()
    proxy = None
    try:
        server.create_bucket(BUCKET)
        t0 = time.monotonic()
        rows = load(server, corpus_files(args.objects))
        sizes = sorted(r["gz_bytes"] for r in rows)
        print(
            f"corpus: {len(rows):,} objects, {sum(sizes) / 1e6:,.1f} MB gzip, median {sizes[len(sizes) // 2]:,} B, "
            f"p99 {sizes[int(len(sizes) * 0.99)]:,} B, max {sizes[-1]:,} B; loaded in {time.monotonic() - t0:.0f}s",
            flush=True,
        )
        rows_file = tmp / "rows.json"
        rows_file.write_text(json.dumps(rows))
        port = free_port_block(1)
        proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.faultproxy",
                "--upstream",
                f"127.0.0.1:{server.s3_port}",
                "--port",
                str(port),
                "--latency-ms",
                str(args.latency_ms),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        proxy.stdout.readline()
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "PYTHONPATH": str(REPO),
        }
        results = []
        for condition, endpoint, conc in (
            ("direct", server.endpoint_url, args.concurrency),
            (f"+{args.latency_ms:g} ms", f"http://127.0.0.1:{port}", args.latency_concurrency),
        ):
            plan = [
                ("ceiling", len(rows), args.ceiling_concurrency),
                ("ceiling", len(rows), 64),
                ("ceiling-threads", len(rows), conc),
                ("ours-signed", len(rows), conc),
                ("ours-unsigned", len(rows), conc),
                ("card", min(args.card_objects, len(rows)), 1),
            ]
            for method, n, c in plan:
                r = run_worker(method, endpoint, rows_file, n, c, env)
                r["condition"], r["concurrency"] = condition, c
                results.append(r)
                print(fmt(r), flush=True)
        print(
            "\n| condition | method | in flight | objects | objects/s | MB/s (gzip) | CPU s / 1k objects | "
            "peak RSS MB |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in results:
            print(fmt(r))
        rate: dict[tuple[str, str], float] = {}
        for r in results:  # the ceiling is the best of its clients and concurrencies
            key = (r["condition"], r["method"].removesuffix("-threads"))
            rate[key] = max(rate.get(key, 0.0), r["objects"] / r["seconds"])
        for cond in dict.fromkeys(r["condition"] for r in results):
            for m in ("ours-signed", "ours-unsigned"):
                print(
                    f"{cond}: {m}/card = {rate[cond, m] / rate[cond, 'card']:.1f}x, "
                    f"{m}/ceiling = {rate[cond, m] / rate[cond, 'ceiling']:.2f}"
                )
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
