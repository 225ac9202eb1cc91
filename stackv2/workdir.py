"""The layout of a run's work folder, the manifest of each stage's outputs, and the lock a run holds, in one place.

* ``<work>/<stage>/``: what stage ``<stage>`` wrote (``pipelines._job``): ``data/part_NNNNN.parquet``, the rows
  it did not pass on in ``rejected/``, any other table beside them (``near_dedup/clusters``, ``pii/spans``),
  ``_stats.json``, and ``_SUCCESS`` (the manifest) last;
* ``<work>/shards/release/``: the release (``stackv2.release``, its own manifests), written by stage ``shards``;
* ``<work>/tokenize/tokens/``: the token files, written by stage ``tokenize``;
* ``<work>/tokenizer/tokenizer.json``: the tokenizer ``stackv2 tokenizer train`` learned (an input of
  ``tokenize``, kept when that stage reruns);
* ``<work>/report/``: ``stackv2 report``'s pages; ``<work>/optout_audit/``: ``stackv2 optout apply``'s audits;
* ``<work>/.lock``: the run using the folder (``work_lock``);
* ``<work>/<stage>/.<output>.tmp/``: while a stage writes, its task attempts' files (``staging_dir``), never read.

``<work>`` is a local folder or a URI (``s3://bucket/run``): everything here goes through ``stackv2.storage``.

**The manifest.** ``<work>/<stage>/_SUCCESS`` is a small JSON object, written last and atomically
(``stackv2.atomic``), with no time or host in it (two runs of the same stage write the same bytes)::

    {
      "manifest": 1,                    format version
      "stage": "fetch",
      "config_hash": "9f2c...",         pipelines.runner.stage_hash: the stage, its settings and its upstream
      "previous": "optout",             the stage whose data it read as its input (null: it read the graph, the
                                        config's input, or stages by name only)
      "outputs": {                      every output folder the stage committed, files sorted by name
        "data": [{"name": "part_00000.parquet", "bytes": 81234, "rows": 310, "sha256": "4be1..."}, ...],
        "rejected": [...]
      }
    }

An output folder holds exactly the files its manifest lists. Readers take those files (``committed_files``), never
a folder listing; anything else found there (a stray copy, a dead task attempt's hidden file) is a problem
``output_problems`` reports, as is a listed file whose size, row count or sha256 differs. ``rows`` is the Parquet
footer's row count (null for a file that is not Parquet).

**The commit needs no rename.** Task attempts write under the staging folder; the driver gives the accepted
attempts' files their names in the output folder (a rename locally, a server-side copy on an object store), writes
``_stats.json``, then the manifest, then removes the staging folder. The manifest is one atomic write, so a stage
killed before it has no ``_SUCCESS`` and nothing in its folders is taken by a reader; one killed after it has
committed, and its leftover staging folder is removed when the stage is next checked or rerun.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import fcntl
import json
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stackv2.atomic import write_json
from stackv2.storage import Location, like, location, parquet_file, s3_client, s3_key

DATA = "data"
REJECTED = "rejected"
STATS = "_stats.json"
SUCCESS = "_SUCCESS"
REPORT = "report"
OPTOUT_AUDIT = "optout_audit"
LOCK = ".lock"
MANIFEST_VERSION = 1
#: Files hashed at once when outputs are verified (hashlib releases the GIL: reading and hashing overlap).
HASH_THREADS = 8

Where = str | os.PathLike | Location


def release_dir(work: Where) -> Path | Location:
    return like(work, location(work) / "shards" / "release")


def tokens_dir(work: Where) -> Path | Location:
    return like(work, location(work) / "tokenize" / "tokens")


def trained_tokenizer(work: Where) -> Path | Location:
    return like(work, location(work) / "tokenizer" / "tokenizer.json")


def staging_dir(output_dir: Where) -> Location:
    """Where the task attempts of an output folder's write put their files (``.<output>.tmp`` beside it): nothing
    there is ever read, and it is removed once the stage has committed."""
    output_dir = location(output_dir)
    return output_dir.parent / f".{output_dir.name}.tmp"


# --- the manifest -----------------------------------------------------------------------------------------------


class ManifestError(ValueError):
    """A ``_SUCCESS`` that is not a manifest (written before manifests existed, or damaged)."""


@dataclass(frozen=True)
class FileEntry:
    """One committed file of an output folder."""

    name: str
    bytes: int
    #: Rows in the Parquet footer; None for a file that is not Parquet.
    rows: int | None
    sha256: str


def describe(path: Where, rows: int | None = None, name: str | None = None) -> FileEntry:
    """The manifest entry of a file as it is now, listed as ``name`` (default: its own); ``rows`` is read from the
    footer of a Parquet file unless given."""
    loc = location(path)
    name = name or loc.name
    if rows is None and name.endswith(".parquet"):
        rows = parquet_file(loc).metadata.num_rows
    return FileEntry(name, loc.size(), rows, loc.sha256())


@dataclass
class Manifest:
    stage: str
    config_hash: str
    #: The stage whose ``data`` this one read as its input (None: the graph, the config's input, or stages by name).
    previous: str | None
    #: Output folder name -> its committed files, sorted by name.
    outputs: dict[str, list[FileEntry]]

    def rows(self, output: str) -> int:
        return sum(f.rows or 0 for f in self.outputs[output])

    def redescribe(self, output: str, files: dict[str, Where]) -> None:
        """Describe listed files of ``output`` again: ``files`` maps a listed name to the file that holds (or, staged
        beside it, will replace) it. For tools that rewrite committed files in place (``stackv2 optout apply``), so
        the manifest they write with them keeps telling the truth."""
        self.outputs[output] = [
            describe(files[f.name], name=f.name) if f.name in files else f for f in self.outputs[output]
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": MANIFEST_VERSION,
            "stage": self.stage,
            "config_hash": self.config_hash,
            "previous": self.previous,
            "outputs": {
                name: [asdict(f) for f in sorted(files, key=lambda f: f.name)]
                for name, files in sorted(self.outputs.items())
            },
        }

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        if not isinstance(d, dict) or d.get("manifest") != MANIFEST_VERSION:
            raise ManifestError(f"not a version-{MANIFEST_VERSION} manifest")
        try:
            return cls(
                stage=d["stage"],
                config_hash=d["config_hash"],
                previous=d["previous"],
                outputs={name: [FileEntry(**f) for f in files] for name, files in d["outputs"].items()},
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise ManifestError(f"not a valid manifest ({e!r})") from None


def write_manifest(stage_dir: Where, manifest: Manifest) -> None:
    """Commit the stage: one atomic write (a rename locally, one upload on an object store)."""
    write_json(location(stage_dir) / SUCCESS, manifest.to_dict(), indent=1, sort_keys=True)


def read_manifest(stage_dir: Where) -> Manifest | None:
    """The stage's manifest; None when it has no ``_SUCCESS`` (it has not completed). Raises ``ManifestError``."""
    p = location(stage_dir) / SUCCESS
    try:
        text = p.read_text()
    except FileNotFoundError:
        return None
    try:
        return Manifest.from_dict(json.loads(text))
    except (ValueError, ManifestError) as e:
        why = e if isinstance(e, ManifestError) else "not JSON"
        raise ManifestError(f"{p}: {why} (written before manifests existed, or damaged)") from None


