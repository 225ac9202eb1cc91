"""The three floors: ``stackv2`` is pure Python (importing it never loads pyspark), imports point
``pipelines`` -> ``udfs`` -> ``stackv2`` and form no cycle, and ``pipelines`` holds only Spark jobs and the
command line."""

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

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


PACKAGES = ("stackv2", "udfs", "pipelines")
ROOT = Path(__file__).resolve().parent.parent


def _imports() -> dict[str, set[str]]:
    """Project module -> the project modules it imports, anywhere in its body (function-level imports count)."""
    files = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            files[name] = f
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, f in files.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return [*path[path.index(w) :], w]
            if w not in state and (found := visit(w)):
                return found
        path.pop()
        state[v] = 2
        return None

    return next((c for v in sorted(graph) if v not in state and (c := visit(v))), None)


def test_no_import_cycles_and_imports_point_down():
    graph = _imports()
    assert len(graph) > 40
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"
    order = {pkg: i for i, pkg in enumerate(PACKAGES)}
    upward = sorted(
        (a, b) for a, deps in graph.items() for b in deps if order[b.split(".")[0]] > order[a.split(".")[0]]
    )
    assert not upward, f"imports must point pipelines -> udfs -> stackv2: {upward}"


def test_a_cycle_is_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_pipelines_holds_spark_and_the_command_line_only():
    """Every ``pipelines`` module but the command line runs Spark: it imports pyspark, or a module of ours that
    does. Pure Python (pyarrow only) belongs in ``stackv2``."""
    spark = set()
    for f in (ROOT / "pipelines").rglob("*.py"):
        if "pyspark" in f.read_text():
            spark.add(".".join(f.relative_to(ROOT).with_suffix("").parts))
    graph = _imports()
    exempt = {"pipelines", "pipelines.stages", "pipelines.cli"}
    pure = sorted(m for m in graph if m.startswith("pipelines") and m not in exempt | spark and not graph[m] & spark)
    assert not pure, f"pipelines modules that use no Spark: {pure}"


def test_every_stage_has_the_same_shape():
    """``pipelines/stages/<name>.py``: ``transform`` (the Spark logic), ``run`` (the wiring) and ``STAGE``."""
    from pipelines._job import PIPELINE
    from pipelines.runner import load_stage

    modules = {f.stem for f in (ROOT / "pipelines" / "stages").glob("*.py")} - {"__init__"}
    assert modules == set(PIPELINE)
    for name in PIPELINE:
        module = importlib.import_module(f"pipelines.stages.{name}")
        assert callable(module.transform) and load_stage(name).run is module.run and module.STAGE.name == name
