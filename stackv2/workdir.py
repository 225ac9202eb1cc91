"""The layout of a run's work folder, the manifest of each stage's outputs, and the lock a run holds, in one place.

* ``<work>/<stage>/``: what stage ``<stage>`` wrote (``pipelines._job``): ``data/part-NNNNN.parquet``, the rows
  it did not pass on in ``rejected/``, any other table beside them (``near_dedup/clusters``, ``pii/spans``),
  ``_stats.json``, and ``_SUCCESS`` (the manifest) last;
* ``<work>/shards/release/``: the release (``stackv2.release``, its own manifests), written by stage ``shards``;
* ``<work>/tokenize/tokens/``: the token files, written by stage ``tokenize``;
* ``<work>/tokenizer/tokenizer.json``: the tokenizer ``stackv2 tokenizer train`` learned (an input of
  ``tokenize``, kept when that stage reruns);
* ``<work>/report/``: ``stackv2 report``'s pages; ``<work>/optout_audit/``: ``stackv2 optout apply``'s audits;
* ``<work>/.lock``: the run using the folder (``work_lock``).

**The manifest.** ``<work>/<stage>/_SUCCESS`` is a small JSON object, written last and atomically
(``stackv2.atomic``), with no time or host in it (two runs of the same stage write the same bytes)::

    {
      "manifest": 1,                    format version
      "stage": "fetch",
      "config_hash": "9f2c...",         pipelines.runner.stage_hash: the stage, its settings and its upstream
      "previous": "optout",             the stage whose data it read as its input (null: it read the graph, the
                                        config's input, or stages by name only)
      "outputs": {                      every output folder the stage committed, files sorted by name
        "data": [{"name": "part-00000.parquet", "bytes": 81234, "rows": 310, "sha256": "4be1..."}, ...],
        "rejected": [...]
      }
    }

An output folder holds exactly the files its manifest lists. Readers take those files (``committed_files``), never
a folder listing; anything else found there (a stray copy, a dead task attempt's hidden file) is a problem
``output_problems`` reports, as is a listed file whose size, row count or sha256 differs. ``rows`` is the Parquet
footer's row count (null for a file that is not Parquet).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from stackv2.atomic import write_json
from stackv2.release.layout import sha256_file

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


def release_dir(work: str | Path) -> Path:
    return Path(work) / "shards" / "release"


def tokens_dir(work: str | Path) -> Path:
    return Path(work) / "tokenize" / "tokens"


def trained_tokenizer(work: str | Path) -> Path:
    return Path(work) / "tokenizer" / "tokenizer.json"


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


def describe(path: str | Path, rows: int | None = None, name: str | None = None) -> FileEntry:
    """The manifest entry of a file as it is on disk, listed as ``name`` (default: its own); ``rows`` is read from
    the footer of a Parquet file unless given."""
    path = Path(path)
    name = name or path.name
    if rows is None and name.endswith(".parquet"):
        rows = pq.ParquetFile(path).metadata.num_rows
    return FileEntry(name, path.stat().st_size, rows, sha256_file(path))


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

    def redescribe(self, output: str, files: dict[str, Path]) -> None:
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


def write_manifest(stage_dir: str | Path, manifest: Manifest) -> None:
    write_json(Path(stage_dir) / SUCCESS, manifest.to_dict(), indent=1, sort_keys=True)


def read_manifest(stage_dir: str | Path) -> Manifest | None:
    """The stage's manifest; None when it has no ``_SUCCESS`` (it has not completed). Raises ``ManifestError``."""
    p = Path(stage_dir) / SUCCESS
    try:
        text = p.read_text()
    except FileNotFoundError:
        return None
    try:
        return Manifest.from_dict(json.loads(text))
    except (ValueError, ManifestError) as e:
        why = e if isinstance(e, ManifestError) else "not JSON"
        raise ManifestError(f"{p}: {why} (written before manifests existed, or damaged)") from None


def committed_files(output_dir: str | Path) -> list[Path]:
    """The files the manifest of ``<stage>/<output>`` lists (what a reader may read), in name order."""
    output_dir = Path(output_dir)
    manifest = read_manifest(output_dir.parent)
    if manifest is None:
        raise FileNotFoundError(f"{output_dir.parent} has not completed (no {SUCCESS})")
    if output_dir.name not in manifest.outputs:
        raise FileNotFoundError(f"stage {manifest.stage!r} wrote no output {output_dir.name!r}")
    return [output_dir / f.name for f in manifest.outputs[output_dir.name]]


