"""One run per work folder: ``stackv2.workdir.work_lock`` refuses a second holder in one line naming the first,
takes over the lock of a holder killed on this host, and never that of another host."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from stackv2.workdir import LOCK, WorkDirBusy, work_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from stackv2.workdir import work_lock
    with work_lock(sys.argv[1], "stackv2 run --config first.yaml"):
        print("held", flush=True)
        time.sleep(600)
    """
)


def hold(work: Path) -> subprocess.Popen:
    """Another process holding the lock of ``work`` (returns once it holds it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(work)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def record(work: Path) -> dict:
    text = (work / LOCK).read_text()
    return json.loads(text) if text else {}


def test_a_second_holder_is_refused_in_one_line_naming_the_first(tmp_path):
    first = hold(tmp_path)
    try:
        with pytest.raises(WorkDirBusy) as refused, work_lock(tmp_path, "stackv2 run"):
            pytest.fail("the lock was given twice")
        message = str(refused.value)
        assert "\n" not in message
        assert f"pid {first.pid} on host {socket.gethostname()}" in message
        assert "stackv2 run --config first.yaml" in message
        assert record(tmp_path)["pid"] == first.pid  # the refused run left the record alone
    finally:
        first.kill()
        first.wait()


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path):
    first = hold(tmp_path)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert record(tmp_path)["pid"] == first.pid  # kill -9: no chance to clean up
    said = []
    with work_lock(tmp_path, "stackv2 run --config again.yaml", said.append):
        assert record(tmp_path)["pid"] == os.getpid()
    assert said and f"taking over the lock of pid {first.pid}" in said[0]
    assert record(tmp_path) == {}  # released: emptied, not removed


def test_a_reused_pid_does_not_keep_a_dead_holders_lock(tmp_path):
    """The recorded pid now belongs to another live process (here: pytest's parent), started at another time."""
    (tmp_path / LOCK).write_text(
        json.dumps(
            {
                "pid": os.getppid(),
                "host": socket.gethostname(),
                "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                "pid_start": 1,
                "started": "2020-01-01T00:00:00+00:00",
                "command": "stackv2 run",
            }
        )
    )
    with work_lock(tmp_path, "stackv2 run"):
        assert record(tmp_path)["pid"] == os.getpid()


def test_a_record_from_another_host_is_never_taken_over(tmp_path):
    other = {"pid": 4242, "host": "node-17", "started": "2026-01-01T00:00:00+00:00", "command": "stackv2 run"}
    (tmp_path / LOCK).write_text(json.dumps(other))
    with (
        pytest.raises(WorkDirBusy, match=f"pid 4242 on host node-17 .*remove {tmp_path / LOCK}"),
        work_lock(tmp_path, "stackv2 run"),
    ):
        pytest.fail("the lock of another host was taken")
    assert record(tmp_path) == other


def test_stackv2_run_on_a_held_folder_stops_at_once(tmp_path):
    first = hold(tmp_path / "work")
    try:
        config = tmp_path / "run.yaml"
        config.write_text(yaml.safe_dump({"work_dir": str(tmp_path / "work"), "stages": ["extract"]}))
        t0 = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config)], capture_output=True, text=True
        )
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1, second.stderr
        assert second.stderr.startswith(f"stackv2 run: error: work folder {tmp_path / 'work'} is in use by pid ")
        assert time.monotonic() - t0 < 60  # refused before Spark starts
    finally:
        first.kill()
        first.wait()
