"""Notebook conversion time by cell count (docs/notebooks.md): what ``NotebookConfig.max_cells`` bounds.

Notebooks are built with nbformat's API: half markdown, half code cells with a short stream output each. Times are
the best of ``--repeat`` runs of ``to_script`` and ``to_structured`` on one notebook, against ``json.loads`` of the
same text (the part a size check before parsing bounds).

    .venv/bin/python bench/notebooks/convert.py [--cells 100 1000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time

import nbformat
from nbformat import v4

from stackv2.notebooks.convert import to_script, to_structured

META = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python", "file_extension": ".py"},
}


def build(cells: int) -> str:
    out = []
    for i in range(cells):
        if i % 2:
            stream = v4.new_output("stream", name="stdout", text=f"{i}\n")
            out.append(v4.new_code_cell(f"x{i} = compute({i})\nprint(x{i})", outputs=[stream]))
        else:
            out.append(v4.new_markdown_cell(f"## Step {i}\nWe compute the value of step {i}."))
    return nbformat.writes(v4.new_notebook(cells=out, metadata=META))


def best(fn, content: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(content)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'cells':>6} {'MiB':>6} {'json s':>7} {'script s':>8} {'structured s':>12}")
    for n in args.cells:
        content = build(n)
        assert to_script(content).reason is None and to_structured(content).reason is None
        row = [best(f, content, args.repeat) for f in (json.loads, to_script, to_structured)]
        print(f"{n:>6} {len(content) / 2**20:>6.2f} {row[0]:>7.3f} {row[1]:>8.3f} {row[2]:>12.3f}")


if __name__ == "__main__":
    main()
