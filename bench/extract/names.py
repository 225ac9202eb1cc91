"""Files the extract stage's name rules move, per git repository: symbolic links (rejected ``symlink``; BigCode
released them as files holding their target path), paths that are not UTF-8 (rejected ``undecodable_name``;
BigCode released them with U+FFFD in the path), and of those the ones whose U+FFFD path equals another file's (two
files BigCode's path could not tell apart). Counted on each repository's HEAD tree with ``git ls-tree``.

    python -m bench.extract.names REPO_OR_GIT_DIR...
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import Counter
from pathlib import Path


def _utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def count(repo: Path) -> dict[str, int | str]:
    listing = subprocess.run(
        ["git", "--git-dir", str(repo), "ls-tree", "-r", "-z", "HEAD"], capture_output=True, check=True
    ).stdout
    entries = [e.split(b"\t", 1) for e in listing.split(b"\0") if e]
    files = [(meta.split()[0], path) for meta, path in entries if meta.split()[1] == b"blob"]
    undecodable = [p for _, p in files if not _utf8(p)]
    shown = Counter(p.decode("utf-8", "replace") for _, p in files)
    refs = subprocess.run(
        ["git", "--git-dir", str(repo), "for-each-ref", "--format=%(refname)"], capture_output=True, check=True
    ).stdout.splitlines()
    return {
        "repository": repo.name if repo.name not in ("repo", ".git") else repo.parent.name,
        "files": len(files),
        "symlinks": sum(mode == b"120000" for mode, _ in files),
        "undecodable_names": len(undecodable),
        "merged_by_replacement": sum(shown[p.decode("utf-8", "replace")] > 1 for p in undecodable),
        "refs": len(refs),
        "undecodable_refs": sum(not _utf8(r) for r in refs),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("repos", nargs="+", type=Path, help="git directories (a work tree's .git, or a bare repository)")
    args = p.parse_args(argv)
    for repo in args.repos:
        git_dir = repo / ".git" if (repo / ".git").is_dir() else repo
        print(json.dumps(count(git_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
