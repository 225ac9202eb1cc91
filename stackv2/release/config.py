"""Settings of the ``shards`` stage (``RunConfig.shards``)."""

from __future__ import annotations

from dataclasses import dataclass

from stackv2.checks import positive

MB = 1_000_000


@dataclass(frozen=True)
class ShardsConfig:
    #: Uncompressed bytes per shard (HF's ``push_to_hub`` measures ``max_shard_size`` the same way).
    target_shard_bytes: int = 256 * MB
    #: Uncompressed bytes per Parquet row group: the Hub's viewer wants 100-300 MB and rejects > 286 MiB;
    #: a streaming reader holds one row group at a time, so take the low end.
    row_group_bytes: int = 100 * MB
    compression: str = "zstd"
    #: zstd level 3, Spark's (parquet-mr's) default: pyarrow's own default (1) writes larger files on code.
    compression_level: int | None = 3

    def __post_init__(self) -> None:
        positive(self, "shards", "target_shard_bytes", "row_group_bytes")
