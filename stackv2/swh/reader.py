"""One interface for reading content objects, whatever holds them: ``S3Reader`` (``stackv2.swh.s3fetch``) for
``s3://bucket[/prefix]`` stores, ``StoreReader`` over any ``ContentStore`` (local folders). Both hand every object
to ``text.decode.process_blob``, so the reasons are the same everywhere."""

from __future__ import annotations

from urllib.parse import urlparse

from stackv2.swh.config import FetchConfig
from stackv2.swh.content_store import CONTENT_PREFIX, ContentStore, StoreError, open_store
from stackv2.swh.s3fetch import S3Reader
from stackv2.text.decode import FETCH_ERROR, MISSING_OBJECT, BlobOutcome, process_blob


class StoreReader:
    """``S3Reader``'s interface over any ``ContentStore``."""

    def __init__(self, store: ContentStore, cfg: FetchConfig) -> None:
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
    """The reader of a content store URL: a folder, or ``s3://bucket[/prefix]`` (objects at ``prefix/content/``)."""
    parsed = urlparse(store_url)
    if parsed.scheme in ("s3", "s3a"):
        prefix = parsed.path.strip("/")
        return S3Reader(cfg, bucket=parsed.netloc, prefix=f"{prefix}/{CONTENT_PREFIX}" if prefix else CONTENT_PREFIX)
    return StoreReader(open_store(store_url), cfg)
