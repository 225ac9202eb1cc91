"""Models loaded once per executor by the daemon that forks the Python workers (``stackv2.preload``): the workers
of a job that preloads find them loaded and share their pages; a model that cannot load is left to the workers;
nothing a loader prints reaches the channel the daemon tells the JVM its port on; such a daemon exits once it has
had no worker for a while, and Spark starts a new one when its environment is used again."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines._session import preloading, stop_preloading_daemons
from pyspark_stackv2_daemon import IDLE_EXIT_SECONDS, ExitWhenIdle
from stackv2.pii.config import PiiConfig
from stackv2.preload import PRELOAD_ENV, Preload, for_licenses, for_pii, load_from_environment

REPO = Path(__file__).resolve().parent.parent
#: What one more worker may add to an executor's memory while annotating (its private pages).
WORKER_LIMIT_MIB = 400
#: Spark closes a worker environment's idle workers after a minute without a task (checked every 10 s).
SPARK_IDLE_WORKER_SECONDS = 70


def test_a_preload_travels_as_text():
    models = Preload(scancode=True, pii=PiiConfig(entities=("EMAIL",)))
    assert Preload.decode(models.encode()) == models
    assert for_licenses(shared=True) == Preload(scancode=True)
    assert for_licenses(shared=False) == Preload()  # workers of their own, each loading the index itself
    assert for_pii(PiiConfig()) == Preload(pii=PiiConfig())
    assert for_pii(PiiConfig(ner_model="/models/starpii")) is None  # a torch model is never shared by a fork


def test_a_model_that_cannot_load_is_left_to_the_workers(capsys):
    broken = '{"scancode": true, "pii": {"no_such_setting": 1}}'
    assert load_from_environment({PRELOAD_ENV: broken}) is None
    assert "TypeError" in capsys.readouterr().err
    assert load_from_environment({}) is None


def test_the_daemon_port_channel_stays_clean():
    """The daemon's standard output carries its port to the JVM: a preload's messages go to standard error."""
    env = {**os.environ, PRELOAD_ENV: Preload(scancode=True).encode()}
    code = "import pyspark_stackv2_daemon as d, stackv2.preload as p; p.load = print; d.preload_models()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert proc.stdout == "" and "Preload(" in proc.stderr


@pytest.mark.slow
def test_no_runtime_that_a_fork_breaks_is_loaded():
    """go-enry starts Go's runtime: a daemon that imported it would fork workers that hang. Loading ScanCode's
    index does not import it, and a preload that did is refused."""
    scancode = Preload(scancode=True).encode()
    code = "import sys\nfrom stackv2.preload import Preload, load\n"
    loads = f"{code}load(Preload.decode({scancode!r}))\nassert 'enry' not in sys.modules"
    subprocess.run([sys.executable, "-c", loads], cwd=REPO, check=True, capture_output=True)
    code = f"import enry\n{code}load(Preload())"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0 and "PreloadError" in proc.stderr


def test_exit_when_idle_waits_for_the_last_worker():
    """The stand-in for ``select`` exits only after a wait that returned nothing, once no worker has been alive for
    the whole idle time."""
    now, workers = [0.0], [1]
    idle = ExitWhenIdle(10.0, lambda: workers[0] > 0, clock=lambda: now[0])
    r, w = os.pipe()
    try:
        for t in (5.0, 30.0):  # a worker alive: never idle
            now[0] = t
            assert idle.select([r], [], [], 0) == ([], [], [])
        workers[0] = 0
        now[0] = 39.0
        idle.select([r], [], [], 0)  # 9 s without a worker
        os.write(w, b"x")
        now[0] = 45.0
        assert idle.select([r], [], [], 0)[0] == [r]  # something to read: busy, not idle
        os.read(r, 1)
        now[0] = 54.9
        idle.select([r], [], [], 0)
        now[0] = 55.0
        with pytest.raises(SystemExit):
            idle.select([r], [], [], 0)
    finally:
        os.close(r)
        os.close(w)


def _start_daemon(env: dict[str, str], idle_seconds: float) -> tuple[subprocess.Popen, int]:
    code = f"import pyspark_stackv2_daemon as d; d.main(idle_seconds={idle_seconds})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    (port,) = struct.unpack("!i", proc.stdout.read(4))
    return proc, port


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


@pytest.mark.slow
def test_a_preloading_daemon_exits_once_it_has_no_worker():
    """The real daemon: it stays while a worker it forked lives, then exits (stdin, the JVM's channel, still open);
    the default daemon, with no ``Preload``, stays."""
    base = {k: v for k, v in os.environ.items() if k != PRELOAD_ENV} | {"PYTHON_WORKER_FACTORY_SECRET": "s"}
    default, _ = _start_daemon(base, idle_seconds=3.0)
    daemon, port = _start_daemon(base | {PRELOAD_ENV: Preload().encode()}, idle_seconds=3.0)
    try:
        conn = socket.create_connection(("127.0.0.1", port))
        (worker,) = struct.unpack("!i", conn.recv(4))  # forked; it now waits for the secret
        time.sleep(5)
        assert daemon.poll() is None and _children(daemon.pid) == [worker]
        conn.close()  # the worker reads end-of-file and exits
        assert daemon.wait(timeout=10) is not None
        assert default.poll() is None
    finally:
        for proc in (daemon, default):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


@pytest.mark.spark
@pytest.mark.slow
def test_license_workers_share_the_index_their_daemon_loaded(spark):
    def probe(batches):
        """Each worker: whether its daemon had loaded the index, licenses found in ScanCode's own texts, then its
        own memory."""
        import glob

        import licensedcode

        from stackv2.detect.license import detect_licenses, scancode_index

        loaded = scancode_index.cache_info().currsize
        texts = sorted(glob.glob(os.path.join(os.path.dirname(licensedcode.__file__), "data/licenses/*.LICENSE")))
        found = sum(bool(detect_licenses(Path(p).read_text(errors="replace"))) for p in texts[:1000:20])
        mem = {}
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Private_Clean", "Private_Dirty"):
                    mem[key] = int(rest.split()[0]) // 1024
        for _ in batches:
            pass
        yield pa.RecordBatch.from_pydict(
            {"daemon": [os.getppid()], "loaded": [loaded], "found": [found], "uss_mib": [sum(mem.values())]}
        )

    env = spark.sparkContext.environment
    with preloading(spark, for_licenses(shared=True)):
        rows = spark.range(0, 2, numPartitions=2).mapInArrow(
            probe, "daemon long, loaded long, found long, uss_mib long"
        )
    assert PRELOAD_ENV not in env  # only the functions created inside the block
    got = rows.collect()
    assert len(got) == 2 and len({r["daemon"] for r in got}) == 1
    for r in got:
        assert r["loaded"] == 1, "the index was loaded before the fork"
        assert r["found"] > 40, "the shared index works in the workers"
        assert r["uss_mib"] <= WORKER_LIMIT_MIB, f"a worker holds {r['uss_mib']} MiB of its own"


@pytest.mark.spark
@pytest.mark.slow
def test_spark_starts_a_new_daemon_after_an_idle_one_exited(spark):
    """A job's daemon exits once Spark has closed its idle workers (after a minute); the next function of the same
    environment still runs: Spark fails to reach the daemon and starts a new one."""

    def probe(batches):
        for _ in batches:
            pass
        yield pa.RecordBatch.from_pydict({"daemon": [os.getppid()], "worker": [os.getpid()]})

    def run() -> list:
        with preloading(spark, Preload()):
            return spark.range(0, 2, numPartitions=2).mapInArrow(probe, "daemon long, worker long").collect()

    first = run()
    (daemon,) = {r["daemon"] for r in first}
    deadline = time.monotonic() + SPARK_IDLE_WORKER_SECONDS + IDLE_EXIT_SECONDS + 30
    while Path(f"/proc/{daemon}").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not Path(f"/proc/{daemon}").exists(), "the daemon exited once it had no worker"
    second = run()
    assert len(second) == 2 and {r["daemon"] for r in second}.isdisjoint({daemon})


@pytest.mark.spark
def test_a_preloading_daemon_is_stopped_between_stages(spark):
    """``stop_preloading_daemons`` (between stages) ends a preloading environment's daemon and workers at once, where
    Spark would wait a minute; the default environment's daemon stays; the environment still runs a function after:
    Spark starts a new daemon for it."""

    def probe(batches):
        for _ in batches:
            pass
        yield pa.RecordBatch.from_pydict({"daemon": [os.getppid()], "worker": [os.getpid()]})

    def run() -> list:
        return spark.range(0, 2, numPartitions=2).mapInArrow(probe, "daemon long, worker long").collect()

    with preloading(spark, Preload()):
        first = run()
    plain = run()
    (daemon,), (default_daemon,) = {r["daemon"] for r in first}, {r["daemon"] for r in plain}
    gone = [daemon, *(r["worker"] for r in first)]
    assert stop_preloading_daemons(spark) >= 1
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in gone) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in gone), "the daemon and its workers are gone"
    assert Path(f"/proc/{default_daemon}").exists(), "the default daemon stays"
    with preloading(spark, Preload()):
        second = run()
    assert len(second) == 2 and {r["daemon"] for r in second}.isdisjoint({daemon})
