"""PII adapter: a ``mapInArrow`` function that redacts ``content`` and appends per-type counts and the spans.

The presidio engine is built once per Python worker (``stackv2.pii.engine.get_engine`` caches it; Spark reuses
workers across tasks), on the first batch that needs it; or, in the stage, once per executor by the daemon that
forks the workers (``stackv2.preload``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa

from stackv2.pii.config import REDACTED, PiiConfig
from stackv2.schema import PII_COUNT_FIELDS, PII_SPAN

#: Per-row spans, exploded into the ``spans`` audit table by the stage (offsets and types, never values).
SPANS_COLUMN = "pii_spans"
OUTPUT_FIELDS: list[pa.Field] = [*PII_COUNT_FIELDS, pa.field(SPANS_COLUMN, pa.list_(PII_SPAN))]


#: Count column -> entity type (``schema.PII_COUNT_FIELDS`` names are ``pii_<type>``).
COUNT_COLUMNS = {f"pii_{e.lower()}": e for e in REDACTED}


def redact_batches(cfg: PiiConfig) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Batches keep every column and their rows in order (the stage writes them in place: ``Output.aligned``);
    ``content`` is replaced by its redaction (null stays null)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from stackv2.pii.redaction import redact  # on the executor: presidio's import costs seconds

        for batch in batches:
            texts: list[str | None] = []
            counts: dict[str, list[int]] = {f.name: [] for f in PII_COUNT_FIELDS}
            spans: list[list[dict]] = []
            for content in batch.column("content").to_pylist():
                r = redact(content, cfg) if content else None
                texts.append(r.text if r else content)
                found = r.counts if r else {}
                for name, values in counts.items():
                    values.append(found.get(COUNT_COLUMNS[name], 0))
                spans.append([{"start": s.start, "end": s.end, "entity": s.entity} for s in r.spans] if r else [])
            i = batch.schema.get_field_index("content")
            out = batch.set_column(i, batch.schema.field(i), pa.array(texts, batch.schema.field(i).type))
            for f in PII_COUNT_FIELDS:
                out = out.append_column(f, pa.array(counts[f.name], f.type))
            yield out.append_column(OUTPUT_FIELDS[-1], pa.array(spans, OUTPUT_FIELDS[-1].type))

    return run
