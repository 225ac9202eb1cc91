"""Notebooks adapter: a ``mapInArrow`` function turning notebook rows into their two training forms
(``stackv2.notebooks``), with PII redacted in each (``stackv2.pii``), as every training file is."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa

from stackv2.detect.language import detect_language
from stackv2.notebooks.config import NotebookConfig
from stackv2.notebooks.convert import to_script, to_structured
from stackv2.notebooks.format import document_text, structured_document
from stackv2.pii import redact
from stackv2.pii.config import PiiConfig

CELL = pa.struct([pa.field("kind", pa.string()), pa.field("text", pa.string())])
#: Columns the conversion adds: the script (language by go-enry from jupytext's extension), the structured parts
#: (and the same written out in the paper's notation), and the reason a notebook has neither (null: it has one).
FORM_FIELDS = [
    pa.field("script", pa.string()),
    pa.field("script_language", pa.string()),
    pa.field("script_extension", pa.string()),
    pa.field("cells", pa.list_(CELL)),
    pa.field("structured", pa.string()),
    pa.field("reason", pa.string()),
]


def convert_batches(
    cfg: NotebookConfig, pii: PiiConfig
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Batches with ``content`` (a notebook's JSON) -> the same plus ``FORM_FIELDS``."""

    def one(content: str) -> tuple:
        script, structured = to_script(content, cfg), to_structured(content, cfg)
        text = redact(script.text, pii).text if script.text is not None else None
        language = None
        if text is not None:
            language = detect_language(f"notebook{script.extension}", text.encode()).language
        parts = [(k, redact(t, pii).text if t else t) for k, t in structured.parts]
        cells = [{"kind": k, "text": t} for k, t in parts] or None
        notation = document_text(structured_document(parts)) if parts else None
        reason = None if text is not None or cells else script.reason
        return text, language, script.extension if text is not None else None, cells, notation, reason

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            forms = [one(c or "") for c in batch.column("content").to_pylist()]
            columns = [pa.array([f[i] for f in forms], field.type) for i, field in enumerate(FORM_FIELDS)]
            schema = pa.schema([*batch.schema, *FORM_FIELDS])
            yield pa.RecordBatch.from_arrays([*batch.columns, *columns], schema=schema)

    return run
