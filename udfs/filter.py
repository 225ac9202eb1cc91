"""Filter adapter: a ``mapInArrow`` function that appends ``reason`` (null: kept) to annotated batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa

from stackv2.filters import FileFilter, FilterConfig


def mark_batches(
    cfg: FilterConfig, patterns: list[str]
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Batches pass through unchanged (rows in order: the stage writes them in place) plus a ``reason`` column; the
    decontamination automaton is built once per partition from ``patterns`` (loaded on the driver, so executors need no
    access to the benchmark files)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        file_filter = FileFilter(cfg, patterns)
        for batch in batches:
            yield batch.append_column("reason", file_filter.reasons(batch))

    return run