def _file_problem(path: Path, entry: FileEntry, deep: bool) -> str | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size != entry.bytes:
        return f"{size} bytes, the manifest says {entry.bytes}"
    if deep:
        return None if sha256_file(path) == entry.sha256 else "sha256 differs from the manifest's"
    if entry.rows is None:
        return None
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as e:  # any unreadable footer is the same problem
        return f"not a readable Parquet file ({type(e).__name__})"
    return None if rows == entry.rows else f"{rows} rows, the manifest says {entry.rows}"


def output_problems(stage_dir: str | Path, manifest: Manifest, deep: bool = True) -> list[str]:
    """Differences between the output folders and the manifest, one line each: missing or changed files (size, and
    sha256 when ``deep``, else the footer's row count) and files the manifest does not list."""
    stage_dir = Path(stage_dir)
    problems, checks = [], []
    for output, entries in sorted(manifest.outputs.items()):
        folder = stage_dir / output
        if not folder.is_dir():
            problems.append(f"{output}/: missing")
            continue
        listed = {e.name for e in entries}
        problems += [
            f"{output}/{p.name}: not in the manifest (a stray file)"
            for p in sorted(folder.iterdir())
            if p.name not in listed
        ]
        checks += [(f"{output}/{e.name}", folder / e.name, e) for e in entries]
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        found = pool.map(lambda c: _file_problem(c[1], c[2], deep), checks)
        problems += [f"{name}: {problem}" for (name, _, _), problem in zip(checks, found, strict=True) if problem]
    return problems


def adopt_outputs(
    stage_dir: str | Path, *outputs: str, config_hash: str = "", previous: str | None = None
) -> Manifest:
    """Commit output folders written by hand or by another tool (test fixtures, benchmarks, a dataset imported as a
    stage): their non-hidden Parquet files are listed in a new manifest as they are, anything else in them (Spark's
    ``_SUCCESS`` and ``.crc`` files) is removed. ``outputs``: the folders (default: every folder of the stage)."""
    stage_dir = Path(stage_dir)
    names = outputs or tuple(sorted(p.name for p in stage_dir.iterdir() if p.is_dir()))
    committed = {}
    for name in names:
        folder = stage_dir / name
        for p in folder.iterdir():
            if p.name.startswith(".") or p.suffix != ".parquet":
                p.unlink()
        committed[name] = [describe(p) for p in sorted(folder.glob("*.parquet"))]
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


@contextmanager
def work_lock(work: str | Path, command: str, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``<work>/.lock`` while the body runs; raise ``WorkDirBusy`` (one line, naming the holder) if another run
    holds it.

    Two guards: ``flock`` on the file (the kernel drops it when its process dies, even by ``kill -9``) and the
    holder's record in it (pid, host, boot, process start, time, command). A record whose holder is gone is taken
    over and said so: on the same host, gone means no process with its pid and start time (or another boot). A
    record from another host is never taken over, since not every shared file system carries ``flock`` between
    hosts: when that run is dead, remove the file by hand (the message says so). The file is emptied, not removed,
    on release, so no run ever locks a file another has just unlinked.
    """
    path = Path(work) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    held = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            who = _holder_text(holder) if holder else "another run (it has not written its record yet)"
            raise WorkDirBusy(f"work folder {Path(work)} is in use by {who}: wait for it to finish") from None
        holder = _read_holder(fd)
        if holder:
            if not _gone(holder):
                raise WorkDirBusy(
                    f"work folder {Path(work)} is recorded as in use by {_holder_text(holder)}: if that run is no "
                    f"longer running, remove {path}"
                )
            if log is not None:
                log(f"[stackv2] {path}: taking over the lock of {_holder_text(holder)}, which is gone")
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "boot_id": _boot_id(),
            "pid_start": _start_ticks(os.getpid()),
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        held = True
        yield
    finally:
        if held:
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock


def _read_holder(fd: int) -> dict[str, Any]:
    size = os.fstat(fd).st_size
    try:
        holder = json.loads(os.pread(fd, size, 0) or b"{}")
    except ValueError:
        return {"pid": "?", "host": "?", "started": "?", "command": "an unreadable record"}
    return holder if isinstance(holder, dict) else {}
