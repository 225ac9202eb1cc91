"""Training documents of notebooks, StarCoder2's two forms (docs/spec.md §10.2).

- script: ``<jupyter_script>script<|endoftext|>``;
- structured: ``<jupyter_start><jupyter_text>t<jupyter_code>c<jupyter_output>o…<|endoftext|>``, an empty output as
  ``<jupyter_output><empty_output>``.

The dataset rows hold the script text or the ``(kind, text)`` parts; the tokenize stage turns a row into a document
with these functions. A document is a list of ``Part`` s, as for repositories (stackv2/tokenize/format.py): sentinels
are placed by id, so a notebook whose text spells ``<jupyter_code>`` cannot forge a cell boundary.
"""

from __future__ import annotations

from collections.abc import Iterable

from stackv2.notebooks.convert import CODE, OUTPUT, TEXT
from stackv2.tokenize.format import (
    EMPTY_OUTPUT,
    EOS,
    JUPYTER_CODE,
    JUPYTER_OUTPUT,
    JUPYTER_SCRIPT,
    JUPYTER_START,
    JUPYTER_TEXT,
    NOTEBOOK_SENTINELS,
    Part,
)

#: The sentinel before each kind of structured part.
KIND_SENTINELS = {TEXT: JUPYTER_TEXT, CODE: JUPYTER_CODE, OUTPUT: JUPYTER_OUTPUT}
#: Every sentinel a notebook document uses (all are StarCoder2 special tokens, docs/spec.md §10.3).
SENTINELS = (EOS, *NOTEBOOK_SENTINELS)


def script_document(script: str) -> list[Part]:
    return [Part(JUPYTER_SCRIPT, True), Part(script), Part(EOS, True)]


def structured_document(parts: Iterable[tuple[str, str]]) -> list[Part]:
    out = [Part(JUPYTER_START, True)]
    for kind, text in parts:
        out.append(Part(KIND_SENTINELS[kind], True))
        if text:
            out.append(Part(text))
        elif kind == OUTPUT:
            out.append(Part(EMPTY_OUTPUT, True))
    out.append(Part(EOS, True))
    return out


def document_text(parts: Iterable[Part]) -> str:
    """A document as one string, sentinels written out (the paper's notation)."""
    return "".join(p.text for p in parts)
