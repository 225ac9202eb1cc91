"""Jupyter notebooks as training text (docs/spec.md §10.2): a script through jupytext, or structured cells.

Both start from ``read_notebook``: the size is checked before the JSON is parsed, the cell count before nbformat
builds its objects, and nbformat (not our own JSON walking) joins sources and upgrades v3 notebooks to v4. A
notebook that cannot be converted gives a reason constant, never an exception.
"""

from __future__ import annotations

import itertools
import json
import re
import warnings
from dataclasses import dataclass

import jupytext
import nbformat
from jupytext.formats import auto_ext_from_metadata, format_name_for_ext
from jupytext.languages import _SCRIPT_EXTENSIONS
from nbformat import NotebookNode

from stackv2.notebooks.config import FIRST_STREAM_OUTPUT, NotebookConfig

# Reject reasons.
TOO_LARGE = "notebook_too_large"
INVALID_JSON = "notebook_invalid_json"
NOT_A_NOTEBOOK = "not_a_notebook"
UNSUPPORTED_VERSION = "notebook_unsupported_version"
TOO_MANY_CELLS = "notebook_too_many_cells"
MALFORMED = "notebook_malformed"
NO_CELLS = "notebook_no_cells"
UNKNOWN_LANGUAGE = "notebook_unknown_language"
CONVERSION_ERROR = "notebook_conversion_error"
#: Structured form: the notebook's language is not in ``NotebookConfig.structured_languages``.
LANGUAGE_NOT_STRUCTURED = "notebook_language_not_structured"
#: Structured form: no markdown group is followed by a code group.
NO_TEXT_CODE_PAIR = "notebook_no_text_code_pair"

# Kinds of structured parts, each written after its ``<jupyter_{kind}>`` sentinel (stackv2/notebooks/format.py).
TEXT = "text"
CODE = "code"
OUTPUT = "output"

#: nbformat major versions read; v3 is upgraded to v4 by nbformat.
SUPPORTED_VERSIONS = (3, 4)
CELL_TYPES = ("markdown", "code", "raw")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_HTML_TAG = re.compile(r"<.*?>")
_NEWLINES = re.compile(r"\n+")

DEFAULT = NotebookConfig()


@dataclass(frozen=True)
class ScriptResult:
    """The notebook as a script in its own language, or ``reason`` and nothing else."""

    text: str | None = None
    #: jupytext's script extension, e.g. ``.py``, ``.R``, ``.jl``.
    extension: str | None = None
    #: jupytext's language name for ``extension``, e.g. ``python``, ``R``, ``julia``.
    language: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class StructuredResult:
    """``(kind, text)`` triplets ``TEXT, CODE, OUTPUT`` in notebook order (an empty output text is written as
    ``<empty_output>``), or ``reason`` and no parts."""

    parts: tuple[tuple[str, str], ...] = ()
    reason: str | None = None


def read_notebook(content: str, cfg: NotebookConfig = DEFAULT) -> NotebookNode | str:
    """The notebook as nbformat v4 with string sources, or a reject reason."""
    if len(content) > cfg.max_chars:
        return TOO_LARGE
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return INVALID_JSON
    if not isinstance(data, dict) or type(data.get("nbformat")) is not int:
        return NOT_A_NOTEBOOK
    major, minor = data["nbformat"], data.get("nbformat_minor", 0)
    if major not in SUPPORTED_VERSIONS:
        return UNSUPPORTED_VERSION
    if type(minor) is not int:
        return MALFORMED
    try:
        if _cell_count(data) > cfg.max_cells:
            return TOO_MANY_CELLS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.versions[major].to_notebook_json(data, minor=minor)
            if major != 4:
                language = _v3_language(data)
                nb = nbformat.convert(nb, 4)
                if language:  # v4 keeps no cell language: jupytext's own field for it
                    nb.metadata.setdefault("jupytext", {}).setdefault("main_language", language)
        if not all(_well_formed(cell) for cell in nb.cells) or not isinstance(nb.metadata, dict):
            return MALFORMED
    except (AttributeError, KeyError, TypeError, ValueError, AssertionError, nbformat.ValidationError):
        return MALFORMED  # nbformat checks some fields with assert
    if not any(cell.source.strip() for cell in nb.cells):
        return NO_CELLS
    return nb


def _cell_count(data: dict) -> int:
    if data["nbformat"] == 4:
        return len(data["cells"])
    return sum(len(ws["cells"]) for ws in data["worksheets"])


def _v3_language(data: dict) -> str | None:
    """The language of a v3 notebook's code cells when they agree (v3 had no kernelspec)."""
    languages = {c.get("language") for ws in data["worksheets"] for c in ws["cells"] if c.get("cell_type") == "code"}
    return languages.pop() if len(languages) == 1 and isinstance(next(iter(languages)), str) else None


def _well_formed(cell: object) -> bool:
    return isinstance(cell, dict) and cell.get("cell_type") in CELL_TYPES and isinstance(cell.get("source"), str)


