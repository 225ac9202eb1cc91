"""Fetch adapter: a ``mapInArrow`` function reading unique blobs from a content store, many in flight per task.

``s3://`` stores go through the lean reader (``stackv2.swh.s3fetch``: keep-alive connections, botocore's
signer, backoff with a retry budget); local folders through ``ContentStore.get``. Either way one reader and
one pool of workers live for the whole task, not per Arrow batch, so connections are reused across batches,
and ``s3fetch.fetch`` keeps a bounded window of requests in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pyarrow as pa

from stackv2.config import FetchConfig
from stackv2.schema import BLOB_RESULT
from stackv2.swh.content_store import CONTENT_PREFIX, ContentStore, StoreError, open_store
from stackv2.swh.s3fetch import Progress, S3FetchConfig, S3Reader, fetch
from stackv2.text.decode import FETCH_ERROR, MISSING_OBJECT, BlobOutcome, process_blob


def reader_config(store_url: str, cfg: FetchConfig) -> S3FetchConfig:
    """The lean reader's settings for a content store URL (bucket and prefix from ``s3://bucket/prefix``)."""
    parsed = urlparse(store_url)
    prefix = parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3FetchConfig(
        bucket=parsed.netloc,
        prefix=prefix + CONTENT_PREFIX,
        endpoint_url=cfg.endpoint_url,
        region=cfg.region,
        unsigned=cfg.unsigned,
        concurrency=cfg.concurrency,
        max_length=cfg.max_length,
        verify_hashes=cfg.verify_hashes,
    )


class StoreReader:
    """``S3Reader``'s interface over any ``ContentStore`` (local folders)."""

    def __init__(self, store: ContentStore, cfg: S3FetchConfig) -> None:
        self.store, self.cfg = store, cfg

    def fetch_one(
        self, blob_id: str, content_id: str | None = None, encoding: str | None = None
    ) -> tuple[BlobOutcome, int]:
        try:
            gz = self.store.get(blob_id)
        except StoreError as e:
            return BlobOutcome(reason=FETCH_ERROR, detail=str(e)), 0
        if gz is None:
            return BlobOutcome(reason=MISSING_OBJECT), 0
        return process_blob(
            blob_id,
            gz,
            content_id=content_id,
            max_length=self.cfg.max_length,
            verify=self.cfg.verify_hashes,
            encoding=encoding,
        ), len(gz)

    def close(self) -> None:
        pass


def open_reader(store_url: str, cfg: FetchConfig) -> S3Reader | StoreReader:
    rcfg = reader_config(store_url, cfg)
    if urlparse(store_url).scheme in ("s3", "s3a"):
        return S3Reader(rcfg)
    return StoreReader(open_store(store_url), rcfg)


def fetch_blobs(store_url: str, cfg: FetchConfig) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Batches of (blob_id, content_id[, src_encoding]) -> batches of ``schema.BLOB_RESULT`` (one row per input
    row). A given ``src_encoding`` is used to decode (published id tables); otherwise it is detected."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        reader = open_reader(store_url, cfg)
        pending: deque[list[str]] = deque()

        def requests() -> Iterator[tuple[str, str | None, str | None]]:
            for batch in batches:
                if batch.num_rows:
                    ids = batch.column("blob_id").to_pylist()
                    pending.append(ids)
                    cids = batch.column("content_id").to_pylist()
                    encs = (
                        batch.column("src_encoding").to_pylist()
                        if "src_encoding" in batch.schema.names
                        else [None] * len(ids)
                    )
                    yield from zip(ids, cids, encs, strict=True)

        outcomes: list[BlobOutcome] = []
        try:
            for o in fetch(reader, requests(), progress=Progress(label="fetch", every=30.0)):
                outcomes.append(o)
                if len(outcomes) == len(pending[0]):
                    ids = pending.popleft()
                    yield pa.RecordBatch.from_pydict(
                        {
                            "blob_id": ids,
                            "content": [x.content for x in outcomes],
                            "src_encoding": [x.src_encoding for x in outcomes],
                            "length_bytes": [x.length_bytes for x in outcomes],
                            "reason": [x.reason for x in outcomes],
                            "detail": [x.detail for x in outcomes],
                        },
                        schema=BLOB_RESULT,
                    )
                    outcomes = []
        finally:
            reader.close()

    return run
