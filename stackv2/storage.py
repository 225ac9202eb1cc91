"""Where a run's files live: a local folder, or any file system pyarrow reaches (S3 and S3-compatible stores, GCS,
HDFS), behind one small interface, so the driver, the writer tasks and the tools read and write the same way.

``location("s3://bucket/run-1") / "fetch" / "data"`` names a place; its methods do the rest (``open_input``,
``open_output``, ``list``, ``delete``, ``exists``, ``move_or_copy``, ...). A ``Location`` is just its URI, so it
travels to executors as a string and each process opens the file system itself:

* local: a plain absolute path (``file://`` accepted); ``os.replace`` renames, temporary names beside the target;
* ``s3://`` (``s3a://`` and ``s3n://`` are the same bucket): pyarrow's ``S3FileSystem`` with the usual AWS chain
  for credentials (environment, ``~/.aws``, SSO, instance or pod role), the endpoint of ``AWS_ENDPOINT_URL_S3``
  (or ``AWS_ENDPOINT_URL``: SeaweedFS, MinIO, Ceph) and the region of ``AWS_REGION``/``AWS_DEFAULT_REGION`` (else
  the bucket's own); requests are retried ``S3_ATTEMPTS`` times with exponential backoff (a 503 storm);
* anything else pyarrow's ``FileSystem.from_uri`` opens (``gs://``, ``hdfs://``).

Object stores have no rename and no folders: an object appears whole when its upload completes, or not at all,
and a "folder" is a key prefix. So the writes that must never be seen half done are single uploads
(``write_bytes``, ``atomic_output``), and a set of files is committed by a manifest written last
(``stackv2.workdir``), never by renaming a folder. ``move_or_copy`` renames on a local disk and copies then deletes
on an object store (a server-side copy: no bytes pass through this process).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

#: Tries per S3 request (the first and its retries, exponential backoff from 25 ms): rides out a throttling storm.
S3_ATTEMPTS = 10
#: Read and hash in chunks this large (a remote read pays per request, not per byte).
CHUNK = 8 << 20
#: The largest object S3 copies in one request (CopyObject); a larger one is copied through this machine.
MAX_SERVER_COPY = 5 << 30
_S3_SCHEMES = ("s3", "s3a", "s3n")
_LOCAL = pafs.LocalFileSystem()


def temp_path(target: str | os.PathLike, tag: str | int = "") -> Path:
    """The temporary name of a local ``target``: ``.<name>.tmp`` (``.<name>.tmp-<tag>`` with a tag), beside it.
    Hidden, so Spark, pyarrow datasets and folder scans never take one for data. A writer that may race another
    writer of the same target (Spark task attempts) gives a tag of its own; one that must find its temporary file
    again after a crash (``optout apply``'s journal) uses the untagged name."""
    target = Path(target)
    return target.with_name(f".{target.name}.tmp" + (f"-{tag}" if tag != "" else ""))


@contextmanager
def atomic_path(target: str | os.PathLike, tag: str | int = "") -> Iterator[Path]:
    """Yield the temporary path to write for a local ``target``; on success it replaces ``target``
    (``os.replace``: atomic on one file system), on an error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target, tag)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Location:
    """A file or folder: ``prefix`` + ``path``, where ``path`` is what the file system calls it (``bucket/key`` on
    S3, an absolute path locally) and ``prefix`` the URI scheme and authority before it (empty for a local path)."""

    __slots__ = ("path", "prefix")

    def __init__(self, prefix: str, path: str):
        self.prefix = prefix
        self.path = path

    # --- naming ---------------------------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self.prefix + self.path

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and self.uri == other.uri

    def __lt__(self, other: Location) -> bool:
        return self.uri < other.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __reduce__(self) -> tuple[Any, ...]:
        return Location, (self.prefix, self.path)

    def __fspath__(self) -> str:
        """The local path (``open``, ``pq.read_table`` ... take a local ``Location`` as they take a ``Path``)."""
        if not self.is_local:
            raise TypeError(f"{self.uri} is not a local path")
        return self.path

    def __truediv__(self, name: str | os.PathLike) -> Location:
        name = os.fspath(name).strip("/")
        return Location(self.prefix, f"{self.path.rstrip('/')}/{name}" if name else self.path)

    @property
    def is_local(self) -> bool:
        return not self.prefix

    @property
    def local_path(self) -> Path:
        if not self.is_local:
            raise ValueError(f"{self.uri} is not a local path")
        return Path(self.path)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        dot = self.name.rfind(".")
        return self.name[dot:] if dot > 0 else ""

    @property
    def parent(self) -> Location:
        head = self.path.rstrip("/").rsplit("/", 1)[0]
        return Location(self.prefix, head or "/")

    def relative_to(self, base: Location) -> str:
        """This location's path below ``base`` (``a/b``); raises ``ValueError`` when it is not below it."""
        root = base.path.rstrip("/") + "/"
        if self.prefix != base.prefix or not self.path.startswith(root):
            raise ValueError(f"{self.uri} is not below {base.uri}")
        return self.path[len(root) :]

    def is_relative_to(self, base: Location) -> bool:
        return self == base or (self.prefix == base.prefix and self.path.startswith(base.path.rstrip("/") + "/"))

    def temp(self) -> Location:
        """This file's temporary name, beside it and hidden (``temp_path``): staged there, then moved over it."""
        return self.parent / temp_path(self.name).name

    def _at(self, path: str) -> Location:
        return Location(self.prefix, path)

    # --- the file system ------------------------------------------------------------------------------------

    @property
    def fs(self) -> pafs.FileSystem:
        if self.is_local:
            return _LOCAL
        if self.prefix == "s3://":
            return _s3(self.path.split("/", 1)[0], *_s3_settings())
        root = "" if self.path.startswith("/") else self.path.split("/", 1)[0]  # gs://bucket/...: the bucket
        return _from_uri(self.prefix + root)

    def info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def size(self) -> int:
        info = self.info()
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(f"{self.uri}: no such file")
        return info.size

    def list(self) -> list[Location]:
        """The files and folders directly in this folder, by name (none when it does not exist)."""
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        return sorted(self._at(i.path) for i in self.fs.get_file_info(selector))

    def folders(self) -> list[Location]:
        """The folders directly in this folder (key prefixes on an object store), by name."""
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        return sorted(self._at(i.path) for i in infos if i.type == pafs.FileType.Directory)

    def files(self, recursive: bool = True) -> list[Location]:
        """The files in this folder (and, ``recursive``, in the folders below), by path."""
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=recursive)
        return sorted(self._at(i.path) for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File)

    # --- reading --------------------------------------------------------------------------------------------

    def open_input(self) -> pa.NativeFile:
        """A random-access file (Parquet footers, ranged reads)."""
        return self.fs.open_input_file(self.path)

    def open_input_stream(self) -> pa.NativeFile:
        return self.fs.open_input_stream(self.path)

    def read_bytes(self) -> bytes:
        with self.open_input_stream() as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def sha256(self) -> str:
        h = hashlib.sha256()
        with self.open_input_stream() as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return h.hexdigest()

    # --- writing --------------------------------------------------------------------------------------------

    def mkdir(self) -> None:
        """Create the folder (and its parents) on a local disk; nothing to do on an object store."""
        if self.is_local:
            os.makedirs(self.path, exist_ok=True)

    def open_output(self) -> pa.NativeFile:
        """Write this file in place, streaming (local: created at once; object store: it appears when the stream
        closes). Not atomic: for files under a staging prefix or temporary name; else ``atomic_output``."""
        if self.is_local:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return self.fs.open_output_stream(self.path)

    @contextmanager
    def atomic_output(self) -> Iterator[IO[bytes]]:
        """Yield a binary file to write; on success it becomes this file at once, on an error nothing changes.
        Local: a temporary name beside it, renamed over it. Object store: a local spool file, uploaded whole
        (one upload that completes or never appears)."""
        if self.is_local:
            with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
                yield f
            return
        with tempfile.TemporaryFile() as spool:
            yield spool
            spool.seek(0)
            with self.fs.open_output_stream(self.path) as out:
                shutil.copyfileobj(spool, out, CHUNK)

    def write_bytes(self, data: bytes) -> None:
        """Replace this file by ``data`` at once (readers see the old file or the new one)."""
        if self.is_local:
            with atomic_path(self.path) as tmp:
                tmp.write_bytes(data)
            return
        with self.fs.open_output_stream(self.path) as out:
            out.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def upload(self, source: str | os.PathLike) -> None:
        """Replace this file by the local file ``source`` at once."""
        if self.is_local:
            with atomic_path(self.path) as tmp:
                shutil.copyfile(source, tmp)
            return
        with open(source, "rb") as f, self.fs.open_output_stream(self.path) as out:
            shutil.copyfileobj(f, out, CHUNK)

    def delete(self) -> None:
        """Remove this file (nothing when it does not exist)."""
        with suppress(FileNotFoundError):
            self.fs.delete_file(self.path)

    def delete_tree(self) -> None:
        """Remove this folder and everything below it (nothing when it does not exist)."""
        if self.is_local:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        self.fs.delete_dir_contents(self.path, missing_dir_ok=True)
        with suppress(OSError):  # the folder's marker object, when the store made one
            self.fs.delete_dir(self.path)

    def move_or_copy(self, target: Location) -> None:
        """Give this file the name ``target`` (replacing it): a rename on a local disk, a server-side copy then a
        delete on an object store (no rename there), through this machine above ``MAX_SERVER_COPY``."""
        if self.is_local and target.is_local:
            os.makedirs(os.path.dirname(target.path), exist_ok=True)
            os.replace(self.path, target.path)
        elif self._copied_by_server(target):
            self.fs.move(self.path, target.path)
        else:
            self.copy_to(target)
            self.delete()

    def _copied_by_server(self, target: Location) -> bool:
        return not self.is_local and self.prefix == target.prefix and self.size() <= MAX_SERVER_COPY

    def copy_to(self, target: Location) -> None:
        """Copy this file to ``target`` (replacing it at once)."""
        if self.is_local:
            target.upload(self.path)
        elif self._copied_by_server(target):
            self.fs.copy_file(self.path, target.path)
        else:
            with target.atomic_output() as out, self.open_input_stream() as f:
                while chunk := f.read(CHUNK):
                    out.write(chunk)

    @contextmanager
    def local_copy(self) -> Iterator[Path]:
        """A local path holding this file while the body runs: the file itself when local, else a temporary
        download (for readers that need a path: memory maps, third-party libraries)."""
        if self.is_local:
            yield self.local_path
            return
        with tempfile.TemporaryDirectory(prefix="stackv2-") as tmp:
            path = Path(tmp) / self.name
            with open(path, "wb") as out, self.open_input_stream() as f:
                while chunk := f.read(CHUNK):
                    out.write(chunk)
            yield path

    @contextmanager
    def local_tree(self, names: Iterable[str] | None = None) -> Iterator[Path]:
        """A local folder holding this folder's files while the body runs: the folder itself when local, else a
        temporary download of its files (``names``: only those, relative paths, the missing ones skipped), for
        readers that need paths (memory maps)."""
        if self.is_local:
            yield self.local_path
            return
        wanted = None if names is None else {self / n for n in names}
        with tempfile.TemporaryDirectory(prefix="stackv2-") as tmp:
            for f in self.files():
                if wanted is None or f in wanted:
                    target = Path(tmp) / f.relative_to(self)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open(target, "wb") as out, f.open_input_stream() as src:
                        shutil.copyfileobj(src, out, CHUNK)
            yield Path(tmp)


