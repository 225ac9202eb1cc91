"""Benchmark corpus with real near-duplicates: consecutive released versions of PyPI projects + installed files.

``pip download --no-binary :all: --no-deps NAME==V`` fetches each source distribution once into ``CACHE``; every
UTF-8 text file of every version becomes a document (``repo_name`` = ``NAME-V``), then the files of the same
projects installed in this environment are added. Identical files (same sha1) are kept once, as exact dedup
would, so the corpus measures near-dedup only. ``scaled(k, seed)`` makes a ×k corpus: copy j > 0 of each file gets
a deterministic token appended to ~3% of its lines (a near-duplicate of the original, like a small patch); the
seed picks which lines and tokens.

    python -m bench.dedup.corpus          # download and print the corpus size
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import random
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(__file__).resolve().parents[2] / "work" / "bench-dedup" / "cache"
PROJECTS: dict[str, list[str]] = {
    "requests": [
        "2.20.0",
        "2.21.0",
        "2.22.0",
        "2.23.0",
        "2.24.0",
        "2.25.0",
        "2.25.1",
        "2.26.0",
        "2.27.0",
        "2.27.1",
        "2.28.0",
    ],
    "click": ["7.0", "7.1", "7.1.1", "7.1.2", "8.0.0", "8.0.1", "8.0.2", "8.0.3", "8.0.4", "8.1.0", "8.1.3"],
    "Jinja2": ["2.10", "2.10.1", "2.11.0", "2.11.1", "2.11.2", "2.11.3", "3.0.0", "3.0.1", "3.0.2", "3.0.3", "3.1.0"],
    "attrs": [
        "19.1.0",
        "19.2.0",
        "19.3.0",
        "20.1.0",
        "20.2.0",
        "20.3.0",
        "21.1.0",
        "21.2.0",
        "21.3.0",
        "21.4.0",
        "22.1.0",
    ],
}
#: Files above 16 KiB are left out: keeps ×16 (80 MB) within what a shared 2-core machine runs in minutes.
MAX_BYTES = 16 << 10


@dataclass(frozen=True)
class Doc:
    blob_id: str
    repo_name: str
    path: str
    content: str


def download(name: str, version: str) -> Path:
    target = CACHE / "sdists" / f"{name}-{version}"
    if not any(target.glob("*")):
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-binary",
                ":all:",
                "--no-deps",
                "-q",
                "-d",
                str(target),
                f"{name}=={version}",
            ],
            check=True,
        )
    (archive,) = target.iterdir()
    return archive


def _members(archive: Path):
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir() and info.file_size <= MAX_BYTES:
                    yield info.filename, z.read(info)
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                if m.isfile() and m.size <= MAX_BYTES:
                    yield m.name, t.extractfile(m).read()


def _text(data: bytes) -> str | None:
    if not data or b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _installed(name: str):
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return
    for f in dist.files or []:
        p = Path(dist.locate_file(f))
        if p.suffix in {".py", ".pyi", ".txt", ".rst", ".md"} and p.is_file() and p.stat().st_size <= MAX_BYTES:
            yield f"{name}-{dist.version}-installed", str(f), p.read_bytes()


def base_corpus() -> list[Doc]:
    """One document per distinct text file, in a stable order."""
    releases = [(name, v) for name, versions in PROJECTS.items() for v in versions]
    with ThreadPoolExecutor(8) as pool:  # pip prepares each sdist's metadata: slow, so several at once
        archives = list(pool.map(lambda nv: download(*nv), releases))
    raw = []
    for (name, v), archive in zip(releases, archives, strict=True):
        raw.extend((f"{name}-{v}", path.split("/", 1)[-1], data) for path, data in _members(archive))
    for name in PROJECTS:
        raw.extend(_installed(name))
    docs: dict[str, Doc] = {}
    for repo, path, data in sorted(raw):
        content = _text(data)
        blob = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        if content is not None and blob not in docs:
            docs[blob] = Doc(blob, repo, path, content)
    return list(docs.values())


def _variant(doc: Doc, j: int, seed: int = 0) -> Doc:
    rng = random.Random(f"{doc.blob_id}-{j}" + (f"-{seed}" if seed else ""))
    lines = doc.content.split("\n")
    content = "\n".join(f"{line} v{j}x{rng.randrange(10**6)}" if rng.random() < 0.03 else line for line in lines)
    data = content.encode("utf-8")
    return Doc(hashlib.sha1(data, usedforsecurity=False).hexdigest(), f"{doc.repo_name}-copy{j}", doc.path, content)


def scaled(k: int, seed: int = 0) -> list[Doc]:
    """The base corpus and k - 1 patched copies of it; another ``seed`` patches other lines (seed 0: the corpus
    every earlier benchmark run used)."""
    base = base_corpus()
    docs = {d.blob_id: d for d in base}
    for j in range(1, k):
        for d in base:
            v = _variant(d, j, seed)
            docs.setdefault(v.blob_id, v)
    return list(docs.values())


if __name__ == "__main__":
    docs = base_corpus()
    print(f"{len(docs)} documents, {sum(len(d.content.encode()) for d in docs) / 1e6:.1f} MB")
