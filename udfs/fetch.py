"""Fetch adapter: a ``mapInArrow`` function reading unique blobs from a content store, many in flight per task.

``stackv2.swh.reader.open_reader`` gives the store's reader (the lean S3 reader for ``s3://`` stores: keep-alive
connections, botocore's signer, backoff with a retry budget; ``ContentStore.get`` for folders). One reader and
one pool of workers live for the whole task, not per Arrow batch, so connections are reused across batches,
and ``s3fetch.fetch`` keeps a bounded window of requests in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

import pyarrow as pa

from stackv2.schema import BLOB_RESULT
from stackv2.swh.config import FetchConfig
from stackv2.swh.reader import open_reader
from stackv2.swh.s3fetch import Progress, fetch
from stackv2.text.decode import BlobOutcome

#: The input columns ``fetch_blobs`` reads; any other column is passed through to its output.
REQUEST_COLUMNS = ("blob_id", "content_id", "src_encoding")


def fetch_blobs(store_url: str, cfg: FetchConfig) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Batches of (blob_id, content_id[, src_encoding], carried columns...) -> batches of ``schema.BLOB_RESULT``
    followed by the carried columns, unchanged (one row per input row). A given ``src_encoding`` is used to decode
    (published id tables); otherwise it is detected."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        reader = open_reader(store_url, cfg)
        pending: deque[tuple[list[str], pa.RecordBatch]] = deque()

        def requests() -> Iterator[tuple[str, str | None, str | None]]:
            for batch in batches:
                if batch.num_rows:
                    ids = batch.column("blob_id").to_pylist()
                    pending.append((ids, batch.drop_columns([c for c in REQUEST_COLUMNS if c in batch.schema.names])))
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
                if len(outcomes) == len(pending[0][0]):
                    ids, carried = pending.popleft()
                    result = pa.RecordBatch.from_pydict(
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
                    yield pa.RecordBatch.from_arrays(
                        [*result.columns, *carried.columns],
                        schema=pa.schema([*BLOB_RESULT, *carried.schema]),
                    )
                    outcomes = []
        finally:
            reader.close()

    return run