def location(where: str | os.PathLike | Location) -> Location:
    """The ``Location`` of a local path or a URI (``s3://``, ``s3a://``, ``gs://``, ``hdfs://``, ``file://``)."""
    if isinstance(where, Location):
        return where
    text = os.fspath(where)
    scheme, sep, rest = text.partition("://")
    if not sep or scheme == "file":
        return Location("", os.path.abspath(os.path.expanduser(rest if sep else text)))
    if scheme in _S3_SCHEMES:
        bucket = rest.split("/", 1)[0]
        if not bucket:
            raise ValueError(f"{text}: no bucket")
        return Location("s3://", rest.rstrip("/") or bucket)
    _, path = pafs.FileSystem.from_uri(text)
    if path.startswith("/"):  # hdfs://host:port/path: the authority names the file system
        return Location(f"{scheme}://{urlsplit(text).netloc}", path.rstrip("/") or "/")
    return Location(f"{scheme}://", path.rstrip("/"))  # gs://bucket/key: the bucket starts the path


def is_remote(where: str | os.PathLike | Location) -> bool:
    return not location(where).is_local


def like(original: str | os.PathLike | Location, found: Location) -> Path | Location:
    """``found`` in the kind of ``original``: a ``Path`` for a local path or ``Path`` given, else the
    ``Location`` (helpers that accept both hand back what they were given)."""
    if found.is_local and not isinstance(original, Location):
        return found.local_path
    return found


