"""Entry point of Spark's Python daemon (``spark.python.daemon.module``, set in ``pipelines/_session.py``):
``pyspark.daemon`` unchanged, except that pyspark and py4j are imported from the installed packages rather than
from the copies Spark zips onto the worker path, when both are the same version; and that the models its worker
environment names (``stackv2.preload``) are loaded before the first worker is forked, so that all the workers of
an executor share one copy of them.

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
import sys
import zipfile

from stackv2.preload import load_from_environment

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


if __name__ == "__main__":
    sys.path[:] = prefer_installed_packages(sys.path)
    preload_models()
    from pyspark import daemon  # imports the worker module named in sys.argv[1]

    daemon.manager()
