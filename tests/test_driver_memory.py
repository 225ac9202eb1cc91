"""The driver's memory does not grow with the files: no stage's tasks send the driver more for 4N files than for N
on the same partitions. A task's result (Spark's ``Result Size``) is what the driver receives from it: a table
collected for a broadcast, a ``collect``, the writers' one row per file written. Before the fix, fetch broadcast
every fetched file's content (planned on a size estimate), so its largest task result grew with the files."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from bench.scale.generate import ScaleSpec, generate
from bench.scale.run import DEFAULT_STAGES, task_metrics
from pipelines.runner import run_pipeline
from stackv2.config import RunConfig, SparkConfig

pytestmark = [pytest.mark.spark, pytest.mark.slow]

#: What a task result may differ by between the two runs: metric values and a few more distinct values (languages,
#: reasons) in the stats' aggregations. Far below what 3N more files add to a per-file table (>= 20 bytes each).
SLACK_BYTES = 1024
FILES = 50

MIT = (
    "MIT License\n\nCopyright (c) 2023 Ada Lovelace\n\nPermission is hereby granted, free of charge, to any person "
    'obtaining a copy of this software and associated documentation files (the "Software"), to deal in the Software '
    "without restriction, including without limitation the rights to use, copy, modify, merge, publish, distribute, "
    "sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is furnished to do "
    "so, subject to the following conditions:\n\nThe above copyright notice and this permission notice shall be "
    'included in all copies or substantial portions of the Software.\n\nTHE SOFTWARE IS PROVIDED "AS IS", WITHOUT '
    "WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, "
    "FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.\n"
)


def _source(root: Path) -> Path:
    """A pool of small distinct files (Python, C, Markdown) and a license text for ``generate``."""
    (root / "pkg").mkdir(parents=True)
    for i in range(24):
        body = "".join(f"def f{i}_{j}(value):\n    # adds {j}\n    return value + {j * i}\n" for j in range(30))
        (root / "pkg" / f"m{i}.py").write_text(f'"""Module {i}, by dev{i}@example.org."""\n\n{body}')
    (root / "pkg" / "util.c").write_text("int add(int a, int b) { return a + b; }\n" * 8)
    (root / "pkg" / "README.md").write_text("# A package\n\nIt adds numbers to other numbers, carefully.\n" * 4)
    (root / "MIT.LICENSE").write_text(MIT)
    return root


class TaskResults:
    """An event log Spark writes while attached (its own ``EventLoggingListener``), read as per-stage task metrics."""

    def __init__(self, spark, folder: Path):
        sc = spark.sparkContext
        self._sc, self.folder = sc._jsc.sc(), folder
        jvm = sc._jvm
        conf = self._sc.conf().clone().set("spark.eventLog.compress", "false")
        self._listener = jvm.org.apache.spark.scheduler.EventLoggingListener(
            f"app-{uuid.uuid4().hex}", jvm.scala.Option.apply(None), jvm.java.net.URI(folder.as_uri()), conf,
            sc._jsc.hadoopConfiguration(),
        )  # fmt: skip

    def __enter__(self) -> TaskResults:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._listener.start()
        self._sc.addSparkListener(self._listener)
        return self

    def __exit__(self, *exc) -> None:
        self._sc.listenerBus().waitUntilEmpty()
        self._sc.removeSparkListener(self._listener)
        self._listener.stop()


def _largest_results(spark, tmp: Path, files: int) -> dict[str, int]:
    """The largest task result of each stage of a scale run over ``files`` generated files."""
    spec = ScaleSpec(files=files, repo_files=(10, 20))
    archive = generate(spec, tmp / f"a{files}", _source(tmp / f"src{files}"), progress=False)
    cfg = RunConfig(
        work_dir=str(tmp / f"w{files}"),
        graph=str(archive["graph"]),
        content_store=str(archive["content_store"]),
        stages=DEFAULT_STAGES,
        spark=SparkConfig(master="local[2]", shuffle_partitions=4),
    )
    starts: list[tuple[str, float]] = []

    def log(message: str) -> None:
        if message.startswith("[stackv2] stage ") and message.endswith(" ..."):
            starts.append((message.split()[2], time.time()))

    with TaskResults(spark, tmp / f"events{files}") as results:
        run_pipeline(cfg, log=log)
    metrics = task_metrics(results.folder, starts)
    return {stage: int(metrics[stage]["max_result_bytes"]) for stage in DEFAULT_STAGES}


def test_no_stage_sends_the_driver_more_for_more_files(spark, tmp_path):
    small = _largest_results(spark, tmp_path, FILES)
    large = _largest_results(spark, tmp_path, 4 * FILES)
    grown = {s: (small[s], large[s]) for s in DEFAULT_STAGES if large[s] > small[s] + SLACK_BYTES}
    assert not grown, f"largest task result (bytes) at {FILES} -> {4 * FILES} files: {grown}"