def script_extension(metadata: dict) -> str | None:
    """The script extension jupytext gives the notebook's language (``language_info.file_extension``, else the
    kernelspec's language); else BigCode's fallback, ``.py`` when the kernelspec mentions ``py``; else None."""
    try:
        ext = auto_ext_from_metadata(metadata)
    except (AttributeError, TypeError):  # language_info, kernelspec or a language that is not what it should be
        ext = None
    if isinstance(ext, str) and ext in _SCRIPT_EXTENSIONS:
        return ext
    return ".py" if "py" in str(metadata.get("kernelspec", "")) else None


def to_script(content: str, cfg: NotebookConfig = DEFAULT) -> ScriptResult:
    """The notebook converted by jupytext to a script of its language: code cells as code, markdown as comments.

    ``<jupyter_script>`` is not added here: the script is a dataset row like any file, and the training document
    is made from it by ``stackv2.notebooks.format.script_document``.
    """
    nb = read_notebook(content, cfg)
    if isinstance(nb, str):
        return ScriptResult(reason=nb)
    ext = script_extension(nb.metadata)
    if ext is None:
        return ScriptResult(reason=UNKNOWN_LANGUAGE)
    try:
        if not cfg.script_header:
            nb.metadata.setdefault("jupytext", {})["notebook_metadata_filter"] = "-all"
        name = format_name_for_ext(nb.metadata, ext, explicit_default=False) or cfg.script_format
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = jupytext.writes(nb, fmt={"extension": ext, "format_name": name})
    except Exception:  # hostile notebooks reach many jupytext code paths: each failure is a rejected row
        return ScriptResult(reason=CONVERSION_ERROR)
    return ScriptResult(text=text, extension=ext, language=_SCRIPT_EXTENSIONS[ext]["language"])


def to_structured(content: str, cfg: NotebookConfig = DEFAULT) -> StructuredResult:
    """Markdown/code/output triplets as BigCode built them: consecutive cells of one type form a group, a leading
    code group and a trailing markdown group are dropped, each markdown group is paired with the code group after
    it, and the output is the last code cell's. Raw cells are left out."""
    nb = read_notebook(content, cfg)
    if isinstance(nb, str):
        return StructuredResult(reason=nb)
    if cfg.structured_languages:
        ext = script_extension(nb.metadata)
        if ext is None or _SCRIPT_EXTENSIONS[ext]["language"] not in cfg.structured_languages:
            return StructuredResult(reason=LANGUAGE_NOT_STRUCTURED)
    cells = [c for c in nb.cells if c.cell_type != "raw" and c.source.strip()]
    groups = [list(g) for _, g in itertools.groupby(cells, key=lambda c: c.cell_type)]
    if groups and groups[0][0].cell_type == "code":
        groups = groups[1:]
    if groups and groups[-1][0].cell_type == "markdown":
        groups = groups[:-1]
    if not groups:
        return StructuredResult(reason=NO_TEXT_CODE_PAIR)
    parts: list[tuple[str, str]] = []
    for markdown, code in zip(groups[::2], groups[1::2], strict=True):
        parts.append((TEXT, _markdown_text(markdown, cfg)))
        parts.append((CODE, "\n".join(c.source for c in code).strip()))
        parts.append((OUTPUT, output_text(code[-1], cfg)))
    return StructuredResult(parts=tuple(parts))


def _markdown_text(cells: list[NotebookNode], cfg: NotebookConfig) -> str:
    if cfg.clean_markdown:  # BigCode's clean_markdown, as released
        return " ".join(_NEWLINES.sub("", _HTML_TAG.sub("", c.source)).replace("#", "") for c in cells).strip()
    return "\n\n".join(c.source.strip() for c in cells)


def output_text(cell: NotebookNode, cfg: NotebookConfig = DEFAULT) -> str:
    """A code cell's output as text, ANSI colours removed, cut at ``max_output_chars`` (then ``output_cut_marker``
    is added) and stripped; empty when the cell has none. Images and other binary data are never taken."""
    outputs = [o for o in cell.get("outputs") or [] if isinstance(o, dict)]
    if cfg.outputs == FIRST_STREAM_OUTPUT:
        outputs = outputs[:1]
    text = ""
    previous = None
    for out in outputs:
        kind = out.get("output_type")
        piece = out.get("text") if cfg.outputs == FIRST_STREAM_OUTPUT else _text_of(out)
        if not isinstance(piece, str) or not piece:
            continue
        # Stream chunks continue each other; any other output starts on a line of its own.
        if text and not text.endswith("\n") and not kind == previous == "stream":
            text += "\n"
        text += _ANSI.sub("", piece)
        previous = kind
        if len(text) > cfg.max_output_chars:
            break
    if len(text) > cfg.max_output_chars:
        text = text[: cfg.max_output_chars] + cfg.output_cut_marker
    return text.strip()


def _text_of(output: dict) -> object:
    kind = output.get("output_type")
    if kind == "stream":
        return output.get("text")
    if kind == "execute_result":
        data = output.get("data")
        return data.get("text/plain") if isinstance(data, dict) else None
    if kind == "error":
        return f"{output.get('ename', '')}: {output.get('evalue', '')}"
    return None  # display_data: images, HTML, widgets
