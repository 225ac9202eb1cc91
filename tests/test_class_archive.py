"""The JVM class archive: built by a real JVM, checked before use, passed to drivers only when it exists."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines import class_archive
from pipelines._session import DRIVER_OPTIONS, spark_conf, with_class_archive
from stackv2.config import SparkConfig


def test_drivers_get_the_archive_only_when_it_exists(tmp_path):
    conf = spark_conf(SparkConfig())
    archive = tmp_path / "spark.jsa"
    assert with_class_archive(conf, archive) == conf
    archive.write_bytes(b"x")
    options = with_class_archive(conf, archive)[DRIVER_OPTIONS]
    assert options == f"{conf[DRIVER_OPTIONS]} -XX:SharedArchiveFile={archive}"
    assert "-Duser.timezone=UTC" in options
    # a driver option of the user's own wins
    own = {**conf, DRIVER_OPTIONS: "-XX:SharedArchiveFile=/elsewhere.jsa"}
    assert with_class_archive(own, archive) == own


@pytest.mark.slow
def test_build_writes_a_usable_archive_once_and_a_damaged_one_fails_its_check(tmp_path):
    target = tmp_path / "share" / "spark.jsa"
    assert class_archive.build(target)
    assert target.stat().st_size > 10 * 2**20
    assert list(target.parent.iterdir()) == [target]  # no temporary file left
    assert not class_archive.build(target)  # kept
    # the check ``build`` runs before it moves an archive into place: a truncated archive (mapping one can crash
    # the JVM) must not pass it
    damaged = tmp_path / "damaged.jsa"
    damaged.write_bytes(target.read_bytes()[: 1 << 20])
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.class_archive", f"-Xshare:on -XX:SharedArchiveFile={damaged}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode != 0
