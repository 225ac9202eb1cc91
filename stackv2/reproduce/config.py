"""Settings of ``stackv2 reproduce`` (``RunConfig.reproduce``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stackv2.checks import positive
from stackv2.swh.config import FetchConfig
from stackv2.swh.content_store import CONTENT_PREFIX
from stackv2.swh.s3fetch import SWH_BUCKET


@dataclass(frozen=True)
class ReproduceConfig:
    """How ``stackv2 reproduce`` reads id tables, fetches contents and lays out its output."""

    #: Where the content objects are: ``s3://<bucket>/<prefix><sha1>`` (default: the public SWH bucket,
    #: docs/spec.md §1.6).
    bucket: str = SWH_BUCKET
    prefix: str = CONTENT_PREFIX
    fetch: FetchConfig = field(default_factory=FetchConfig)
    #: Rows per output shard (file level). A shard is the unit of work and of resume.
    rows_per_shard: int = 100_000
    #: Repositories per output shard (repo level).
    repos_per_shard: int = 5_000
    #: Rows per Parquet row group written (bounds the memory of a shard writer).
    row_group_rows: int = 2_000
    #: Seconds between progress lines of a shard.
    progress_every: float = 15.0

    def __post_init__(self) -> None:
        positive(self, "reproduce", "rows_per_shard", "repos_per_shard", "row_group_rows", "progress_every")
