"""Settings of the ``optout`` stage (``RunConfig.optout``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OptOutConfig:
    """Where the opt-out registry lives (.jsonl or .yaml). No registry: the stage passes every row on.

    The stage's config hash also covers the registry's contents (``registry_fingerprint``), so editing the
    registry in place reruns ``optout`` and every stage after it."""

    registry: str | None = None
