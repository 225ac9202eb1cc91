"""``stackv2 report --work DIR``: gather a work folder's numbers and render them (``stackv2.report.render``) into
``<work>/report/`` (``index.html``, PNGs, ``report.json``).

The work folder may be local or a URI (``stackv2.storage``). Numbers come from each stage's ``_stats.json`` (the
funnel; the release summary the ``shards`` stage keeps in its ``extra["products"]``) and from two tables aggregated
with Spark: ``near_dedup/clusters`` (one row per cluster member) and, when the ``pii`` stage's stats carry no counts,
the ``pii`` output's ``pii_<type>`` columns. Spark starts only when one of those tables is there. A stage that has not
run is listed as missing, never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines._job import DATA, PIPELINE, STATS, read_parquet
from pipelines._session import spark_session
from stackv2.config import SparkConfig
from stackv2.release.card import ReleaseSummary, malware_note
from stackv2.report.render import ReportData, render
from stackv2.schema import PII_COUNT_FIELDS
from stackv2.stats import StageStats
from stackv2.storage import Location, like, location
from stackv2.workdir import ManifestError, committed_files

REPORT_DIR = "report"
CLUSTERS = ("near_dedup", "clusters")
PII_STAGE = "pii"
#: Where the ``pii`` stage keeps its per-type counts in ``_stats.json``'s ``extra``.
PII_STATS_KEY = "redactions"


def stage_stats(work: Path | Location) -> tuple[list[StageStats], list[str]]:
    """Stats of every stage that ran: pipeline order first, then any other stage folder; and the stages missing."""
    found = {d.name: d / STATS for d in location(work).list() if (d / STATS).is_file()}
    order = [n for n in PIPELINE if n in found] + sorted(set(found) - set(PIPELINE))
    missing = [f"stage {n!r} has no {STATS} (not run)" for n in PIPELINE if n not in found]
    return [StageStats.load(found[n]) for n in order], missing


def pii_counts_from_stats(stats: StageStats) -> dict[str, int] | None:
    """Per-type counts the ``pii`` stage keeps in its stats (``extra["redactions"]``)."""
    counts = stats.extra.get(PII_STATS_KEY)
    if isinstance(counts, dict) and all(isinstance(v, int) for v in counts.values()):
        return {str(k): v for k, v in counts.items()}
    return None


def pii_counts_from_table(df: DataFrame) -> dict[str, int] | None:
    """Sum the ``pii`` output's per-type count columns (``schema.PII_COUNT_FIELDS``) that it has."""
    cols = [f.name for f in PII_COUNT_FIELDS if f.name in df.columns]
    if not cols:
        return None
    sums = df.agg(*[F.sum(c).alias(c) for c in cols]).first()
    return {c.removeprefix("pii_"): int(sums[c] or 0) for c in cols}


def cluster_size_histogram(clusters: DataFrame) -> dict[int, int]:
    sizes = clusters.groupBy("cluster_id").agg(F.count("*").alias("size"))
    return {r["size"]: r["n"] for r in sizes.groupBy("size").agg(F.count("*").alias("n")).collect()}


def _committed(table: Location) -> list[Location]:
    """The files of a completed stage's table (its manifest's list), none when the stage has not completed."""
    try:
        return committed_files(table)
    except (FileNotFoundError, ManifestError):
        return []


def gather(work: Path | Location, spark: Callable[[], SparkSession]) -> ReportData:
    work = location(work)
    funnel, missing = stage_stats(work)
    by_stage = {s.stage: s for s in funnel}
    data = ReportData(funnel=funnel, missing=missing)
    shards = by_stage.get("shards")
    products: Any = shards.extra.get("products", {}) if shards else {}
    data.products = {name: ReleaseSummary.from_dict(s) for name, s in products.items()}

    clusters = work / "/".join(CLUSTERS)
    files = _committed(clusters)
    if files:
        data.cluster_sizes = cluster_size_histogram(read_parquet(spark(), files))
    else:
        data.missing.append(f"{clusters}: no complete near-duplicate clusters table")

    if "malware" in by_stage:
        data.malware_note = malware_note(by_stage["malware"])
        data.malware_signatures = dict(by_stage["malware"].extra.get("top_signatures", {}))

    pii = by_stage.get(PII_STAGE)
    if pii is not None:
        data.pii_counts = pii_counts_from_stats(pii)
        files = _committed(work / PII_STAGE / DATA) if data.pii_counts is None else []
        if files:
            data.pii_counts = pii_counts_from_table(read_parquet(spark(), files))
        if data.pii_counts is None:
            data.missing.append(f"stage {PII_STAGE!r}: no per-type counts in its stats or its output columns")
    return data


def report(
    work_dir: str | Path | Location, spark: SparkSession | None = None, spark_cfg: SparkConfig | None = None
) -> Path | Location:
    """Render the report of ``work_dir``; returns the HTML page. Uses ``spark`` if given, else starts a session
    (``spark_cfg``, default settings if None) only if a table has to be aggregated."""
    work = location(work_dir)
    if not work.is_dir():
        raise FileNotFoundError(f"work folder {work} does not exist")
    session: list[SparkSession] = [spark] if spark is not None else []

    def get_spark() -> SparkSession:
        if not session:
            session.append(spark_session(spark_cfg or SparkConfig()))
        return session[0]

    return render(gather(work, get_spark), like(work_dir, work / REPORT_DIR))