# --- S3 -----------------------------------------------------------------------------------------------------


def _s3_settings() -> tuple[str | None, str | None]:
    """(endpoint URL, region) as the AWS tools read them from the environment."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return endpoint, region


@cache
def _s3(bucket: str, endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    """One ``S3FileSystem`` per bucket and settings in a process (credentials: the AWS SDK's default chain)."""
    options: dict[str, Any] = {"retry_strategy": pafs.AwsDefaultS3RetryStrategy(max_attempts=S3_ATTEMPTS)}
    if endpoint:
        url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=url.netloc, scheme=url.scheme)
        region = region or "us-east-1"
    elif region is None:
        region = pafs.resolve_s3_region(bucket)
    return pafs.S3FileSystem(region=region, **options)


@cache
def _from_uri(root: str) -> pafs.FileSystem:
    return pafs.FileSystem.from_uri(root)[0]


def s3_client():
    """A boto3 S3 client with the same endpoint and region as the file system (the few requests pyarrow cannot
    make: conditional writes, ``stackv2.workdir``'s lock)."""
    import boto3
    from botocore.config import Config

    endpoint, region = _s3_settings()
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region or ("us-east-1" if endpoint else None),
        config=Config(
            retries={"max_attempts": S3_ATTEMPTS, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint else {},
        ),
    )


