"""Decontamination (docs/spec.md §9.1): reject files containing a benchmark prompt or solution.

Matching is case-insensitive with all whitespace removed from both sides (StarCoder2's recall improvement over
StarCoder1's plain substring test). All benchmark strings go into one Aho-Corasick automaton, so a file is scanned
once whatever the number of strings.

Benchmark files are JSON lines (optionally gzip-compressed); each record is recognised by its keys:

* HumanEval (``prompt`` + ``canonical_solution``): the prompt's docstring and the solution, except the trivial
  solutions listed in ``FilterConfig.trivial_solutions``;
* MBPP (``task_id`` + ``text`` + ``code``): both fields of the test tasks 11–510 (other ids are train/validation);
* APPS / GSM8K (``question``): the question;
* anything else with a ``text`` field: that text.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ahocorasick

from stackv2.filters.config import FilterConfig

DECONTAMINATED = "decontaminated"

#: MBPP's test split (docs/spec.md §9.1).
MBPP_TEST_IDS = range(11, 511)
_DOCSTRING = re.compile(r"(\"\"\"|''')(.*?)\1", re.DOTALL)


def normalize(text: str) -> str:
    """Lowercase, every whitespace character removed."""
    return "".join(text.split()).lower()


def humaneval_docstring(prompt: str) -> str:
    """The prompt's last triple-quoted string (the function's docstring), or the whole prompt if it has none."""
    found = _DOCSTRING.findall(prompt)
    return found[-1][1].strip() if found else prompt


def record_strings(record: Mapping[str, Any], trivial: frozenset[str]) -> list[str]:
    """The strings of one benchmark record to search for; raises ``ValueError`` on an unknown layout."""
    if "prompt" in record and "canonical_solution" in record:
        solution = record["canonical_solution"]
        return [humaneval_docstring(record["prompt"])] + ([] if normalize(solution) in trivial else [solution])
    if {"task_id", "text", "code"} <= record.keys():
        task = record["task_id"]
        return [record["text"], record["code"]] if not isinstance(task, int) or task in MBPP_TEST_IDS else []
    for key in ("question", "text"):
        if isinstance(record.get(key), str):
            return [record[key]]
    raise ValueError(f"unknown benchmark record with keys {sorted(record)}")


def load_benchmark(path: str | Path, trivial: frozenset[str] = frozenset()) -> list[str]:
    """All strings of one benchmark file (``.jsonl`` or ``.jsonl.gz``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"benchmark file {p} does not exist")
    opener = gzip.open if p.suffix == ".gz" else open
    out: list[str] = []
    with opener(p, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.extend(record_strings(json.loads(line), trivial))
            except ValueError as e:
                raise ValueError(f"{p}:{n}: {e}; expected HumanEval, MBPP, APPS/GSM8K or text records") from None
    return out


def benchmark_patterns(cfg: FilterConfig) -> list[str]:
    """The normalized, de-duplicated, sorted strings of every benchmark file in ``cfg``."""
    trivial = frozenset(normalize(s) for s in cfg.trivial_solutions)
    found = {normalize(s) for path in cfg.benchmark_files for s in load_benchmark(path, trivial)}
    found.discard("")
    return sorted(found)


class Decontaminator:
    """Aho-Corasick matcher over benchmark strings (normalized here); build once, call per row."""

    def __init__(self, patterns: Iterable[str]):
        self._automaton: ahocorasick.Automaton | None = None
        patterns = sorted({normalize(p) for p in patterns} - {""})
        if patterns:
            self._automaton = ahocorasick.Automaton()
            for p in patterns:
                self._automaton.add_word(p, p)
            self._automaton.make_automaton()

    def first_match(self, content: str) -> str | None:
        if self._automaton is None:
            return None
        return next((p for _, p in self._automaton.iter(normalize(content))), None)

    def __call__(self, row: Mapping[str, Any], cfg: FilterConfig) -> bool:
        return self.first_match(row["content"]) is not None