def committed_files(output_dir: Where) -> list[Path] | list[Location]:
    """The files the manifest of ``<stage>/<output>`` lists (what a reader may read), in name order; ``Path``s for
    a local folder given as a path, else ``Location``s."""
    folder = location(output_dir)
    manifest = read_manifest(folder.parent)
    if manifest is None:
        raise FileNotFoundError(f"{folder.parent} has not completed (no {SUCCESS})")
    if folder.name not in manifest.outputs:
        raise FileNotFoundError(f"stage {manifest.stage!r} wrote no output {folder.name!r}")
    return [like(output_dir, folder / f.name) for f in manifest.outputs[folder.name]]


def _file_problem(loc: Location, entry: FileEntry, deep: bool) -> str | None:
    try:
        size = loc.size()
    except FileNotFoundError:
        return "missing"
    if size != entry.bytes:
        return f"{size} bytes, the manifest says {entry.bytes}"
    if deep:
        return None if loc.sha256() == entry.sha256 else "sha256 differs from the manifest's"
    if entry.rows is None:
        return None
    try:
        rows = parquet_file(loc).metadata.num_rows
    except Exception as e:  # any unreadable footer is the same problem
        return f"not a readable Parquet file ({type(e).__name__})"
    return None if rows == entry.rows else f"{rows} rows, the manifest says {entry.rows}"


