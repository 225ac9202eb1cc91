"""Entry point of Spark's Python daemon (``spark.python.daemon.module``, set in ``pipelines/_session.py``):
``pyspark.daemon`` unchanged, except that pyspark and py4j are imported from the installed packages rather than
from the copies Spark zips onto the worker path, when both are the same version; and that the models its worker
environment names (``stackv2.preload``) are loaded before the first worker is forked, so that all the workers of
an executor share one copy of them; and that a daemon started for a ``Preload`` exits once it has had no worker
for ``IDLE_EXIT_SECONDS``, so that what it loaded goes with the job it was loaded for.

Spark keeps a daemon for each worker environment until the session ends, and closes the workers that have been idle
for a minute. A daemon that has exited costs nothing until its environment is used again: Spark's
``PythonWorkerFactory`` (4.0) then fails to connect (a ``SocketException``), logs "Assuming that daemon unexpectedly
quit, attempting to restart", and starts a new one; a connection that reached the daemon's queue just before it
exited is reset, the same exception. The default daemon, which every stage's plain functions use, stays.

Spark puts ``pyspark.zip`` and py4j's source zip first on every Python worker's path. Python cannot cache
bytecode for modules inside a zip, so every daemon (and every worker, for the modules it imports after the fork)
compiles pyspark's sources again: 0.47 s to import the worker's modules from the zips vs 0.14 s from the
installed package on this project's machines (docs/benchmarks.md, "JVM start-up"). A pip-installed pyspark holds
the same files with their bytecode cached; a zip whose version differs from the installed package (a cluster whose
Spark is not the driver's pyspark) keeps its place.
"""

from __future__ import annotations

import importlib.machinery
import os
import re
import select
import sys
import time
import zipfile
from collections.abc import Callable

from stackv2.preload import PRELOAD_ENV, load_from_environment

#: How long a daemon started for a ``Preload`` stays without a worker (Spark closes idle workers after a minute).
IDLE_EXIT_SECONDS = 10.0

_VERSION = re.compile(r"""__version__\s*(?::\s*str\s*)?=\s*["']([^"']+)["']""")


def _version(text: str) -> str | None:
    m = _VERSION.search(text)
    return m.group(1) if m else None


def _zip_package(entry: str) -> str | None:
    """The package a zip of Spark's carries: ``pyspark.zip`` -> pyspark, ``py4j-*-src.zip`` -> py4j."""
    name = os.path.basename(entry)
    if name == "pyspark.zip":
        return "pyspark"
    if name.startswith("py4j-") and name.endswith("-src.zip"):
        return "py4j"
    return None


def _same_as_installed(entry: str, package: str, others: list[str]) -> bool:
    spec = importlib.machinery.PathFinder.find_spec(package, others)
    if spec is None or not spec.submodule_search_locations:
        return False
    installed = os.path.join(next(iter(spec.submodule_search_locations)), "version.py")
    try:
        with zipfile.ZipFile(entry) as z:
            zipped = z.read(f"{package}/version.py").decode()
        with open(installed, encoding="utf-8") as f:
            local = f.read()
    except (OSError, KeyError, zipfile.BadZipFile):
        return False
    return _version(zipped) is not None and _version(zipped) == _version(local)


def prefer_installed_packages(path: list[str]) -> list[str]:
    """``path`` with Spark's pyspark/py4j zips moved to the end when the installed package is the same version."""
    zips = {entry: pkg for entry in path if (pkg := _zip_package(entry))}
    others = [entry for entry in path if entry not in zips]
    moved = [entry for entry, pkg in zips.items() if _same_as_installed(entry, pkg, others)]
    return [entry for entry in path if entry not in moved] + moved


def preload_models() -> None:
    """Load what ``STACKV2_PRELOAD`` names, before the daemon tells the JVM its port (standard output is that
    channel: it points at standard error meanwhile, so nothing a loader prints can reach the JVM)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        load_from_environment(dict(os.environ))
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def has_children(pid: int) -> bool:
    """Whether a process's main thread (which forks the workers) has a child alive: the daemon ignores ``SIGCHLD``,
    so the kernel reaps its exited workers at once. True when the kernel does not say (the daemon then stays)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return bool(f.read().split())
    except OSError:
        return True


class ExitWhenIdle:
    """Stands in for the ``select`` module in ``pyspark.daemon``, whose loop waits in ``select.select`` (one second
    at a time) for a connection from the JVM or a message on standard input. When a wait returns nothing and no
    worker has been alive for ``idle_seconds``, it raises ``SystemExit``: the loop's ``finally`` runs the daemon's
    own shutdown. It only ever exits between two waits, never while a worker is being forked."""

    error = select.error

    def __init__(
        self, idle_seconds: float, has_worker: Callable[[], bool], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle_seconds, self.has_worker, self.clock = idle_seconds, has_worker, clock
        self.busy_at = clock()

    def select(self, rlist: list, wlist: list, xlist: list, timeout: float | None = None) -> tuple[list, list, list]:
        ready = select.select(rlist, wlist, xlist, timeout)
        now = self.clock()
        if any(ready) or self.has_worker():
            self.busy_at = now
        elif now - self.busy_at >= self.idle_seconds:
            raise SystemExit(0)
        return ready


def main(idle_seconds: float = IDLE_EXIT_SECONDS) -> None:
    sys.path[:] = prefer_installed_packages(sys.path)
    preload_models()
    from pyspark import daemon  # imports the worker module named in sys.argv[1]

    if os.environ.get(PRELOAD_ENV):
        daemon.select = ExitWhenIdle(idle_seconds, lambda: has_children(os.getpid()))
    daemon.manager()


if __name__ == "__main__":
    main()
