"""Fetch benchmark: the dataset card's recipe vs our lean reader vs the server's raw ceiling, on one SeaweedFS.

    .venv/bin/python bench/fetch/run.py --objects 10000 --rounds 3 --conditions direct --no-card \\
        --baseline-rev 220ea14

Corpus: the first ``--objects`` distinct real source files of this venv's site-packages (sorted by path, so the
size mix is that of real code), gzip-compressed and stored at ``content/<sha1>`` in a SeaweedFS started on
loopback. Two conditions: ``direct`` (loopback; CPU per object is the limit) and ``latency`` (through
``tests/faultproxy.py`` in its own process adding ``--latency-ms`` per request: a remote S3). Each method runs
in its own worker process so its CPU time and peak RSS are its own; time and CPU count from when its client is
set up (the set-up, once per process, is reported apart):

* ``card``: the dataset card's code (docs/spec.md §2.4): one blocking boto3 ``smart_open`` read per blob, gunzip,
  decode with ``src_encoding`` — signed, like the card;
* ``ours``: ``stackv2.swh.s3fetch`` (signed, then unsigned): fetch + bounded gunzip + sha1/sha1_git check + decode;
* ``before``: the same, with the ``stackv2`` of ``--baseline-rev`` (git archive), run in turn with ``ours``;
* ``ceiling``: GETs with bytes discarded, nothing verified or decoded: aiohttp at ``--ceiling-concurrency`` and
  at 64, and (``ceiling-threads``) threads with keep-alive ``http.client`` connections; the ratios use the best
  of them in the same round.

``card`` is sequential, so it runs on the first ``--card-objects`` only, in the first round; its rate is what
matters. ``--rounds`` repeats every other method in turn (the machine is shared: medians and ranges, not one
run). Prints a Markdown table per run (objects/s, MB/s of compressed objects, CPU-ms per object, set-up, peak RSS),
then medians and the ratios per round.
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
if str(REPO) not in sys.path:  # appended: a baseline tree on PYTHONPATH (``before-*`` methods) comes first
    sys.path.append(str(REPO))

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


def work_card(endpoint: str, rows: list[dict], mark) -> int:
    import boto3
    from smart_open import open as sopen

    s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")
    mark()
    n = 0
    for r in rows:
        with sopen(
            f"s3://{BUCKET}/content/{r['blob_id']}", "rb", compression=".gz", transport_params={"client": s3}
        ) as fin:
            content = fin.read().decode(r["src_encoding"])
        n += content is not None
    return n


def work_ours(endpoint: str, rows: list[dict], unsigned: bool, concurrency: int, mark) -> int:
    """``stackv2.swh.s3fetch`` as importable here: this tree's, or ``--baseline-rev``'s (``before-*`` methods)."""
    from stackv2.swh.config import FetchConfig
    from stackv2.swh.s3fetch import S3Reader, fetch

    reader = S3Reader(FetchConfig(endpoint_url=endpoint, unsigned=unsigned, concurrency=concurrency))
    mark()
    reqs = ((r["blob_id"], r["content_id"], r["src_encoding"]) for r in rows)
    ok = sum(o.reason is None for o in fetch(reader, reqs))
    reader.close()
    return ok


def work_ceiling(endpoint: str, rows: list[dict], concurrency: int, mark) -> int:
    import aiohttp

    async def run() -> int:
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:
            mark()
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


def work_ceiling_threads(endpoint: str, rows: list[dict], concurrency: int, mark) -> int:
    """Threads, one keep-alive ``http.client`` connection each (the reader's transport before the event loop),
    bytes discarded."""
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

    mark()
    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(get, rows))


def worker(args: argparse.Namespace) -> None:
    """Run one method; its time and CPU count from ``mark()``, once its client is set up (imports, botocore's
    endpoint and credential resolution: once per process, not per object), reported apart as ``setup_s``."""
    rows = json.loads(Path(args.rows).read_text())[: args.n]
    start: list = []

    def mark() -> None:
        start[:] = [time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)]

    t_setup = time.monotonic()
    if args.method == "card":
        ok = work_card(args.endpoint, rows, mark)
    elif args.method.startswith(("ours", "before")):
        ok = work_ours(args.endpoint, rows, args.method.endswith("-unsigned"), args.concurrency, mark)
    elif args.method == "ceiling-threads":
        ok = work_ceiling_threads(args.endpoint, rows, args.concurrency, mark)
    else:
        ok = work_ceiling(args.endpoint, rows, args.concurrency, mark)
    t1, r1 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    t0, r0 = start
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(
        json.dumps(
            {
                "method": args.method,
                "objects": len(rows),
                "ok": ok,
                "seconds": t1 - t0,
                "setup_s": t0 - t_setup,
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
    cmd = [sys.executable, __file__, "worker", "--method", method, "--endpoint", endpoint, "--rows", str(rows_file)]
    cmd += ["--n", str(n), "--concurrency", str(concurrency)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    if res["ok"] != res["objects"]:
        raise RuntimeError(f"{method}: only {res['ok']} of {res['objects']} objects fetched")
    return res


def fmt(r: dict) -> str:
    rate, mbs = r["objects"] / r["seconds"], r["gz_bytes"] / r["seconds"] / 1e6
    return (
        f"| {r['round']} | {r['condition']} | {r['method']} | {r['concurrency']} | {r['objects']:,} | {rate:,.0f} | "
        f"{mbs:,.1f} | {r['cpu'] / r['objects'] * 1000:,.3f} | {r['setup_s']:.2f} | {r['max_rss_mb']:,.0f} |"
    )


def baseline_tree(rev: str, into: Path) -> Path:
    """``stackv2/`` as of ``rev`` (``git archive``), for the ``before-*`` methods."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "stackv2"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2


def summary(results: list[dict]) -> None:
    """Per condition and method: median objects/s and CPU-ms per object over the rounds, with their range; then
    each reader's objects/s over the ceiling's (the best ceiling variant of the same round), per round."""
    print("\n| condition | method | rounds | objects/s, median (min–max) | CPU-ms / object, median (min–max) |")
    print("| --- | --- | --- | --- | --- |")
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["condition"], f"{r['method']} @{r['concurrency']}"), []).append(r)
    for (cond, method), rs in groups.items():
        rates = [r["objects"] / r["seconds"] for r in rs]
        cpus = [r["cpu"] / r["objects"] * 1000 for r in rs]
        print(
            f"| {cond} | {method} | {len(rs)} | {_median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) | "
            f"{_median(cpus):.3f} ({min(cpus):.3f}–{max(cpus):.3f}) |"
        )
    best: dict[tuple[int, str, str], float] = {}
    for r in results:  # the ceiling is the best of its clients and concurrencies, round by round
        key = (r["round"], r["condition"], "ceiling" if r["method"].startswith("ceiling") else r["method"])
        best[key] = max(best.get(key, 0.0), r["objects"] / r["seconds"])
    readers = [m for m in dict.fromkeys(r["method"] for r in results) if not m.startswith(("ceiling", "card"))]
    print("\n| condition | reader | / ceiling, per round | median | / card |")
    print("| --- | --- | --- | --- | --- |")
    for cond in dict.fromkeys(r["condition"] for r in results):
        rounds = sorted({r["round"] for r in results if r["condition"] == cond})
        for m in readers:
            ratios = [best[i, cond, m] / best[i, cond, "ceiling"] for i in rounds if (i, cond, m) in best]
            card = [best[i, cond, m] / best[i, cond, "card"] for i in rounds if (i, cond, "card") in best]
            card_text = f"{_median(card):.1f}×" if card else ""
            print(f"| {cond} | {m} | {', '.join(f'{x:.2f}' for x in ratios)} | {_median(ratios):.2f} | {card_text} |")


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
    ap.add_argument("--rounds", type=int, default=1, help="rounds; each runs every method once, in turn")
    ap.add_argument("--conditions", nargs="+", choices=("direct", "latency"), default=["direct", "latency"])
    ap.add_argument("--no-card", action="store_true", help="leave out the (slow, sequential) card method")
    ap.add_argument(
        "--baseline-rev", help="also run this git revision's stackv2 reader (before-signed, before-unsigned)"
    )
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
        before_env = None
        if args.baseline_rev:
            before_env = {**env, "PYTHONPATH": f"{baseline_tree(args.baseline_rev, tmp / 'baseline')}:{REPO}"}
        conditions = {
            "direct": ("direct", server.endpoint_url, args.concurrency),
            "latency": (f"+{args.latency_ms:g} ms", f"http://127.0.0.1:{port}", args.latency_concurrency),
        }
        results = []
        print(
            "| round | condition | method | in flight | objects | objects/s | MB/s (gzip) | CPU-ms / object | "
            "set-up s | peak RSS MB |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for i in range(1, args.rounds + 1):
            for condition, endpoint, conc in (conditions[c] for c in args.conditions):
                plan = [
                    ("ceiling", len(rows), args.ceiling_concurrency),
                    ("ceiling", len(rows), 64),
                    ("ceiling-threads", len(rows), conc),
                ]
                readers = [("ours-signed", env), ("ours-unsigned", env)]
                if before_env is not None:  # A/B in turn: before, ours, before, ours
                    readers = [("before-signed", before_env), *readers[:1], ("before-unsigned", before_env)]
                    readers.append(("ours-unsigned", env))
                for method, n, c in plan:
                    r = run_worker(method, endpoint, rows_file, n, c, env)
                    r["round"], r["condition"], r["concurrency"] = i, condition, c
                    results.append(r)
                    print(fmt(r), flush=True)
                for method, method_env in readers:
                    r = run_worker(method, endpoint, rows_file, len(rows), conc, method_env)
                    r["round"], r["condition"], r["concurrency"] = i, condition, conc
                    results.append(r)
                    print(fmt(r), flush=True)
                if i == 1 and not args.no_card:
                    r = run_worker("card", endpoint, rows_file, min(args.card_objects, len(rows)), 1, env)
                    r["round"], r["condition"], r["concurrency"] = i, condition, 1
                    results.append(r)
                    print(fmt(r), flush=True)
        summary(results)
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
