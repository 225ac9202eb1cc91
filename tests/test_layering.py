"""``stackv2`` is pure Python: importing every module of it must not load pyspark."""

import pkgutil
import subprocess
import sys

import stackv2


def test_stackv2_never_imports_pyspark():
    modules = [m.name for m in pkgutil.walk_packages(stackv2.__path__, "stackv2.")]
    assert len(modules) > 5
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'pyspark' or m.startswith('pyspark.'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
