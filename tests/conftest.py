"""Shared fixtures. Spark tests share one session-scoped ``local[2]`` session (JVM start-up is the slow part)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
EXAMPLE_GRAPH = SHARED / "swh-example-dataset"

pytest_plugins: list[str] = ["tests.s3server", "tests.sparkcluster"]


@pytest.fixture(scope="session")
def spark():
    from pipelines._session import spark_session
    from stackv2.config import SparkConfig

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = spark_session(
        SparkConfig(master="local[2]", shuffle_partitions=4, driver_memory="2g", app_name="stackv2-tests")
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def example_graph() -> Path:
    if not EXAMPLE_GRAPH.is_dir():
        pytest.skip(f"{EXAMPLE_GRAPH} not present")
    return EXAMPLE_GRAPH
