"""Reading a stage output on S3 without Hadoop's S3 connector: ``pipelines._job.read_parquet`` (pyarrow inside the
tasks, ``udfs.parquet_reader``) on a SeaweedFS bucket, against Spark's own Parquet reader on the same files in a
local folder, in one Spark session, rounds interleaved.

    .venv/bin/python bench/storage/read.py --files 8 --rows 40000 --rounds 3

Data: ``--files`` Parquet files of ``--rows`` rows each, shaped like a stage output (ids, paths, a few ints, and a
``content`` column of real source text from this venv's site-packages, zstd), written once to a local folder and
uploaded to a SeaweedFS started on loopback (no network latency: the reader's CPU cost, not a WAN). Three readers,
each a full scan (``count``, ``sum(length(content))``, ``max(path)``, so every column is decoded):

* ``spark-local``: ``spark.read.parquet`` of the local files (the peer: what a run on a shared mount does);
* ``manifest-s3``: ``read_parquet`` of the files' ``s3://`` URIs (what a run on S3 does);
* ``manifest-local``: the same pyarrow reader on the local files (``file://``), which separates the reader's own
  cost (Arrow to the JVM) from the store's.

Prints one Markdown row per reader and round (seconds, rows/s, MB/s of Parquet bytes), then the medians and the
ratios to ``spark-local`` per round.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BUCKET = "stackv2-bench"


def sources(limit_bytes: int) -> list[str]:
    """Real source text: the venv's ``.py`` files in path order, up to ``limit_bytes``."""
    import sysconfig

    texts, total = [], 0
    for p in sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py")):
        try:
            text = p.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        texts.append(text)
        total += len(text)
        if total >= limit_bytes:
            break
    return texts


def make_files(folder: Path, files: int, rows: int) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = sources(8 << 20)
    out = []
    for f in range(files):
        ids = range(f * rows, (f + 1) * rows)
        table = pa.table(
            {
                "blob_id": [f"{i:040x}" for i in ids],
                "path": [f"/repo{i % 997}/src/m{i}.py" for i in ids],
                "length_bytes": [len(texts[i % len(texts)]) for i in ids],
                "line_count": [texts[i % len(texts)].count("\n") for i in ids],
                "content": [texts[i % len(texts)] for i in ids],
            }
        )
        path = folder / f"part-{f:05d}.parquet"
        pq.write_table(table, path, compression="zstd")
        out.append(path)
    return out


def scan(df) -> tuple[int, int]:
    from pyspark.sql import functions as F

    row = df.agg(F.count("*").alias("n"), F.sum(F.length("content")).alias("chars"), F.max("path")).collect()[0]
    return row["n"], row["chars"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--rows", type=int, default=40000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()

    from pipelines._job import read_parquet
    from pipelines._session import spark_session
    from stackv2.config import SparkConfig
    from stackv2.storage import location
    from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3

    with tempfile.TemporaryDirectory(prefix="stackv2-bench-read-") as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        local = make_files(root / "data", args.files, args.rows)
        nbytes = sum(p.stat().st_size for p in local)
        server = SeaweedS3(root / "weed").start(timeout=300)
        try:
            server.create_bucket(BUCKET)
            os.environ.update(
                {
                    "AWS_ENDPOINT_URL_S3": server.endpoint_url,
                    "AWS_REGION": REGION,
                    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                }
            )
            remote = [location(f"s3://{BUCKET}/data/{p.name}") for p in local]
            for p, r in zip(local, remote, strict=True):
                r.upload(p)
            cfg = SparkConfig(master=args.master, shuffle_partitions=args.files, driver_memory="2g")
            spark = spark_session(dataclasses.replace(cfg, conf={"spark.ui.showConsoleProgress": "false"}))
            readers = {
                "spark-local": lambda: spark.read.parquet(*(str(p) for p in local)),
                "manifest-s3": lambda: read_parquet(spark, remote),
                "manifest-local": lambda: _pyarrow_reader_on_local(spark, local),
            }
            scan(readers["spark-local"]())  # JIT and caches warm for every reader alike
            print(
                f"{args.files} files, {args.files * args.rows} rows, {nbytes / 1e6:.1f} MB of Parquet, {args.master}"
            )
            print("\n| round | reader | s | rows/s | MB/s |\n|---|---|---|---|---|")
            seconds: dict[str, list[float]] = {k: [] for k in readers}
            expected = None
            for r in range(args.rounds):
                for name, make in readers.items():
                    t0 = time.perf_counter()
                    found = scan(make())
                    dt = time.perf_counter() - t0
                    if expected is None:
                        expected = found
                    assert found == expected, (name, found, expected)
                    seconds[name].append(dt)
                    print(f"| {r + 1} | {name} | {dt:.2f} | {found[0] / dt:,.0f} | {nbytes / 1e6 / dt:.1f} |")
            print(
                "\n| reader | median s | range | MB/s (median) | s vs spark-local, per round |\n|---|---|---|---|---|"
            )
            for name, ts in seconds.items():
                ratios = ", ".join(f"{t / b:.2f}" for t, b in zip(ts, seconds["spark-local"], strict=True))
                med = statistics.median(ts)
                print(f"| {name} | {med:.2f} | {min(ts):.2f}-{max(ts):.2f} | {nbytes / 1e6 / med:.1f} | {ratios} |")
            spark.stop()
        finally:
            server.stop()


def _pyarrow_reader_on_local(spark, files: list[Path]):
    """``read_parquet``'s task-side reader on local files (it takes Spark's reader for those itself)."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    from stackv2.storage import parquet_file
    from udfs.parquet_reader import URI, as_spark_reads, read_files

    schema = from_arrow_schema(as_spark_reads(parquet_file(files[0]).schema_arrow), prefer_timestamp_ntz=True)
    uris = spark.sparkContext.parallelize([(f"file://{p}",) for p in files], len(files))
    batch_rows = int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", "10000"))
    return spark.createDataFrame(uris, f"{URI} string").mapInArrow(
        read_files(to_arrow_schema(schema), batch_rows), schema
    )


if __name__ == "__main__":
    main()
