"""Per-stage statistics: plain values that add up and account for every row.

Each stage writes one ``_stats.json``. The invariant ``rows_in == rows_out + sum(rejected.values())`` holds for
every stage; ``StageStats.check`` raises when it does not, so a stage can never lose rows silently.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stackv2.atomic import write_json
from stackv2.storage import Location, location


class AccountingError(RuntimeError):
    """A stage's output plus its rejected rows do not add up to its input."""


@dataclass
class StageStats:
    stage: str
    rows_in: int = 0
    rows_out: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    #: Stage-specific counters (bytes, per-language counts, origins selected ...), free-form but JSON-plain.
    extra: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    seconds: float = 0.0

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def check(self) -> StageStats:
        if self.rows_in != self.rows_out + self.rows_rejected:
            raise AccountingError(
                f"stage {self.stage!r}: {self.rows_in} rows in != {self.rows_out} out + "
                f"{self.rows_rejected} rejected {dict(self.rejected)}"
            )
        return self

    def __add__(self, other: StageStats) -> StageStats:
        if other.stage != self.stage:
            raise ValueError(f"cannot add stats of {self.stage!r} and {other.stage!r}")
        return StageStats(
            stage=self.stage,
            rows_in=self.rows_in + other.rows_in,
            rows_out=self.rows_out + other.rows_out,
            rejected=dict(Counter(self.rejected) + Counter(other.rejected)),
            extra={**self.extra, **other.extra},
            config_hash=self.config_hash or other.config_hash,
            seconds=self.seconds + other.seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_rejected"] = self.rows_rejected
        d["rejected"] = dict(sorted(self.rejected.items()))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageStats:
        d = {k: v for k, v in d.items() if k != "rows_rejected"}
        return cls(**d)

    def save(self, path: Path | Location) -> None:
        write_json(path, self.to_dict(), indent=2, sort_keys=True, default=str)

    @classmethod
    def load(cls, path: Path | Location) -> StageStats:
        return cls.from_dict(json.loads(location(path).read_text()))
