"""One way to write a file or a folder so that readers see the old version or the new one, never a part of it.

A local file is written under a temporary name beside the target, then renamed over it (``os.replace``: atomic on
one file system; ``temp_path``/``atomic_path`` in ``stackv2.storage``). A file on an object store is one upload,
which appears whole or not at all. ``write_bytes``, ``write_text`` and ``write_json`` take either (a path or a
``stackv2.storage`` location or URI); ``atomic_dir`` is local only (object stores have no folders to swap: a set
of files is committed by a manifest written last, ``stackv2.workdir``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stackv2.storage import Location, atomic_path, location, temp_path

__all__ = ["atomic_dir", "atomic_path", "temp_path", "write_bytes", "write_json", "write_text"]


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


def write_bytes(target: str | os.PathLike | Location, data: bytes, tag: str | int = "") -> None:
    """Replace ``target`` by ``data`` at once; ``tag`` names a local temporary file of its own (racing writers)."""
    target = location(target)
    if not target.is_local:
        target.write_bytes(data)
        return
    with atomic_path(target.path, tag) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike | Location, text: str, tag: str | int = "") -> None:
    write_bytes(target, text.encode(), tag)


def write_json(target: str | os.PathLike | Location, obj: Any, **dumps: Any) -> None:
    """``obj`` as JSON (``json.dumps`` options in ``dumps``) and a final newline."""
    write_text(target, json.dumps(obj, **dumps) + "\n")
