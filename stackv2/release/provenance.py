"""Where a released file came from: its full SWHID, looked up in the ``shards`` stage's row table
(``stackv2 provenance``). The table has one row per file and product, with ``swhid`` (``stackv2.swh.swhid``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from stackv2.storage import Location, dataset
from stackv2.workdir import committed_files

COLUMNS = ("product", "repo_name", "path", "blob_id", "swhid")


def lookup(
    rows: str | Path | Location,
    *,
    blob_id: str | None = None,
    repo_name: str | None = None,
    path: str | None = None,
    product: str | None = None,
) -> list[dict[str, Any]]:
    """The released files matching every given field (at least one), sorted, with their SWHIDs."""
    wanted = {"blob_id": blob_id, "repo_name": repo_name, "path": path, "product": product}
    given = {k: v for k, v in wanted.items() if v is not None}
    if not given.keys() - {"product"}:
        raise ValueError("give a blob id, a repository or a path to look up")
    try:
        files = committed_files(rows)
    except FileNotFoundError:
        raise FileNotFoundError(f"{rows}: no row table: run the shards stage first") from None
    condition = None
    for column, value in given.items():
        term = pc.field(column) == value
        condition = term if condition is None else condition & term
    table = dataset(files).to_table(columns=list(COLUMNS), filter=condition)
    return table.sort_by([(c, "ascending") for c in COLUMNS]).to_pylist()
