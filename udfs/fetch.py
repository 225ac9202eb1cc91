"""Fetch adapter: a ``mapInArrow`` function reading unique blobs from a content store, many in flight per task."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from stackv2.config import FetchConfig
from stackv2.schema import BLOB_RESULT
from stackv2.swh.content_store import ContentStore, StoreError, open_store
from stackv2.text.decode import FETCH_ERROR, MISSING_OBJECT, BlobOutcome, process_blob


def fetch_one(store: ContentStore, blob_id: str, content_id: str | None, cfg: FetchConfig) -> BlobOutcome:
    try:
        gz = store.get(blob_id)
    except StoreError as e:
        return BlobOutcome(reason=FETCH_ERROR, detail=str(e))
    if gz is None:
        return BlobOutcome(reason=MISSING_OBJECT)
    return process_blob(blob_id, gz, content_id=content_id, max_length=cfg.max_length, verify=cfg.verify_hashes)


def fetch_blobs(store_url: str, cfg: FetchConfig) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Batches of (blob_id, content_id) -> batches of ``schema.BLOB_RESULT`` (one row per input row)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        store = open_store(store_url, endpoint_url=cfg.endpoint_url, region=cfg.region, unsigned=cfg.unsigned)
        with ThreadPoolExecutor(cfg.concurrency) as pool:
            for batch in batches:
                ids = batch.column("blob_id").to_pylist()
                cids = batch.column("content_id").to_pylist()
                outcomes = pool.map(lambda a: fetch_one(store, a[0], a[1], cfg), zip(ids, cids, strict=True))
                rows = [{"blob_id": b, "content": o.content, "src_encoding": o.src_encoding,
                         "length_bytes": o.length_bytes, "reason": o.reason, "detail": o.detail}
                        for b, o in zip(ids, outcomes, strict=True)]
                yield pa.RecordBatch.from_pylist(rows, schema=BLOB_RESULT)

    return run