def output_problems(stage_dir: Where, manifest: Manifest, deep: bool = True) -> list[str]:
    """Differences between the output folders and the manifest, one line each: missing or changed files (size, and
    sha256 when ``deep``, else the footer's row count) and files the manifest does not list."""
    stage_dir = location(stage_dir)
    problems, checks = [], []
    for output, entries in sorted(manifest.outputs.items()):
        folder = stage_dir / output
        found = folder.list()
        if not found and not folder.is_dir():
            problems.append(f"{output}/: missing")
            continue
        listed = {e.name for e in entries}
        problems += [f"{output}/{p.name}: not in the manifest (a stray file)" for p in found if p.name not in listed]
        checks += [(f"{output}/{e.name}", folder / e.name, e) for e in entries]
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        problems_found = pool.map(lambda c: _file_problem(c[1], c[2], deep), checks)
        problems += [
            f"{name}: {problem}" for (name, _, _), problem in zip(checks, problems_found, strict=True) if problem
        ]
    return problems


def adopt_outputs(stage_dir: Where, *outputs: str, config_hash: str = "", previous: str | None = None) -> Manifest:
    """Commit output folders written by hand or by another tool (test fixtures, benchmarks, a dataset imported as a
    stage): their non-hidden Parquet files are listed in a new manifest as they are, anything else in them (Spark's
    ``_SUCCESS`` and ``.crc`` files) is removed. ``outputs``: the folders (default: every folder of the stage)."""
    stage_dir = location(stage_dir)
    names = outputs or tuple(p.name for p in stage_dir.list() if p.is_dir())
    committed = {}
    for name in names:
        kept = []
        for p in (stage_dir / name).list():
            if p.name.startswith(".") or p.suffix != ".parquet":
                p.delete_tree() if p.is_dir() else p.delete()
            else:
                kept.append(p)
        committed[name] = [describe(p) for p in kept]
    manifest = Manifest(stage_dir.name, config_hash, previous, committed)
    write_manifest(stage_dir, manifest)
    return manifest


# --- the lock ---------------------------------------------------------------------------------------------------