def s3_key(loc: Location) -> tuple[str, str]:
    """(bucket, key) of an ``s3://`` location."""
    if loc.prefix != "s3://":
        raise ValueError(f"{loc.uri} is not on S3")
    bucket, _, key = loc.path.partition("/")
    return bucket, key


# --- Parquet through the file system ------------------------------------------------------------------------


class HashingWriter:
    """A binary file that passes what is written on to ``raw`` and keeps its size and sha256, so a writer task
    learns its file's checksum without reading it back (from a remote store, that would be a second transfer)."""

    def __init__(self, raw: Any):
        self._raw = raw
        self._sha = hashlib.sha256()
        self.bytes = 0
        self.closed = False

    def write(self, data: Any) -> int:
        self._raw.write(data)
        self._sha.update(data)
        n = memoryview(data).nbytes
        self.bytes += n
        return n

    def tell(self) -> int:
        return self.bytes

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
            self.closed = True

    def writable(self) -> bool:
        return True

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


def parquet_file(loc: str | os.PathLike | Location) -> pq.ParquetFile:
    """A Parquet file's reader (footer first: ``.metadata`` reads nothing else)."""
    loc = location(loc)
    return pq.ParquetFile(loc.path if loc.is_local else loc.open_input(), pre_buffer=not loc.is_local)


def read_table(loc: str | os.PathLike | Location, columns: Iterable[str] | None = None) -> pa.Table:
    loc = location(loc)
    return pq.read_table(loc.path, columns=None if columns is None else list(columns), filesystem=loc.fs)


def read_schema(loc: str | os.PathLike | Location) -> pa.Schema:
    return parquet_file(loc).schema_arrow


def dataset(files: Iterable[str | os.PathLike | Location]) -> ds.Dataset:
    """A pyarrow dataset of the given Parquet files (all on one file system)."""
    locs = [location(f) for f in files]
    fs = locs[0].fs if locs else _LOCAL
    return ds.dataset([f.path for f in locs], format="parquet", filesystem=fs)
