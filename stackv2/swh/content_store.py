"""Content stores: where SWH keeps file bytes, gzip-compressed, at ``content/<sha1>`` (docs/spec.md §1.6).

A store is named by a URL: a local folder (``/data/swh`` or ``file:///data/swh``) or an S3 location
(``s3://softwareheritage`` or ``s3://bucket/prefix``). S3 access goes through boto3, so its standard settings
(credential chain, ``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``) apply; ``unsigned=True`` reads public buckets
anonymously. Credentials are never logged or written anywhere by this module.
"""

from __future__ import annotations

import gzip
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from stackv2.atomic import write_bytes

CONTENT_PREFIX = "content/"


class StoreError(RuntimeError):
    """The store could not be reached or answered with an error other than 'not found'."""


class ContentStore(Protocol):
    url: str

    def get(self, sha1: str) -> bytes | None:
        """The stored (gzip) bytes of ``sha1``, or ``None`` when the object does not exist."""

    def put(self, sha1: str, data: bytes) -> None:
        """Store raw ``data`` under ``sha1``, gzip-compressed; a no-op if it is already there."""


def compress(data: bytes) -> bytes:
    """Deterministic gzip (mtime 0), so rebuilding an archive gives byte-identical objects."""
    return gzip.compress(data, compresslevel=6, mtime=0)


@dataclass
class LocalStore:
    root: Path

    @property
    def url(self) -> str:
        return str(self.root)

    def path(self, sha1: str) -> Path:
        return self.root / CONTENT_PREFIX / sha1

    def get(self, sha1: str) -> bytes | None:
        try:
            return self.path(sha1).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"cannot read {self.path(sha1)}: {e}") from e

    def put(self, sha1: str, data: bytes) -> None:
        target = self.path(sha1)
        if target.exists():
            return
        # Tagged per thread: the archive builder may store the same blob from two threads at once.
        write_bytes(target, compress(data), tag=f"{os.getpid()}-{threading.get_ident()}")


def make_s3_client(
    endpoint_url: str | None = None, region: str | None = None, unsigned: bool = False, max_pool_connections: int = 64
) -> Any:
    """A boto3 S3 client; endpoint, region and credentials fall back to boto3's standard chain."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(
        signature_version=UNSIGNED if unsigned else None,
        max_pool_connections=max_pool_connections,
        retries={"max_attempts": 5, "mode": "adaptive"},
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


@dataclass
class S3Store:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    unsigned: bool = False
    _client: Any = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_s3_client(self.endpoint_url, self.region, self.unsigned)
        return self._client

    def key(self, sha1: str) -> str:
        return f"{self.prefix}{CONTENT_PREFIX}{sha1}"

    def get(self, sha1: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(sha1))["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StoreError(f"s3://{self.bucket}/{self.key(sha1)}: {e.response.get('Error', {}).get('Code')}") from e
        except BotoCoreError as e:
            raise StoreError(f"s3://{self.bucket}/{self.key(sha1)}: {type(e).__name__}") from e

    def put(self, sha1: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(sha1), Body=compress(data))


def open_store(
    url: str, *, endpoint_url: str | None = None, region: str | None = None, unsigned: bool = False
) -> ContentStore:
    """Open a content store by URL (local folder, ``file://`` or ``s3://``)."""
    if not url:
        raise ValueError("no content store given (a folder or s3://bucket[/prefix])")
    parsed = urlparse(url)
    if parsed.scheme in ("s3", "s3a"):
        prefix = parsed.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return S3Store(parsed.netloc, prefix, endpoint_url, region, unsigned)
    if parsed.scheme in ("", "file"):
        return LocalStore(Path(parsed.path if parsed.scheme else url))
    raise ValueError(f"unsupported content store URL {url!r}: expected a folder, file:// or s3://")
