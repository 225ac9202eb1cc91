"""Provenance adapter: a ``mapInArrow`` function adding each released file's full SWHID (``stackv2.swh.swhid``)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from stackv2.swh.swhid import file_swhid

SWHID_COLUMN = "swhid"


def add_swhids(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Batches with ``content_id``, ``repo_url``, ``snapshot_id``, ``revision_id``, ``path`` -> the same plus
    ``swhid``."""
    for batch in batches:
        cols = (batch.column(c).to_pylist() for c in ("content_id", "repo_url", "snapshot_id", "revision_id", "path"))
        yield batch.append_column(
            SWHID_COLUMN, pa.array([file_swhid(*r) for r in zip(*cols, strict=True)], pa.string())
        )
