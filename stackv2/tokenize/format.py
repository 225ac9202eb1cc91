"""Repository-context training documents with fill-in-the-middle, as StarCoder2 was trained (docs/spec.md §10.1).

One document is one repository: its files in a seeded random order, each after ``<file_sep>``; with
probability ``metadata_rate`` the document starts with ``<repo_name>name`` and each file with its path and a
newline; it ends with ``<|endoftext|>``. A repository is a FIM candidate with probability ``fim_repo_rate``;
each file chunk of a candidate (path included, never the repository name) is then FIM-transformed with
probability ``fim_file_rate``, split at two uniform character positions as BigCode's Megatron-LM does:
PSM ``<fim_prefix>pre<fim_suffix>suf<fim_middle>mid``, or with probability ``fim_spm_rate`` SPM
``<fim_prefix><fim_suffix>suf<fim_middle>pre mid``.

A document is kept as ``Part`` s (text or sentinel), never as one string: the encoder puts sentinel ids between
the text parts and encodes a sentinel string inside text as text, so a file that contains the literal text
``<|endoftext|>`` cannot end a document early (only PII placeholders in text become special ids,
``stackv2.tokenize.tokenizer``). Every draw comes from a generator seeded by (seed, repository
name), so a document does not depend on partitioning or on the order rows arrive in.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from stackv2.tokenize.config import TokenizeConfig

EOS = "<|endoftext|>"
FIM_PREFIX = "<fim_prefix>"
FIM_MIDDLE = "<fim_middle>"
FIM_SUFFIX = "<fim_suffix>"
REPO_NAME = "<repo_name>"
FILE_SEP = "<file_sep>"
#: The sentinels a repository-context document uses.
SENTINELS = (EOS, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, REPO_NAME, FILE_SEP)
#: The sentinels of notebook documents (``stackv2.notebooks.format``; docs/spec.md §10.2).
JUPYTER_SCRIPT = "<jupyter_script>"
JUPYTER_START = "<jupyter_start>"
JUPYTER_TEXT = "<jupyter_text>"
JUPYTER_CODE = "<jupyter_code>"
JUPYTER_OUTPUT = "<jupyter_output>"
EMPTY_OUTPUT = "<empty_output>"
NOTEBOOK_SENTINELS = (JUPYTER_SCRIPT, JUPYTER_START, JUPYTER_TEXT, JUPYTER_CODE, JUPYTER_OUTPUT, EMPTY_OUTPUT)

PSM = "psm"
SPM = "spm"


class Part(NamedTuple):
    text: str
    special: bool = False


def _special(token: str) -> Part:
    return Part(token, True)


@dataclass(frozen=True)
class FileChunk:
    #: Index of the file in the list given to ``format_repo``.
    index: int
    #: ``None``, ``PSM`` or ``SPM``.
    fim: str | None
    #: ``<file_sep>`` and the chunk, FIM sentinels included.
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Document:
    repo_name: str
    metadata: bool
    #: ``<repo_name>name`` when ``metadata``, else empty.
    header: tuple[Part, ...]
    #: Files in document order.
    chunks: tuple[FileChunk, ...]

    def parts(self) -> list[Part]:
        out = list(self.header)
        for c in self.chunks:
            out.extend(c.parts)
        out.append(_special(EOS))
        return out

    def text(self) -> str:
        """The document as one string, sentinels written out (what ``decode(ids)`` gives back)."""
        return "".join(p.text for p in self.parts())


def repo_rng(seed: int, repo_name: str) -> random.Random:
    """A generator that depends only on (seed, repository), stable across processes and Python versions."""
    digest = hashlib.blake2b(f"{seed}\x00{repo_name}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def display_path(path: str) -> str:
    """Release paths start with ``/`` (docs/spec.md §2.2); the document shows them relative to the repository root."""
    return path.lstrip("/")


def fim_split(chunk: str, rng: random.Random, spm_rate: float) -> tuple[str, tuple[Part, ...]]:
    """Cut ``chunk`` at two uniform positions in [0, len] and lay the three pieces out as PSM or SPM."""
    lo, hi = sorted((rng.randint(0, len(chunk)), rng.randint(0, len(chunk))))
    prefix, middle, suffix = Part(chunk[:lo]), Part(chunk[lo:hi]), Part(chunk[hi:])
    if rng.random() < spm_rate:
        return SPM, (_special(FIM_PREFIX), _special(FIM_SUFFIX), suffix, _special(FIM_MIDDLE), prefix, middle)
    return PSM, (_special(FIM_PREFIX), prefix, _special(FIM_SUFFIX), suffix, _special(FIM_MIDDLE), middle)


def format_repo(repo_name: str, files: Sequence[tuple[str, str]], cfg: TokenizeConfig) -> Document:
    """One training document from a repository's (path, content) pairs, given in any order."""
    if not files:
        raise ValueError(f"repository {repo_name!r} has no files to format")
    rng = repo_rng(cfg.seed, repo_name)
    order = sorted(range(len(files)), key=lambda i: files[i])
    rng.shuffle(order)
    metadata = rng.random() < cfg.metadata_rate
    fim_repo = rng.random() < cfg.fim_repo_rate
    header = (_special(REPO_NAME), Part(repo_name)) if metadata else ()
    chunks = []
    for i in order:
        path, content = files[i]
        chunk = f"{display_path(path)}\n{content}" if metadata else content
        fim, body = None, (Part(chunk),)
        if fim_repo and rng.random() < cfg.fim_file_rate:
            fim, body = fim_split(chunk, rng, cfg.fim_spm_rate)
        chunks.append(FileChunk(i, fim, (_special(FILE_SEP), *body)))
    return Document(repo_name, metadata, header, tuple(chunks))


