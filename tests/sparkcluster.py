"""A real standalone Spark cluster on loopback: one master and N workers started with ``spark-class``.

``StandaloneCluster`` runs ``org.apache.spark.deploy.master.Master`` and ``...deploy.worker.Worker`` from the
pyspark installation (the same jars an image or a cluster ships), binds everything to 127.0.0.1 on free ports,
waits until every worker has registered with the master, and kills every daemon it started (each one in its own
process group) on ``stop()`` -- also when start-up fails half way, when the test process is sent SIGTERM, and at
interpreter exit. Executors inherit the driver's interpreter
(``PYSPARK_PYTHON``) and the project is importable through its editable install, as on an image.

As a pytest plugin (``pytest_plugins = ["tests.sparkcluster"]``) it provides the session fixture
``spark_cluster``: small workers (1 core, 1 GiB each) so the whole cluster fits a 2-core CI runner.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Heap of the master and worker daemons themselves (Spark's default is 1g each).
DAEMON_MEMORY = "256m"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class StandaloneCluster:
    """Master + ``workers`` workers on 127.0.0.1; logs and worker scratch space under ``root``."""

    root: Path
    workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "1g"
    start_timeout: float = 180.0
    master_port: int = 0
    master_ui_port: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "SPARK_HOME": str(spark_home()),
                "SPARK_LOCAL_IP": "127.0.0.1",
                "SPARK_LOCAL_HOSTNAME": "127.0.0.1",
                "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
                "SPARK_LOG_DIR": str(self.root / "logs"),
                "PYSPARK_PYTHON": sys.executable,
            }
        )
        return env

    def _spawn(self, name: str, *args: str) -> None:
        log = (self.root / "logs" / f"{name}.out").open("wb")
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        self.procs.append(
            subprocess.Popen(cmd, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
        log.close()

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.master_ui_port}/json/", timeout=5) as r:
            return json.load(r)

    def alive_workers(self) -> int:
        try:
            return sum(w.get("state") == "ALIVE" for w in self.state().get("workers", []))
        except (OSError, urllib.error.URLError, ValueError):
            return 0

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in sorted((self.root / "logs").glob("*.out"))
        )

    def start(self) -> StandaloneCluster:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.master_port, self.master_ui_port = self.master_port or free_port(), self.master_ui_port or free_port()
        try:
            self._spawn(
                "master",
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.master_port),
                "--webui-port",
                str(self.master_ui_port),
            )
            for i in range(self.workers):
                work = self.root / f"worker-{i}"
                work.mkdir(exist_ok=True)
                self._spawn(
                    f"worker-{i}",
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    str(self.worker_cores),
                    "--memory",
                    self.worker_memory,
                    "--webui-port",
                    str(free_port()),
                    "--work-dir",
                    str(work),
                    self.master_url,
                )
            deadline = time.monotonic() + self.start_timeout
            while self.alive_workers() < self.workers:
                dead = [p.args[1] for p in self.procs if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    why = f"daemons exited: {dead}" if dead else f"not all workers up after {self.start_timeout}s"
                    raise RuntimeError(f"standalone cluster failed to start ({why})\n{self.logs()}")
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill every daemon started here (and the executors they forked: same process group)."""
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def standalone_cluster(root: Path, **kw) -> Iterator[StandaloneCluster]:
    """A started cluster, stopped on exit -- also when the test process gets SIGTERM (turned into an
    interrupt so the ``finally`` runs) or exits without unwinding (``atexit``)."""
    cluster = StandaloneCluster(root, **kw)
    atexit.register(cluster.stop)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)
        atexit.unregister(cluster.stop)


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory) -> Iterator[StandaloneCluster]:
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as cluster:
        yield cluster
