"""Notebook conversion settings (docs/spec.md §10.2); imports nothing heavy, so ``RunConfig`` can hold one cheaply."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20

#: ``NotebookConfig.outputs``: the text of every stream, execute_result (``text/plain``) and error output of a cell.
TEXT_OUTPUTS = "text"
#: BigCode's rule: the ``text`` field of the cell's first output only, so stream output (docs/fidelity.md).
FIRST_STREAM_OUTPUT = "first_stream"


@dataclass(frozen=True)
class NotebookConfig:
    """Defaults follow BigCode's released scripts (docs/spec.md §10.2) except where a comment says why not; each
    departure has a row in docs/fidelity.md "Notebooks"."""

    #: Notebooks longer than this (characters of JSON) are rejected before parsing: the fetch stage's 10 MiB file
    #: cap, so a notebook that came through fetch is never cut here, and parsing holds a few times this at most.
    max_chars: int = 10 * MIB
    #: Notebooks with more cells are rejected before conversion: jupytext's work grows with the cell count (about
    #: 0.26 ms a cell), so 10,000 cells bound one notebook's script to a few seconds (docs/notebooks.md).
    max_cells: int = 10_000
    #: Structured form: a cell's output text is cut to this many characters, then ``output_cut_marker`` is added
    #: (BigCode's ``output[:1000] + "[...]"``).
    max_output_chars: int = 1_000
    output_cut_marker: str = "[...]"
    #: Which outputs give a cell's output text: ``TEXT_OUTPUTS`` (ours) or ``FIRST_STREAM_OUTPUT`` (BigCode's).
    #: Images and other binary data (``image/*``, ``application/*``) are never kept.
    outputs: str = TEXT_OUTPUTS
    #: BigCode's markdown cleaning for the structured form: HTML tags, newlines and ``#`` removed, cells of a group
    #: joined by a space. Off (ours): markdown kept as written; removing newlines glues words of adjacent lines.
    clean_markdown: bool = False
    #: Structured form only for notebooks in these languages (jupytext's names, e.g. ``("python",)``); empty: all.
    #: BigCode's test, ``"py"`` anywhere in the metadata JSON, passes every notebook whose ``language_info`` has the
    #: usual ``pygments_lexer`` key, whatever its language, so all languages is the closer rule (docs/fidelity.md).
    structured_languages: tuple[str, ...] = ()
    #: jupytext format of scripts: ``light``, jupytext's default for scripts until 1.17, which BigCode ran.
    script_format: str = "light"
    #: Keep jupytext's commented YAML header (kernelspec, jupytext version) at the top of a script, as BigCode's
    #: ``jupytext.write`` did for notebooks with a known language.
    script_header: bool = True

    def __post_init__(self) -> None:
        if self.outputs not in (TEXT_OUTPUTS, FIRST_STREAM_OUTPUT):
            raise ValueError(f"notebooks.outputs must be {TEXT_OUTPUTS!r} or {FIRST_STREAM_OUTPUT!r}")
        if min(self.max_chars, self.max_cells, self.max_output_chars) < 1:
            raise ValueError("notebooks.max_chars, max_cells and max_output_chars must be positive")
