"""The build report: plots that are really drawn, a page that links them, JSON with the same numbers, and a
work folder with stages missing that still renders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from pipelines.run_report import gather, pii_counts_from_stats, report
from stackv2.release.card import release_summary
from stackv2.release.products import THE_STACK_V2, TRAIN_FULL
from stackv2.report.render import ReportData, render
from stackv2.stats import StageStats
from stackv2.workdir import adopt_outputs

GROUPS = [
    {"language": lang, "license_type": lt, "length_bin": b, "files": f, "bytes": f * 2**b}
    for i, lang in enumerate(["Python", "C", "Go", "Rust", None] + [f"Lang{k}" for k in range(40)])
    for lt, b, f in (("permissive", 4 + i % 12, 3 + i), ("no_license", 9, 1))
]
FUNNEL = [
    StageStats("extract", rows_in=500, rows_out=480, rejected={"submodule": 20}),
    StageStats("fetch", rows_in=480, rows_out=470, rejected={"binary": 8, "too_large": 2}),
    StageStats("filter", rows_in=470, rows_out=300, rejected={"long_lines": 100, "alpha": 70}),
    StageStats("shards", rows_in=300, rows_out=300),
]


def _drawn(png: Path) -> bool:
    """A real plot: a PNG of sensible size with many distinct colours, not a blank canvas."""
    img = imread(png)
    return img.shape[0] > 200 and img.shape[1] > 400 and len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 20


def full_data() -> ReportData:
    release = release_summary(GROUPS)
    release.repos, release.shards, release.repo_shards, release.shard_bytes = 12, 50, 1, 123_456
    return ReportData(
        funnel=FUNNEL,
        products={THE_STACK_V2: release_summary(GROUPS[:4]), TRAIN_FULL: release},
        cluster_sizes={2: 40, 3: 9, 17: 1},
        pii_counts={"EMAIL": 12, "KEY": 3, "IP_ADDRESS": 5},
    )


def test_full_report_renders_every_plot(tmp_path):
    page = render(full_data(), tmp_path)
    text = page.read_text()
    pngs = re.findall(r'src="([^"]+\.png)"', text)
    assert sorted(pngs) == ["clusters.png", "funnel.png", "languages.png", "lengths.png", "pii.png"]
    for png in pngs:
        assert _drawn(tmp_path / png), png
    assert "Not available" not in text
    assert "<td>long_lines: 100, alpha: 70</td>" not in text  # reasons are sorted
    assert "<td>alpha: 70, long_lines: 100</td>" in text
    numbers = json.loads((tmp_path / "report.json").read_text())
    assert numbers["cluster_sizes"] == {"2": 40, "3": 9, "17": 1}
    assert numbers["pii_counts"] == {"EMAIL": 12, "IP_ADDRESS": 5, "KEY": 3}
    assert [s["rows_out"] for s in numbers["funnel"]] == [480, 470, 300, 300]
    train = numbers["products"][TRAIN_FULL]
    assert sum(v["files"] for v in train["languages"].values()) == sum(g["files"] for g in GROUPS)
    assert "Bytes per language of the-stack-v2-train-full" in text  # the charts show the training set
    assert "<td>the-stack-v2</td>" in text and "<td>the-stack-v2-train-full</td>" in text


def test_languages_plot_keeps_the_top_30_by_bytes(tmp_path):
    data = full_data()
    render(data, tmp_path)
    languages = data.products[TRAIN_FULL].languages
    ranked = list(languages)
    assert len(ranked) == 45
    assert ranked == sorted(ranked, key=lambda k: -languages[k]["bytes"])


def test_empty_work_folder_degrades_gracefully(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    page = report(work)  # nothing to aggregate: no Spark session is started
    text = page.read_text()
    assert not list(page.parent.glob("*.png"))
    assert text.count("Not available") == 5 and "No release yet" in text
    assert json.loads((page.parent / "report.json").read_text())["products"] == {}


def test_partial_work_folder_uses_what_is_there(tmp_path):
    work = tmp_path / "work"
    for s in FUNNEL[:3]:
        (work / s.stage).mkdir(parents=True)
        s.save(work / s.stage / "_stats.json")
    data = gather(work, spark=lambda: pytest.fail("no table to aggregate, Spark must not start"))
    assert [s.stage for s in data.funnel] == ["extract", "fetch", "filter"]
    assert data.products == {} and data.cluster_sizes is None and data.pii_counts is None
    assert any("'shards'" in m for m in data.missing) and any("clusters" in m for m in data.missing)
    page = render(data, work / "report")
    assert _drawn(page.parent / "funnel.png") and not (page.parent / "languages.png").exists()


def test_pii_counts_from_stats():
    assert pii_counts_from_stats(StageStats("pii", extra={"redactions": {"email": 2, "key": 1}})) == {
        "email": 2,
        "key": 1,
    }
    assert pii_counts_from_stats(StageStats("pii", extra={"seconds_per_file": 0.1})) is None


@pytest.mark.spark
def test_tables_are_aggregated_with_spark(spark, tmp_path):
    work = tmp_path / "work"
    (work / "near_dedup").mkdir(parents=True)
    StageStats("near_dedup", rows_in=9, rows_out=6, rejected={"near_duplicate": 3}).save(
        work / "near_dedup" / "_stats.json"
    )
    members = [("c1", "a"), ("c1", "b"), ("c2", "c"), ("c2", "d"), ("c2", "e"), ("c3", "f"), ("c3", "g")]
    spark.createDataFrame(members, "cluster_id string, blob_id string").repartition(2).write.parquet(
        str(work / "near_dedup" / "clusters")
    )
    (work / "pii").mkdir()
    StageStats("pii", rows_in=6, rows_out=6).save(work / "pii" / "_stats.json")
    spark.createDataFrame(
        [(2, 0, "a"), (1, 4, "b"), (0, 0, "c")], "pii_email int, pii_key int, path string"
    ).repartition(2).write.parquet(str(work / "pii" / "data"))
    adopt_outputs(work / "near_dedup")
    adopt_outputs(work / "pii")
    page = report(work, spark)
    numbers = json.loads((page.parent / "report.json").read_text())
    assert numbers["cluster_sizes"] == {"2": 2, "3": 1}
    assert numbers["pii_counts"] == {"email": 3, "key": 4}
    assert _drawn(page.parent / "clusters.png") and _drawn(page.parent / "pii.png")
