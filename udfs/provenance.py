"""Provenance adapter: each released file's full SWHID (``stackv2.swh.swhid``) as a column."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from stackv2.swh.swhid import file_swhid

SWHID_COLUMN = "swhid"
_FILE_SWHID = F.udf(file_swhid, StringType(), useArrow=True)


def file_swhids(content_id: str, origin: str, snapshot_id: str, revision_id: str, path: str) -> Column:
    """The ``swhid`` column from these five columns: only they cross to Python, not the rows' contents."""
    return _FILE_SWHID(content_id, origin, snapshot_id, revision_id, path).alias(SWHID_COLUMN)
