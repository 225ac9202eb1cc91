"""Notebooks as training text (stackv2/notebooks): a real notebook shipped by an installed package, notebooks built
with nbformat's own API (v4 and v3, several kernels), and malformed ones."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import nbformat
import pytest
import wasabi
from hypothesis import given, settings
from hypothesis import strategies as st
from nbformat import v3, v4

from stackv2.notebooks.config import FIRST_STREAM_OUTPUT, NotebookConfig
from stackv2.notebooks.convert import (
    CODE,
    INVALID_JSON,
    LANGUAGE_NOT_STRUCTURED,
    MALFORMED,
    NO_CELLS,
    NO_TEXT_CODE_PAIR,
    NOT_A_NOTEBOOK,
    OUTPUT,
    TEXT,
    TOO_LARGE,
    TOO_MANY_CELLS,
    UNKNOWN_LANGUAGE,
    UNSUPPORTED_VERSION,
    output_text,
    to_script,
    to_structured,
)
from stackv2.notebooks.format import document_text, script_document, structured_document
from stackv2.tokenize.tokenizer import SPECIAL_TOKENS

#: A real notebook from an installed package (wasabi comes with spaCy).
WASABI_NOTEBOOK = Path(wasabi.__file__).parent / "tests" / "test-data" / "wasabi-test-notebook.ipynb"

PYTHON = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python", "file_extension": ".py", "mimetype": "text/x-python"},
}
R = {
    "kernelspec": {"name": "ir", "display_name": "R", "language": "R"},
    "language_info": {"name": "R", "file_extension": ".r", "mimetype": "text/x-r-source"},
}
JULIA_KERNEL_ONLY = {"kernelspec": {"name": "julia-1.9", "display_name": "Julia 1.9", "language": "julia"}}


def notebook(cells: list, metadata: dict | None = None) -> str:
    return nbformat.writes(v4.new_notebook(cells=cells, metadata=PYTHON if metadata is None else metadata))


def stream(text: str, name: str = "stdout") -> dict:
    return v4.new_output("stream", name=name, text=text)


def result(text: str) -> dict:
    return v4.new_output("execute_result", data={"text/plain": text}, execution_count=1)


PNG = v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480>"})


# --- a real notebook ---


def test_real_notebook_script_round_trips_through_jupytext():
    content = WASABI_NOTEBOOK.read_text()
    res = to_script(content)
    assert (res.reason, res.extension, res.language) == (None, ".py", "python")
    assert res.text.startswith("# ---\n# jupyter:\n")  # jupytext's header, as BigCode's jupytext.write left it
    assert "format_name: light" in res.text
    back = jupytext.reads(res.text, fmt="py:light")
    code = [c.source for c in back.cells if c.cell_type == "code"]
    assert code == [c.source for c in nbformat.reads(content, as_version=4).cells]


def test_real_notebook_without_markdown_has_no_structured_form():
    assert to_structured(WASABI_NOTEBOOK.read_text()).reason == NO_TEXT_CODE_PAIR


# --- scripts ---


def test_script_markdown_as_comments_code_as_code():
    text = to_script(notebook([v4.new_markdown_cell("# Load\nthe data"), v4.new_code_cell("x = 1\nprint(x)")])).text
    body = text.split("# ---\n")[-1]
    assert body == "\n# # Load\n# the data\n\nx = 1\nprint(x)\n"


def test_script_without_header():
    text = to_script(notebook([v4.new_code_cell("x = 1")]), NotebookConfig(script_header=False)).text
    assert text == "x = 1\n"


def test_script_keeps_the_notebooks_own_jupytext_format():
    meta = {**PYTHON, "jupytext": {"formats": "ipynb,py:percent"}}
    text = to_script(notebook([v4.new_code_cell("x = 1")], meta)).text
    assert "format_name: percent" in text and "# %%\nx = 1" in text


@pytest.mark.parametrize(
    ("metadata", "extension", "language", "comment"),
    [
        (R, ".R", "R", "#"),
        (JULIA_KERNEL_ONLY, ".jl", "julia", "#"),
        ({"language_info": {"name": "scala", "file_extension": ".scala"}}, ".scala", "scala", "//"),
    ],
)
def test_script_in_the_notebooks_language(metadata, extension, language, comment):
    res = to_script(notebook([v4.new_markdown_cell("Intro"), v4.new_code_cell("x <- 1")], metadata))
    assert (res.extension, res.language) == (extension, language)
    assert f"{comment} Intro\n" in res.text and "x <- 1\n" in res.text


def test_kernelspec_mentioning_py_falls_back_to_python():
    # BigCode's fallback when jupytext cannot write the language_info extension: '"py" in str(kernelspec)'.
    meta = {
        "kernelspec": {"name": "pysparkkernel", "display_name": "PySpark", "language": "sparkmagic"},
        "language_info": {"name": "pyspark", "file_extension": ".pyspark"},
    }
    res = to_script(notebook([v4.new_code_cell("df.show()")], meta))
    assert (res.extension, res.language) == (".py", "python")


@pytest.mark.parametrize(
    "metadata",
    [{}, {"kernelspec": {"name": "bf", "display_name": "Brainfuck", "language": "brainfuck"}}],
)
def test_unknown_language_is_rejected(metadata):
    assert to_script(notebook([v4.new_code_cell("+++.")], metadata)).reason == UNKNOWN_LANGUAGE


def test_v3_notebook_is_upgraded_and_keeps_its_cell_language():
    nb = v3.new_notebook(
        worksheets=[
            v3.new_worksheet(
                cells=[
                    v3.new_heading_cell("Title", level=2),
                    v3.new_code_cell(input="print(1)", outputs=[v3.new_output("stream", output_text="1\n")]),
                ]
            )
        ],
        metadata=v3.new_metadata(name="old"),
    )
    content = v3.writes_json(nb)
    assert json.loads(content)["nbformat"] == 3
    res = to_script(content)
    assert (res.extension, res.reason) == (".py", None)
    assert res.text.endswith("# ## Title\n\nprint(1)\n")
    structured = to_structured(content)
    assert structured.parts == ((TEXT, "## Title"), (CODE, "print(1)"), (OUTPUT, "1"))


# --- structured ---


def test_structured_groups_and_pairs_as_bigcode():
    cells = [
        v4.new_code_cell("import os"),  # leading code group: dropped
        v4.new_markdown_cell("# Part 1"),
        v4.new_markdown_cell("Read the file."),
        v4.new_code_cell("f = open('x')", outputs=[stream("ignored: not the last cell\n")]),
        v4.new_code_cell("f.read()", outputs=[result("'abc'")]),
        v4.new_raw_cell("raw cells are left out"),
        v4.new_code_cell("   "),  # empty: left out
        v4.new_markdown_cell("Part 2"),
        v4.new_code_cell("print(2)"),
        v4.new_markdown_cell("The end."),  # trailing markdown group: dropped
    ]
    res = to_structured(notebook(cells))
    assert res.parts == (
        (TEXT, "# Part 1\n\nRead the file."),
        (CODE, "f = open('x')\nf.read()"),
        (OUTPUT, "'abc'"),
        (TEXT, "Part 2"),
        (CODE, "print(2)"),
        (OUTPUT, ""),
    )
    doc = structured_document(res.parts)
    assert document_text(doc) == (
        "<jupyter_start><jupyter_text># Part 1\n\nRead the file.<jupyter_code>f = open('x')\nf.read()"
        "<jupyter_output>'abc'<jupyter_text>Part 2<jupyter_code>print(2)<jupyter_output><empty_output><|endoftext|>"
    )


def test_bigcode_markdown_cleaning():
    cells = [v4.new_markdown_cell("## A <b>bold</b>\nline"), v4.new_markdown_cell("two"), v4.new_code_cell("x")]
    res = to_structured(notebook(cells), NotebookConfig(clean_markdown=True))
    assert res.parts[0] == (TEXT, "A boldline two")


def test_outputs_text_only_images_dropped_ansi_removed():
    cell = v4.new_code_cell(
        "run()",
        outputs=[
            stream("loading\n"),
            PNG,
            stream("\x1b[31mwarning\x1b[0m", name="stderr"),
            result("42"),
            v4.new_output("error", ename="ValueError", evalue="bad", traceback=["\x1b[31mTraceback..."]),
            v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"}}),
        ],
    )
    assert output_text(cell) == "loading\nwarning\n42\nValueError: bad"


def test_output_cut_at_max_output_chars():
    cell = v4.new_code_cell("spam()", outputs=[stream("x" * 600), stream("y" * 600), stream("z" * 600)])
    text = output_text(cell, NotebookConfig(max_output_chars=1000))
    assert text == "x" * 600 + "y" * 400 + "[...]"


def test_first_stream_output_rule_is_bigcodes():
    cfg = NotebookConfig(outputs=FIRST_STREAM_OUTPUT)
    assert output_text(v4.new_code_cell("f()", outputs=[result("1"), stream("printed\n")]), cfg) == ""
    assert output_text(v4.new_code_cell("f()", outputs=[stream("a\n"), stream("b\n")]), cfg) == "a"


def test_structured_only_for_configured_languages():
    content = notebook([v4.new_markdown_cell("Intro"), v4.new_code_cell("x <- 1")], R)
    assert to_structured(content).parts == ((TEXT, "Intro"), (CODE, "x <- 1"), (OUTPUT, ""))
    python_only = NotebookConfig(structured_languages=("python",))
    assert to_structured(content, python_only).reason == LANGUAGE_NOT_STRUCTURED
    unknown = notebook([v4.new_markdown_cell("Intro"), v4.new_code_cell("x")], {})
    assert to_structured(unknown, python_only).reason == LANGUAGE_NOT_STRUCTURED
    assert to_structured(notebook([v4.new_markdown_cell("Intro"), v4.new_code_cell("x")]), python_only).parts


def test_sentinel_text_in_a_cell_stays_text():
    parts = to_structured(notebook([v4.new_markdown_cell("<jupyter_code>"), v4.new_code_cell("x")])).parts
    doc = structured_document(parts)
    assert [p.special for p in doc] == [True, True, False, True, False, True, True, True]
    assert all(p.text in SPECIAL_TOKENS for p in doc if p.special)


def test_script_document():
    assert document_text(script_document("x = 1\n")) == "<jupyter_script>x = 1\n<|endoftext|>"


# --- malformed and huge ---


def _v4_dict(cells: list) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": PYTHON, "cells": cells}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (notebook([v4.new_code_cell("x = 1")])[:-40], INVALID_JSON),  # truncated
        ("[" * 100_000, INVALID_JSON),  # nesting too deep for the parser
        ("not json", INVALID_JSON),
        ("[]", NOT_A_NOTEBOOK),
        ('{"cells": []}', NOT_A_NOTEBOOK),
        ('{"nbformat": "4", "cells": []}', NOT_A_NOTEBOOK),
        ('{"nbformat": 2, "nbformat_minor": 0, "worksheets": []}', UNSUPPORTED_VERSION),
        ('{"nbformat": 5, "nbformat_minor": 0, "cells": []}', UNSUPPORTED_VERSION),
        (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}), MALFORMED),  # no cells
        (json.dumps(_v4_dict([{"source": "x", "metadata": {}}])), MALFORMED),  # no cell_type
        (json.dumps(_v4_dict([{"cell_type": "code", "source": 3, "metadata": {}}])), MALFORMED),
        (json.dumps(_v4_dict([{"cell_type": "chart", "source": "x", "metadata": {}}])), MALFORMED),
        (json.dumps(_v4_dict(["x"])), MALFORMED),
        (json.dumps({**_v4_dict([]), "metadata": "x"}), MALFORMED),
        (json.dumps(_v4_dict([])), NO_CELLS),
        (notebook([v4.new_code_cell(""), v4.new_markdown_cell("  \n")]), NO_CELLS),
    ],
)
def test_invalid_notebooks_are_rejected_with_a_reason(content, reason):
    assert to_script(content).reason == reason
    assert to_structured(content).reason == reason


def test_size_is_checked_before_parsing():
    cfg = NotebookConfig(max_chars=1000)
    assert to_script("{" + " " * 1000, cfg).reason == TOO_LARGE  # not parsed: it would be INVALID_JSON
    small = notebook([v4.new_code_cell("x = 1")])
    assert len(small) <= 1000 and to_script(small, cfg).reason is None


def test_cell_count_cap():
    content = notebook([v4.new_code_cell(f"x = {i}") for i in range(4)])
    assert to_script(content, NotebookConfig(max_cells=3)).reason == TOO_MANY_CELLS
    assert to_script(content, NotebookConfig(max_cells=4)).reason is None


def test_huge_outputs_and_images_never_reach_the_parts():
    big = "line\n" * 200_000
    cells = [v4.new_markdown_cell("Plot"), v4.new_code_cell("plot()", outputs=[stream(big), PNG])]
    res = to_structured(notebook(cells))
    assert res.parts[2] == (OUTPUT, ("line\n" * 200)[:1000] + "[...]")
    assert "iVBOR" not in to_script(notebook(cells)).text


# --- properties ---

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_cell_keys = st.sampled_from(["cell_type", "source", "metadata", "outputs", "id"])


@settings(max_examples=150, deadline=None)
@given(
    top=st.dictionaries(st.sampled_from(["nbformat", "nbformat_minor", "metadata", "cells", "worksheets"]), _json),
    cells=st.lists(st.dictionaries(_cell_keys, _json | st.sampled_from(["code", "markdown", "raw", "x = 1"]))),
    version=st.sampled_from([3, 4, None]),
)
def test_any_json_gives_a_result_or_a_reason_never_an_exception(top, cells, version):
    data = {**top, "cells": cells} if version is None else {**top, "nbformat": version, "cells": cells}
    content = json.dumps(data)
    script, structured = to_script(content), to_structured(content)
    assert (script.text is None) != (script.reason is None)
    assert bool(structured.parts) != (structured.reason is not None)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["kernelspec", "language_info", "jupytext"]),
        _json
        | st.dictionaries(
            st.sampled_from(["name", "language", "file_extension", "formats", "notebook_metadata_filter"]), _json
        ),
    )
)
def test_any_metadata_gives_a_result_or_a_reason(metadata):
    cells = [v4.new_markdown_cell("Intro"), v4.new_code_cell("x = 1")]
    content = json.dumps({**_v4_dict(cells), "metadata": metadata})
    for cfg in (NotebookConfig(), NotebookConfig(script_header=False, structured_languages=("python",))):
        script, structured = to_script(content, cfg), to_structured(content, cfg)
        assert (script.text is None) != (script.reason is None)
        assert bool(structured.parts) != (structured.reason is not None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["markdown", "code", "raw"]), st.text(min_size=1, max_size=20))))
def test_structured_parts_alternate_text_code_output(cells):
    built = [
        {"markdown": v4.new_markdown_cell, "code": v4.new_code_cell, "raw": v4.new_raw_cell}[kind](src)
        for kind, src in cells
    ]
    res = to_structured(notebook(built))
    if res.reason is not None:
        assert res.reason in (NO_CELLS, NO_TEXT_CODE_PAIR)
        return
    kinds = [k for k, _ in res.parts]
    assert kinds == [TEXT, CODE, OUTPUT] * (len(kinds) // 3)
    code = [src.strip() for kind, src in cells if kind == "code" and src.strip()]
    for _, text in res.parts[1::3]:
        assert any(src in text for src in code)