def merge_text(parts: Sequence[Part]) -> list[Part]:
    """Join adjacent text parts and drop empty ones: the form a decoder sees between sentinel ids."""
    out: list[Part] = []
    for p in parts:
        if p.special:
            out.append(p)
        elif p.text:
            if out and not out[-1].special:
                out[-1] = Part(out[-1].text + p.text)
            else:
                out.append(p)
    return out


class RestoredRepo(NamedTuple):
    repo_name: str | None
    #: (path or None without metadata, content) in document order.
    files: list[tuple[str | None, str]]


def _texts_between(parts: Sequence[Part]) -> tuple[list[str], str]:
    """Texts following each sentinel of a chunk, and the text before the first sentinel."""
    head, segments = "", []
    for p in parts:
        if p.special:
            segments.append("")
        elif segments:
            segments[-1] += p.text
        else:
            head += p.text
    return segments, head


def _unfim(parts: Sequence[Part]) -> str:
    """Undo ``fim_split`` on one chunk's parts (``<file_sep>`` removed): the original chunk text."""
    tokens = [p.text for p in parts if p.special]
    segments, head = _texts_between(parts)
    if not tokens:
        return head
    if tokens == [FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE] and not head:
        # PSM: prefix | suffix | middle. SPM: "" | suffix | prefix + middle. Both read back the same way.
        return segments[0] + segments[2] + segments[1]
    raise ValueError(f"not a FIM chunk: sentinels {tokens}")


def restore(parts: Sequence[Part]) -> RestoredRepo:
    """Invert ``format_repo``: the repository name and each file back from a document's parts.

    Works on the parts ``format_repo`` built or on those decoded from token ids. Paths must not contain a
    newline (the path/content separator).
    """
    parts = merge_text(parts)
    if not parts or parts[-1] != _special(EOS):
        raise ValueError("a document ends with <|endoftext|>")
    body = parts[:-1]
    repo_name = None
    if body and body[0] == _special(REPO_NAME):
        has_name = len(body) > 1 and not body[1].special
        repo_name, body = (body[1].text, body[2:]) if has_name else ("", body[1:])
    chunks: list[list[Part]] = []
    for p in body:
        if p == _special(FILE_SEP):
            chunks.append([])
        elif not chunks:
            raise ValueError(f"text before the first <file_sep>: {p.text[:40]!r}")
        else:
            chunks[-1].append(p)
    files: list[tuple[str | None, str]] = []
    for chunk in chunks:
        text = _unfim(chunk)
        if repo_name is None:
            files.append((None, text))
        else:
            path, _, content = text.partition("\n")
            files.append((path, content))
    return RestoredRepo(repo_name, files)