class WorkDirBusy(RuntimeError):
    """Another run holds the work folder."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, Linux), None if there is no such process; tells a
    live holder from a new process that got its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        stat = ""
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) > 19:
        return int(fields[19])
    try:  # no /proc: whether the pid exists at all
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return -1


def _holder_text(holder: dict[str, Any]) -> str:
    return (
        f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('started')} ({holder.get('command')})"
    )


def _gone(holder: dict[str, Any]) -> bool:
    """Whether the recorded holder is known to be dead: only decidable on its own host (same boot, and no process
    with its pid and start time). On another host nothing can be known from here."""
    if holder.get("host") != socket.gethostname():
        return False
    if holder.get("boot_id") != _boot_id():
        return True  # the host has restarted since
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return True
    ticks = _start_ticks(pid)
    return ticks is None or (ticks >= 0 and ticks != holder.get("pid_start"))


def _record(command: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid_start": _start_ticks(os.getpid()),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
    }


class HeldLock:
    """The lock a run holds. ``check`` raises ``WorkDirBusy`` once it is known to be lost (an object-store lease
    that another run took over after it went unrenewed): the runner checks before each stage."""

    lost: str | None = None

    def check(self) -> None:
        if self.lost:
            raise WorkDirBusy(self.lost)


@contextmanager
def work_lock(work: Where, command: str, log: Callable[[str], None] | None = None) -> Iterator[HeldLock]:
    """Hold ``<work>/.lock`` while the body runs; raise ``WorkDirBusy`` (one line, naming the holder) if another run
    holds it. A local (or mounted) folder is locked with ``flock`` (``_local_lock``), a folder on S3 with a lease
    object created by a conditional PUT (``_lease``). Other object stores have no lock here: an error."""
    work = location(work)
    if not work.is_local and work.prefix != "s3://":
        raise ValueError(
            f"work folder {work}: no lock for this file system (a run needs a local or mounted folder, or S3, whose "
            "conditional writes make the lock)"
        )
    if work.is_local:
        with _local_lock(work.local_path, command, log) as held:
            yield held
    else:
        with _lease(work, command, log) as held:
            yield held


@contextmanager
def _local_lock(work: Path, command: str, log: Callable[[str], None] | None) -> Iterator[HeldLock]:
    """Two guards: ``flock`` on the file (the kernel drops it when its process dies, even by ``kill -9``) and the
    holder's record in it (pid, host, boot, process start, time, command). A record whose holder is gone is taken
    over and said so: on the same host, gone means no process with its pid and start time (or another boot). A
    record from another host is never taken over, since not every shared file system carries ``flock`` between
    hosts: when that run is dead, remove the file by hand (the message says so). The file is emptied, not removed,
    on release, so no run ever locks a file another has just unlinked."""
    path = work / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    held = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            who = _holder_text(holder) if holder else "another run (it has not written its record yet)"
            raise WorkDirBusy(f"work folder {work} is in use by {who}: wait for it to finish") from None
        holder = _read_holder(fd)
        if holder:
            if not _gone(holder):
                raise WorkDirBusy(
                    f"work folder {work} is recorded as in use by {_holder_text(holder)}: if that run is no "
                    f"longer running, remove {path}"
                )
            if log is not None:
                log(f"[stackv2] {path}: taking over the lock of {_holder_text(holder)}, which is gone")
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_record(command)) + "\n").encode(), 0)
        os.fsync(fd)
        held = True
        yield HeldLock()
    finally:
        if held:
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock


def _read_holder(fd: int) -> dict[str, Any]:
    size = os.fstat(fd).st_size
    return _parse_holder(os.pread(fd, size, 0))


def _parse_holder(data: bytes) -> dict[str, Any]:
    try:
        holder = json.loads(data or b"{}")
    except ValueError:
        return {"pid": "?", "host": "?", "started": "?", "command": "an unreadable record"}
    return holder if isinstance(holder, dict) else {}


# --- the lease on an object store -------------------------------------------------------------------------------

#: A lease not renewed for this long is expired: another run may take it over.
LEASE_SECONDS = 300
#: The holder renews its lease this often.
RENEW_SECONDS = 60


class _S3Object:
    """The lease object through S3's conditional requests: a PUT with ``If-None-Match: *`` creates it only where
    there is none, one with ``If-Match: <etag>`` replaces only the version read (AWS S3 since 2024, SeaweedFS,
    MinIO). Its age is measured on the server's clock (``Last-Modified`` against the response's ``Date``)."""

    def __init__(self, loc: Location):
        self.client = s3_client()
        self.bucket, self.key = s3_key(loc)

    def _refused(self, e: Exception) -> bool:
        code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
        return code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")

    def create(self, data: bytes) -> str | None:
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data, IfNoneMatch="*")["ETag"]
        except self.client.exceptions.ClientError as e:
            if self._refused(e):
                return None
            raise

    def replace(self, data: bytes, etag: str) -> str | None:
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data, IfMatch=etag)["ETag"]
        except self.client.exceptions.ClientError as e:
            if self._refused(e) or e.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise

    def read(self) -> tuple[bytes, str, float] | None:
        """(contents, etag, age in seconds), None when there is no lease object."""
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except self.client.exceptions.NoSuchKey:
            return None
        now = email.utils.parsedate_to_datetime(r["ResponseMetadata"]["HTTPHeaders"]["date"])
        return r["Body"].read(), r["ETag"], (now - r["LastModified"]).total_seconds()

    def delete(self, etag: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
        except self.client.exceptions.ClientError as e:
            if not self._refused(e) and e.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise


@contextmanager
def _lease(work: Location, command: str, log: Callable[[str], None] | None) -> Iterator[HeldLock]:
    """The lock of a work folder on S3: ``<work>/.lock``, an object holding the holder's record, created only where
    there is none (a conditional PUT: of two runs starting together, exactly one gets it) and renewed every
    ``RENEW_SECONDS`` by a background thread (a conditional PUT on the version it wrote).

    A lease held by a process known to be gone (this host, ``_gone``) or not renewed for ``LEASE_SECONDS`` (its
    holder died on another host, or lost the store) is taken over, with a conditional PUT on the version read, and
    said so. Limitation: a holder stalled longer than the lease (suspended, partitioned from the store) may find its
    lease taken over; it learns so at its next renewal and stops before its next stage (``HeldLock.check``), but a
    stage it is running meanwhile overlaps the new holder's run."""
    path = work / LOCK
    store = _S3Object(path)
    record = {**_record(command), "token": secrets.token_hex(8), "lease_seconds": LEASE_SECONDS}
    data = (json.dumps(record) + "\n").encode()
    etag = store.create(data)
    while etag is None:
        found = store.read()
        if found is None:  # released meanwhile
            etag = store.create(data)
            continue
        text, found_etag, age = found
        holder = _parse_holder(text)
        if holder.get("token") == record["token"]:  # our create went through, its answer was lost
            etag = found_etag
            break
        lease = holder.get("lease_seconds", LEASE_SECONDS)
        lease = float(lease) if isinstance(lease, int | float) else LEASE_SECONDS
        expired = age >= lease
        if not (expired or _gone(holder)):
            left = lease - age
            raise WorkDirBusy(
                f"work folder {work} is in use by {_holder_text(holder)} (lease renewed {age:.0f}s ago): if that run "
                f"is no longer running, its lease expires in {max(left, 0):.0f}s, or remove {path}"
            )
        etag = store.replace(data, found_etag)
        if etag is None:
            raise WorkDirBusy(f"work folder {work}: another run took over the lock of {_holder_text(holder)} first")
        if log is not None:
            why = "expired" if expired else "gone"
            log(f"[stackv2] {path}: taking over the lock of {_holder_text(holder)}, which is {why}")
    held = HeldLock()
    current = [etag]
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(RENEW_SECONDS):
            try:
                renewed = store.replace(data, current[0])
            except Exception as e:  # the store is unreachable for now: the next renewal tries again
                if log is not None:
                    log(f"[stackv2] {path}: lease not renewed ({type(e).__name__}), retrying")
                continue
            if renewed is None:
                held.lost = f"work folder {work}: the lock was taken over by another run (lease not renewed in time)"
                if log is not None:
                    log(f"[stackv2] {held.lost}")
                return
            current[0] = renewed

    thread = threading.Thread(target=renew, name="stackv2-lease", daemon=True)
    thread.start()
    try:
        yield held
    finally:
        stop.set()
        thread.join()
        if not held.lost:
            store.delete(current[0])
