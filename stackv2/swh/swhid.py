"""SWHIDs: the roots given for extraction (``stackv2 extract --swhids FILE``) and the full SWHID of a released file,
parsed and written by swh-model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_from_bytes

from swh.model.exceptions import ValidationError
from swh.model.swhids import ObjectType, QualifiedSWHID

#: Core object types a root may have, mapped to the graph table that holds them.
ROOT_TYPES = {
    ObjectType.SNAPSHOT: "snapshot",
    ObjectType.RELEASE: "release",
    ObjectType.REVISION: "revision",
    ObjectType.DIRECTORY: "directory",
}


@dataclass(frozen=True)
class Root:
    swhid: str
    kind: str  # snapshot | release | revision | directory
    object_id: str
    origin: str | None


def parse_roots(lines: list[str], source: str = "<input>") -> list[Root]:
    """Parse one SWHID per line (blank lines and ``#`` comments ignored); errors name the line."""
    roots = []
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            swhid = QualifiedSWHID.from_string(text)
        except ValidationError as e:
            raise ValueError(f"{source}:{n}: not a valid SWHID ({'; '.join(e.messages)}): {text!r}") from None
        if swhid.object_type not in ROOT_TYPES:
            raise ValueError(
                f"{source}:{n}: {text!r} is a {swhid.object_type.name.lower()}; roots must be "
                "snp, rel, rev or dir SWHIDs"
            )
        roots.append(Root(text, ROOT_TYPES[swhid.object_type], swhid.object_id.hex(), swhid.origin))
    return roots


def read_roots(path: str | Path) -> list[Root]:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"SWHID list {p} does not exist")
    return parse_roots(p.read_text().splitlines(), str(p))


def _object_id(hex_id: str) -> str:
    """``hex_id`` as swh-model writes an object id: 20 bytes in lower-case hex, or its ``ValidationError``."""
    raw = bytes.fromhex(hex_id)
    if len(raw) != 20:
        raise ValidationError("Invalid SWHID: invalid checksum: %(object_id)s", params={"object_id": raw.hex()})
    return raw.hex()


def file_swhid(
    content_id: str, origin: str | None, snapshot_id: str | None, revision_id: str | None, path: str | None
) -> str:
    """The full SWHID of a released file (docs/spec.md §1.7): its content, the origin and snapshot it was found in,
    the revision it was read from, and its path there (escaped as the SWHID grammar requires). Qualifiers whose
    value is unknown are left out: a root given as a bare directory has no revision or snapshot, a root given by
    SWHID no origin URL.

    Written as ``str(QualifiedSWHID(...))`` writes it (the tests compare the two on any input), without building
    the object, which took a quarter of the ``shards`` stage's Python time (docs/scaling.md)."""
    swhid = f"swh:1:cnt:{_object_id(content_id)}"
    if origin and "://" in origin:
        swhid += ";origin=" + origin.replace("%", "%25").replace(";", "%3B")
    if snapshot_id:
        swhid += f";visit=swh:1:snp:{_object_id(snapshot_id)}"
    if revision_id:
        swhid += f";anchor=swh:1:rev:{_object_id(revision_id)}"
    if path:
        swhid += ";path=" + quote_from_bytes(path.encode())
    return swhid
