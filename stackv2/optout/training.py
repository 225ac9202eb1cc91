"""Whether a file promoted into ``the-stack-v2-dedup`` enters the training products, as the build would have decided
had it been the copy kept (docs/optout.md): the ``filter`` checks, PII redaction, then composition.

The decisions need the run's configuration (``RunConfig.filter``, ``.pii``, ``.compose``), which the work folder
does not hold: ``stackv2 optout apply --config`` passes the run's config and checks it against the stages' config
hashes first. Composition is read back from what the ``compose`` stage decided: a (repository, language) group it
kept or dropped stays so; a new group of a language under no cap is kept; a new group of a capped language is
left out (its draw is the stage's Spark hash, which this pure-Python tool does not recompute).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from stackv2.config import RunConfig, stable_hash
from stackv2.filters import FileFilter, benchmark_patterns
from stackv2.optout.work import table_files
from stackv2.release.compose import SUBSAMPLED
from stackv2.stats import StageStats
from stackv2.storage import Location, dataset, location
from stackv2.workdir import DATA, REJECTED, STATS

#: Why a promoted file stays out of the training products although it passes the filters.
CAPPED_NEW_GROUP = "capped_language_new_group"


class RunConfigMismatch(ValueError):
    """The config given is not the one the work folder was built with."""


@dataclass(frozen=True)
class Admission:
    #: None: the file enters ``-train-full`` with ``content`` (redacted); else why not.
    reason: str | None
    content: str | None = None
    smol: bool = False


class TrainingRules:
    """The ``filter``, ``pii`` and ``compose`` decisions of one run, for files it never saw in those stages."""

    def __init__(self, cfg: RunConfig, work: str | os.PathLike | Location):
        work = location(work)
        patterns = benchmark_patterns(cfg.filter)
        recorded = _stats(work, "filter").extra.get("benchmark_hash")
        if recorded is not None and recorded != stable_hash(patterns):
            raise RunConfigMismatch(
                "the benchmark files the config names are not those the filter stage decontaminated against"
            )
        self.cfg = cfg
        self.work = work
        self.file_filter = FileFilter(cfg.filter, patterns)
        self.keep_rates: dict[str, float] = _stats(work, "compose").extra.get("keep_rates", {})

    def groups(self, repos: list[str]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """(repository, language) groups of ``repos`` the ``compose`` stage kept, and those it subsampled away."""

        def read(table: str, only_subsampled: bool) -> set[tuple[str, str]]:
            files = table_files(self.work / "compose" / table)
            if not files:
                return set()
            cond = pc.field("repo_name").isin(pa.array(sorted(set(repos)), pa.string()))
            if only_subsampled:
                cond = cond & (pc.field("reason") == SUBSAMPLED)
            t = dataset(files).to_table(columns=["repo_name", "language"], filter=cond)
            return set(zip(t["repo_name"].to_pylist(), t["language"].to_pylist(), strict=True))

        return read(DATA, False), read(REJECTED, True)

    def admit(self, row: dict, kept: set[tuple[str, str]], dropped: set[tuple[str, str]]) -> Admission:
        """The build's decision for one annotated row (``schema.ANNOTATED`` columns)."""
        from stackv2.pii.redaction import redact  # presidio's import costs seconds: only when a file is admitted

        reason = self.file_filter.reason(row)
        if reason is not None:
            return Admission(reason)
        group = (row["repo_name"], row["language"])
        if group in dropped:
            return Admission(SUBSAMPLED)
        if group not in kept and row["language"] in self.keep_rates:
            return Admission(CAPPED_NEW_GROUP)
        content = redact(row["content"], self.cfg.pii).text if row["content"] else row["content"]
        return Admission(None, content, row["language"] in self.cfg.compose.smol_languages)


def _stats(work: Location, stage: str) -> StageStats:
    p = work / stage / STATS
    return StageStats.load(p) if p.exists() else StageStats(stage)
