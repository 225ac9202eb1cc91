"""One way to write a file or a folder so that readers see the old version or the new one, never a part of it:
write under a temporary name beside the target, then rename over it (``os.replace``: atomic on one file system).

Temporary names are hidden (``.<name>.tmp`` plus an optional tag), so Spark, pyarrow datasets and our own folder
scans never take one for data. A writer that may race another writer of the same target (Spark task attempts)
gives a tag of its own; one that must find its temporary file again after a crash (``optout apply``'s journal)
uses the untagged name.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temp_path(target: str | Path, tag: str | int = "") -> Path:
    """The temporary name of ``target``: ``.<name>.tmp`` (``.<name>.tmp-<tag>`` with a tag), beside it."""
    target = Path(target)
    return target.with_name(f".{target.name}.tmp" + (f"-{tag}" if tag != "" else ""))


@contextmanager
def atomic_path(target: str | Path, tag: str | int = "") -> Iterator[Path]:
    """Yield the temporary path to write; on success it replaces ``target``, on an error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target, tag)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a new empty temporary folder; on success it replaces ``target`` (the old folder is removed first, so
    the swap itself is two steps), on an error it is removed."""
    target = Path(target)
    tmp = temp_path(target)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(target: str | Path, data: bytes, tag: str | int = "") -> None:
    with atomic_path(target, tag) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str, tag: str | int = "") -> None:
    write_bytes(target, text.encode(), tag)


def write_json(target: str | Path, obj: Any, **dumps: Any) -> None:
    """``obj`` as JSON (``json.dumps`` options in ``dumps``) and a final newline."""
    write_text(target, json.dumps(obj, **dumps) + "\n")
