"""How many files our decoding moves against BigCode's released code (docs/fidelity.md, "Decoding").

Every regular file under ROOT below the 10 MiB cap goes through BigCode's ``get_blob`` NUL check and
``decode_content`` (copied below, as released) and through ``stackv2.text.decode.decode_blob``. A file "moves"
when its content, its ``src_encoding`` or its being rejected differs. Also counted: the files a
declaration-before-UTF-8 order would move further (the order docs/fidelity.md argues against).

    .venv/bin/python bench/decode/fidelity.py .venv/lib/python3.11/site-packages
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import cchardet

from stackv2.text.decode import declared_encoding, decode_blob

MAX_LENGTH = 10 * 1024 * 1024


def bigcode(raw: bytes) -> tuple[str | None, str | None]:
    """``get_blob`` (NUL => no content) + ``decode_content`` of the-stack-v2's ``get_file_contents.py``."""
    if b"\0" in raw:
        return None, None
    charset = "UTF-8"
    try:
        text = raw.decode(charset)
    except UnicodeDecodeError:
        encoding_det = cchardet.detect(raw)["encoding"]
        if not encoding_det or encoding_det == charset:
            return None, None
        charset = encoding_det
        try:
            text = raw.decode(charset)
        except (UnicodeDecodeError, LookupError):
            return None, None
    return text, charset


def files(root: str):
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) < MAX_LENGTH:
                yield path


def report(groups: dict[str, list[str]], args: argparse.Namespace) -> None:
    for kind, paths in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"  {len(paths):6d}  {kind}")
        for p in paths[: args.show]:
            print(f"          {os.path.relpath(p, args.root)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--show", type=int, default=20, help="moved files listed per kind")
    args = ap.parse_args()
    total = 0
    moved: dict[str, list[str]] = collections.defaultdict(list)
    declaration_first: dict[str, list[str]] = collections.defaultdict(list)
    for path in files(args.root):
        with open(path, "rb") as f:
            raw = f.read()
        total += 1
        ref_text, ref_enc = bigcode(raw)
        ours = decode_blob(raw)
        if (ours.content, ours.src_encoding) != (ref_text, ref_enc):
            moved[f"{ref_enc or 'rejected'} -> {ours.src_encoding or ours.reason}"].append(path)
        declared = declared_encoding(raw) if ours.src_encoding == "UTF-8" else None
        if declared and declared != "UTF-8":
            try:
                text = raw.decode(declared)
            except UnicodeDecodeError:
                continue
            kind = "same text, other src_encoding" if text == ours.content else "other text"
            declaration_first[f"UTF-8 -> {declared}: {kind}"].append(path)
    print(f"{total} files under {args.root}; {sum(map(len, moved.values()))} move")
    report(moved, args)
    print(f"declaration before UTF-8 would move {sum(map(len, declaration_first.values()))} more")
    report(declaration_first, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
