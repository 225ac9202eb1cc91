"""Throughput of the annotate stage (MB/s per core) against the reference way: a row-at-a-time Python UDF.

Corpus: the demo corpus's files — the installed distributions as ``stackv2.swh.archive`` turns them into
repositories (code, vendored copies, real LICENSE files) — decoded as fetch does, as ``schema.FETCHED`` rows.

Both sides do the same work on Spark ``local[1]`` (one core) per unique blob, with the same detectors and settings:
* ours: ``pipelines.stages.annotate.transform`` (Arrow batches, ScanCode through ``stackv2.detect.license``'s fast
  path, numpy line statistics, per-repo ``applyInArrow``);
* reference way: a pickled row-at-a-time ``F.udf`` per blob doing what ``get_file_contents.py`` and the BigCode
  filters do (enry, ScanCode's own ``licensedcode.detection.detect_licenses`` on license files — same settings,
  ``approximate=False``, and the same ids as ours, see ``license_compare.py --fast-path`` —, fastText on prose,
  ``np.mean([c.isalnum() for c in content])``, ``splitlines``), then ``get_license_types.py``'s
  ``path.startswith(base_path)`` join and its ``F.udf`` decision. ``--reference-scancode fast`` gives the
  reference our ScanCode fast path too, to separate the plan from the detector.
* ``--previous``: also the earlier plan of ours (``bench/annotate/previous.py``).
Each side runs once to warm its Python worker (ScanCode's index loads there) and is timed on the next runs;
the order of the sides rotates from run to run so machine load hits all alike. First, each detector is timed
alone over the unique blobs in this process (no Spark), which shows where per-blob time goes.

    .venv/bin/python bench/annotate/throughput.py [--mb 8] [--runs 2] [--previous] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines._session import spark_session
from pipelines.stages.annotate import transform, unique_blobs
from stackv2.config import SparkConfig
from stackv2.detect.config import AnnotateConfig, LicenseConfig
from stackv2.detect.language import raw_bytes
from stackv2.detect.license import (
    detect_licenses,
    is_license_file,
    license_type,
    load_permissive,
    scancode_index,
    spdx_ids,
)
from stackv2.detect.natural import detect_natural_language
from stackv2.schema import FETCHED
from stackv2.swh.archive.installed import installed_distributions
from stackv2.text.decode import content_hashes, decode_content

MAX_BYTES = 10 * 1024 * 1024


def corpus(mb: float) -> list[dict]:
    rows, total = [], 0
    for dist in installed_distributions():
        directory = content_hashes(dist.name.encode())["sha1_git"]
        for repo_path, local in dist.files.items():
            raw = local.read_bytes()
            if len(raw) >= MAX_BYTES or b"\0" in raw or (decoded := decode_content(raw)) is None:
                continue
            row = dict.fromkeys(FETCHED.names)
            row.update(
                repo_name=dist.name,
                directory_id=directory,
                path="/" + repo_path,
                blob_id=content_hashes(raw)["sha1"],
                content=decoded[0],
                src_encoding=decoded[1],
                length_bytes=len(decoded[0].encode()),
            )
            rows.append(row)
            total += len(raw)
        if total >= mb * 1e6:
            break
    return rows


REF_SCHEMA = T.StructType(
    [
        T.StructField("language", T.StringType()),
        T.StructField("is_vendor", T.BooleanType()),
        T.StructField("is_generated", T.BooleanType()),
        T.StructField("licenses", T.ArrayType(T.StringType())),
        T.StructField("natural_language", T.StringType()),
        T.StructField("natural_language_score", T.DoubleType()),
        T.StructField("alpha_fraction", T.DoubleType()),
        T.StructField("alphanum_fraction", T.DoubleType()),
        T.StructField("num_lines", T.IntegerType()),
        T.StructField("avg_line_length", T.DoubleType()),
        T.StructField("max_line_length", T.IntegerType()),
    ]
)


def scancode_detect_licenses(text: str, cfg: LicenseConfig) -> list[str]:
    """The reference's call: ScanCode's own ``detect_licenses`` (with our settings, ids as ``detect_licenses``)."""
    from licensedcode.detection import detect_licenses as scancode_detect

    text = text[: cfg.max_chars]
    if not text.strip():
        return []
    found: set[str] = set()
    for det in scancode_detect(index=scancode_index(), query_string=text, approximate=cfg.approximate):
        if det.license_expression:
            found |= spdx_ids(det.license_expression)
    return sorted(found)


def reference_transform(rows: DataFrame, cfg: AnnotateConfig, scancode=scancode_detect_licenses) -> DataFrame:
    """The reference scripts' way, on the same detectors: one Python call per row, plain-Python statistics."""

    def per_blob(filenames, content, src_encoding):
        import enry

        filename = filenames[0]
        data = raw_bytes(content, src_encoding)
        language = enry.get_language(filename, data) or None
        licenses = scancode(content, cfg.license) if any(map(is_license_file, filenames)) else []
        natural, score = detect_natural_language(content, language, cfg.natural)
        lengths = [len(line) for line in content.splitlines()] or [0]
        return (
            language,
            enry.is_vendor(filename),
            enry.is_generated(filename, data),
            licenses,
            natural,
            score,
            float(np.mean([c.isalpha() for c in content])) if content else 0.0,
            float(np.mean([c.isalnum() for c in content])) if content else 0.0,
            len(content.splitlines()),
            float(np.mean(lengths)),
            max(lengths),
        )

    permissive = load_permissive(cfg.license.permissive_list)
    reference_udf = F.udf(per_blob, REF_SCHEMA)
    partitions = int(rows.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    blobs = unique_blobs(rows, partitions)
    ann = blobs.select("blob_id", reference_udf("filenames", "content", "src_encoding").alias("a"))
    ann = ann.select("blob_id", "a.*").localCheckpoint()
    files = rows.select("directory_id", "path", "blob_id", "gha_license_id").join(
        ann.select("blob_id", "licenses"), "blob_id"
    )
    base = (
        files.where(F.size("licenses") > 0)
        .withColumn("base_path", F.regexp_extract("path", "^(.*/)", 1))
        .groupBy("directory_id", "base_path")
        .agg(F.array_distinct(F.flatten(F.collect_list("licenses"))).alias("found"))
    )
    joined = files.alias("l").join(
        base.alias("r"),
        (F.col("l.directory_id") == F.col("r.directory_id")) & F.col("l.path").startswith(F.col("r.base_path")),
        "left",
    )
    per_path = joined.groupBy("l.directory_id", "l.path", "l.gha_license_id").agg(
        F.array_sort(F.array_distinct(F.flatten(F.collect_list("r.found")))).alias("detected_licenses")
    )
    decide = F.udf(lambda gha, found: license_type(gha, found, permissive), T.StringType())
    per_path = per_path.withColumn("license_type", decide("gha_license_id", "detected_licenses"))
    return (
        rows.join(ann.drop("licenses"), "blob_id")
        .join(per_path.drop("gha_license_id"), ["directory_id", "path"])
        .withColumn("extension", F.regexp_extract("path", r"\.([^./]+)$", 1))
    )


def _enry(name: str, data: bytes):
    import enry

    return enry.get_language(name, data) or None, enry.is_vendor(name), enry.is_generated(name, data)


def _python_line_stats(text: str):
    """The reference way: ``np.mean([c.isalnum() for c in content])`` and ``splitlines``."""
    if not text:
        return 0.0, 0.0, []
    lengths = [len(line) for line in text.splitlines()]
    return np.mean([c.isalpha() for c in text]), np.mean([c.isalnum() for c in text]), lengths


def detector_breakdown(rows: list[dict], cfg: AnnotateConfig) -> dict[str, float]:
    """Seconds per detector over the unique blobs, in this process (no Spark): where the per-blob time goes."""
    from licensedcode.match import tokenize_matched_text

    from stackv2.detect.linestats import line_stats

    (matched_text_cache,) = (d for d in tokenize_matched_text.__defaults__ if isinstance(d, dict))

    detect_licenses(MIT_PROBE, cfg.license), line_stats("x"), detect_natural_language(MIT_PROBE, "Text")  # warm up
    scancode_detect_licenses(MIT_PROBE, cfg.license)
    spent: dict[str, float] = {}

    def tm(key, fn, *args):
        t0 = time.perf_counter()
        value = fn(*args)
        spent[key] = spent.get(key, 0.0) + time.perf_counter() - t0
        return value

    for r in {r["blob_id"]: r for r in rows}.values():
        text, name = r["content"], r["path"].rsplit("/", 1)[-1]
        lang = tm("enry (language, vendor, generated)", _enry, name, raw_bytes(text, r["src_encoding"]))
        if is_license_file(name):  # ScanCode's last-text memo emptied first, so that neither reuses the other's
            matched_text_cache.clear()
            ours = tm("scancode fast path (ours, license files)", detect_licenses, text, cfg.license)
            matched_text_cache.clear()
            ref = tm("scancode detect_licenses (reference)", scancode_detect_licenses, text, cfg.license)
            assert ours == ref, (r["path"], ours, ref)
        tm("fasttext (prose)", detect_natural_language, text, lang[0], cfg.natural)
        tm("line stats, numpy (ours)", line_stats, text)
        tm("line stats, python loops (reference)", _python_line_stats, text)
    return {k: round(v, 3) for k, v in spent.items()}


MIT_PROBE = "Permission is hereby granted, free of charge, to any person obtaining a copy of this software"


def timed(make) -> float:
    """Build the plan (``localCheckpoint`` runs the detectors right there) and write it: both are timed."""
    t0 = time.perf_counter()
    make().write.format("noop").mode("overwrite").save()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=8.0, help="corpus size in MB of raw files")
    ap.add_argument("--runs", type=int, default=2, help="timed runs per side (after one warm-up run each)")
    ap.add_argument("--approximate", action="store_true", help="ScanCode's approximate matcher on (both sides)")
    ap.add_argument("--previous", action="store_true", help="also time the earlier plan (bench/annotate/previous.py)")
    ap.add_argument(
        "--reference-scancode",
        choices=("scancode", "fast"),
        default="scancode",
        help="the reference's ScanCode call: ScanCode's own detect_licenses, or our fast path",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows = corpus(args.mb)
    mb = sum(r["length_bytes"] for r in rows) / 1e6
    blobs = len({r["blob_id"] for r in rows})
    licenses = sum(1 for r in rows if is_license_file(r["path"].rsplit("/", 1)[-1]))
    print(f"corpus: {len(rows)} files, {blobs} unique blobs, {licenses} license-named files, {mb:.1f} MB", flush=True)
    cfg = AnnotateConfig(license=LicenseConfig(approximate=args.approximate))
    breakdown = detector_breakdown(rows, cfg)
    print("detectors, one process:", json.dumps(breakdown, indent=2), flush=True)
    spark = spark_session(
        SparkConfig(
            master="local[1]",
            shuffle_partitions=4,
            driver_memory="2g",
            app_name="bench-annotate",
            conf={"spark.ui.showConsoleProgress": "false"},
        )
    )
    df = spark.createDataFrame(pa.Table.from_pylist(rows, schema=FETCHED).to_pandas()).repartition(4).cache()
    df.count()
    ref_scancode = scancode_detect_licenses if args.reference_scancode == "scancode" else detect_licenses
    sides = {
        "stackv2 annotate": lambda: transform(df, cfg, 4),
        "reference row-at-a-time UDF": lambda: reference_transform(df, cfg, ref_scancode),
    }
    if args.previous:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for ``bench``
        from bench.annotate.previous import previous_transform

        sides["stackv2 annotate, previous plan"] = lambda: previous_transform(df, cfg)
    times: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for run in range(args.runs + 1):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            make = sides[name]
            t = timed(make)
            print(f"run {run} {'(warm-up) ' if run == 0 else ''}{name}: {t:.1f}s", flush=True)
            if run:
                times[name].append(t)
    result = {
        "files": len(rows),
        "unique_blobs": blobs,
        "license_named_files": licenses,
        "mb": round(mb, 2),
        "approximate": args.approximate,
        "runs": args.runs,
        "reference_scancode": args.reference_scancode,
        "detectors_one_process_s": breakdown,
    }
    for name, ts in times.items():
        med = statistics.median(ts)
        result[name] = {"seconds": [round(t, 2) for t in ts], "mb_per_s_per_core": round(mb / med, 3)}
    ours, ref = (statistics.median(times[k]) for k in names[:2])
    result["speedup"] = round(ref / ours, 2)
    if args.previous:
        result["speedup_over_previous_plan"] = round(statistics.median(times[names[2]]) / ours, 2)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
