"""SWHIDs: the roots given for extraction (``stackv2 extract --swhids FILE``) and the full SWHID of a released file,
parsed and written by swh-model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from swh.model.exceptions import ValidationError
from swh.model.swhids import CoreSWHID, ObjectType, QualifiedSWHID

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


def file_swhid(
    content_id: str, origin: str | None, snapshot_id: str | None, revision_id: str | None, path: str | None
) -> str:
    """The full SWHID of a released file (docs/spec.md §1.7): its content, the origin and snapshot it was found in,
    the revision it was read from, and its path there (escaped as the SWHID grammar requires). Qualifiers whose
    value is unknown are left out: a root given as a bare directory has no revision or snapshot, a root given by
    SWHID no origin URL."""

    def core(kind: ObjectType, hex_id: str | None) -> CoreSWHID | None:
        return CoreSWHID(object_type=kind, object_id=bytes.fromhex(hex_id)) if hex_id else None

    return str(
        QualifiedSWHID(
            object_type=ObjectType.CONTENT,
            object_id=bytes.fromhex(content_id),
            origin=origin if origin and "://" in origin else None,
            visit=core(ObjectType.SNAPSHOT, snapshot_id),
            anchor=core(ObjectType.REVISION, revision_id),
            path=path.encode() if path else None,
        )
    )
