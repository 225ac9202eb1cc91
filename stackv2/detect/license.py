"""Licenses (docs/spec.md §3): which files are license files, what ScanCode finds in them, how they cover a repository,
and the paper's decision function that turns GitHub's license plus the detected ones into ``license_type``.

ScanCode is the paper's tool. Its index takes seconds and ~1.4 GB to load, so ``scancode_index`` keeps one per
process (a Spark Python worker is reused across tasks) and loads it only when a partition holds a license file.
The reference scripts passed ``deadline=100`` to ``detect_licenses``; ``deadline`` is an absolute ``time.time()``
value, so that call stops after the first matcher. We call it without a time deadline: a time budget would make
the output depend on machine speed, and the stage must be deterministic (docs/licenses.md has the numbers).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path

from stackv2.detect.config import LicenseConfig

PERMISSIVE = "permissive"
NO_LICENSE = "no_license"
NON_PERMISSIVE = "non_permissive"
LICENSE_TYPES = (PERMISSIVE, NO_LICENSE, NON_PERMISSIVE)

#: License-like file names: go-license-detector's list, the paper's Appendix A.3 (docs/spec.md §3.1).
LICENSE_FILE_NAMES = (
    "li[cs]en[cs]e(s?)",
    "legal",
    "copy(left|right|ing)",
    "unlicense",
    r"[al]?gpl([-_ v]?)(\d\.?\d?)?",
    "bsd(l?)",
    "mit(x?)",
    "apache",
    "artistic",
    r"copying(v?)(\d?)",
    "disclaimer",
    "eupl",
    "gfdl",
    "[cm]pl",
    "cc0",
    r"al([-_ v]?)(\d\.?\d)?",
    "about",
    "notice",
    "readme",
    "guidelines",
)
LICENSE_FILE_RE = re.compile(rf"^(|.*[-_. ])({'|'.join(LICENSE_FILE_NAMES)})(|[-_. ].*)$", re.IGNORECASE)

#: Amendments that do not change a license's type (docs/spec.md §3.3, from the reference ``get_license_types.py``).
NON_LICENSE_WHITELIST = frozenset(
    f"LicenseRef-scancode-{k}"
    for k in (
        "dco-1.1",
        "generic-cla",
        "google-cla",
        "jetty-ccla-1.1",
        "newton-king-cla",
        "generic-exception",
        "generic-export-compliance",
        "generic-tos",
        "generic-trademark",
        "warranty-disclaimer",
    )
)
UNKNOWN_REFERENCE = "LicenseRef-scancode-unknown-license-reference"
NOASSERTION = "NOASSERTION"
#: ScanCode license categories the paper counts as permissive (docs/spec.md §3.3, Appendix A.4).
PERMISSIVE_CATEGORIES = ("Permissive", "Public Domain")


def is_license_file(filename: str) -> bool:
    """Whether a base name looks like a license file (the paper scans a blob if any of its names does)."""
    return LICENSE_FILE_RE.match(filename) is not None


def load_permissive(path: str | None = None) -> frozenset[str]:
    """The permissive SPDX ids: the shipped list, or ``path`` when given. ``#`` starts a comment."""
    text = (
        Path(path).read_text()
        if path
        else resources.files("stackv2").joinpath("data", "permissive_licenses.txt").read_text()
    )
    ids = {line.split("#", 1)[0].strip() for line in text.splitlines()}
    ids.discard("")
    if not ids:
        raise ValueError(f"permissive license list {path or 'stackv2/data/permissive_licenses.txt'} is empty")
    return frozenset(ids)


def license_type(gha_license_id: str | None, detected: Iterable[str], permissive: frozenset[str]) -> str:
    """The paper's decision (docs/spec.md §3.3, Figure 1): GitHub's license wins unless it is absent or NOASSERTION."""
    if gha_license_id in permissive:
        return PERMISSIVE
    if gha_license_id is not None and gha_license_id != NOASSERTION:
        return NON_PERMISSIVE
    found = set(detected)
    if not found:
        return NO_LICENSE if gha_license_id is None else NON_PERMISSIVE
    allowed = found & permissive
    others = found - allowed - NON_LICENSE_WHITELIST
    if allowed:
        # The license is known; a file merely pointing at it ("see LICENSE") does not add an unknown one.
        others.discard(UNKNOWN_REFERENCE)
    if not others:
        return PERMISSIVE if allowed else NO_LICENSE
    return NON_PERMISSIVE


def base_path(path: str) -> str:
    """The folder of a path, with its trailing slash (``/a/LICENSE`` -> ``/a/``; ``LICENSE`` -> ``""``)."""
    return path[: path.rfind("/") + 1]


def propagate(paths: Sequence[str], licenses: Sequence[Sequence[str] | None]) -> list[list[str]]:
    """Spread each license file's licenses to every path of the same repository under its folder (docs/spec.md §3.2).

    ``licenses[i]`` are those detected in the file at ``paths[i]`` (empty or None for most files). A path gets
    the sorted union over every folder above it (its own included) that holds a license file, as the
    reference's ``path.startswith(base_path)`` join does.
    """
    by_dir: dict[str, set[str]] = {}
    for p, lic in zip(paths, licenses, strict=True):
        if lic:
            by_dir.setdefault(base_path(p), set()).update(lic)
    out: list[list[str]] = []
    for p in paths:
        found: set[str] = set()
        for lic in _covering(p, by_dir):
            found |= lic
        out.append(sorted(found))
    return out


def _covering(path: str, by_dir: Mapping[str, set[str]]) -> Iterable[set[str]]:
    """The license sets of ``by_dir`` whose folder is a prefix of ``path`` (the folders above it, and its own)."""
    if not by_dir:
        return
    if "" in by_dir:
        yield by_dir[""]
    end = path.find("/")
    while end != -1:
        if (lic := by_dir.get(path[: end + 1])) is not None:
            yield lic
        end = path.find("/", end + 1)


@functools.cache
def scancode_index():
    """ScanCode's license index, loaded once per process (seconds; built and cached on disk at first use).

    The index is ~1.3 million Python objects that live as long as the process. They are moved out of the garbage
    collector's sight (``gc.freeze``): a reused Spark Python worker runs a full ``gc.collect()`` after every task,
    which otherwise walks the whole index each time (~0.45 s per task, more than most tasks' work).
    """
    import gc

    from licensedcode.cache import get_index

    index = get_index()
    gc.freeze()
    return index


def index_loaded() -> bool:
    """Whether this process holds ScanCode's index (loaded here, or by the daemon it was forked from)."""
    return scancode_index.cache_info().currsize > 0


def unload_index() -> None:
    """Give ScanCode's index and licence database back to the system: ~1 GiB of RSS down to ~0.1 (0.3 s; loading
    it again takes ~3 s). For a Python worker that loaded them for one task of the license job: Spark keeps an idle
    worker for a minute after its last task, which at 20k files outlived every later stage (docs/scaling.md)."""
    import contextlib
    import ctypes
    import gc

    import licensedcode.cache

    licensedcode.cache._LICENSE_CACHE = None
    for cached in (scancode_index, _spdx_of_keys, _adapter_classes):
        cached.cache_clear()
    gc.unfreeze()  # ``scancode_index`` froze the index; frozen objects are never collected
    gc.collect()
    with contextlib.suppress(AttributeError):  # not glibc
        ctypes.CDLL(None).malloc_trim(0)  # glibc keeps freed pages in its arenas until asked


@functools.cache
def _spdx_of_keys():
    from licensedcode.cache import get_licenses_db, get_licensing

    db = get_licenses_db()
    return get_licensing(), {k: lic.spdx_license_key or f"LicenseRef-scancode-{k}" for k, lic in db.items()}


def spdx_ids(expression: str) -> set[str]:
    """The SPDX ids of a ScanCode license expression's symbols (``LicenseRef-scancode-*`` for ScanCode-only keys)."""
    licensing, spdx = _spdx_of_keys()
    return {spdx.get(sym.key, f"LicenseRef-scancode-{sym.key}") for sym in licensing.license_symbols(expression)}


DEFAULT = LicenseConfig()

#: ScanCode releases whose ``licensedcode.detection`` the fast path below was read against and tested with
#: (``tests/test_detect_license.py`` compares it with ``detect_licenses`` symbol for symbol). Any other release
#: takes ScanCode's own ``detect_licenses``: same results, slower.
FAST_PATH_VERSIONS = frozenset({"32.5.0"})


@functools.cache
def _fast_path_ok() -> bool:
    from importlib.metadata import version

    return version("scancode-toolkit") in FAST_PATH_VERSIONS


@functools.cache
def _adapter_classes():
    """Two thin subclasses of ScanCode's classes that drop work whose result we never read (see ``_expressions``)."""
    from licensedcode.detection import LicenseDetection
    from licensedcode.match import LicenseMatch

    class ExpressionOnlyDetection(LicenseDetection):
        """A ``LicenseDetection`` without its ``identifier`` (a UUID of the tokenized matched texts, ~25% of the
        post-processing) and ``license_expression_spdx``: we read ``license_expression`` only."""

        __slots__ = ()

        @property
        def identifier_with_expression(self):
            return None

        def spdx_license_expression(self):
            return None

    class UnreadTextMatch(LicenseMatch):
        """A ``LicenseMatch`` whose matched text is never looked at (see ``_expressions``); same slots, so a match
        can be switched to it and back."""

        __slots__ = ()

        def matched_text(self, *args, **kwargs):
            return ""

    return ExpressionOnlyDetection, UnreadTextMatch


#: The words ``is_false_positive`` looks for in every match's matched text, lower-cased ("copyright_words").
_COPYRIGHT_WORDS = ("copyright", "(c)")


def _may_all_name_a_copyright(group, text: str) -> bool:
    """False when some match of ``group`` cannot have a ``_COPYRIGHT_WORDS`` word in its matched text: its lines
    (a line either side too; ScanCode numbers a query's lines as ``str.splitlines`` cuts them) hold none. A matched
    text is those lines' tokens and the text between them, with only brackets added around unmatched tokens, so a
    word it holds is in its lines, lower-cased character by character the same way."""
    lines = text.splitlines()
    for m in group:
        window = "\n".join(lines[max(0, m.start_line - 2) : m.end_line + 1]).lower()
        if not any(word in window for word in _COPYRIGHT_WORDS):
            return False
    return True


def _expressions(text: str, approximate: bool) -> list[str | None]:
    """``license_expression`` of each detection ``licensedcode.detection.detect_licenses(index=..., query_string=text,
    approximate=approximate)`` yields, from ScanCode's own functions, skipping two costs that cannot change them:

    * the detection ``identifier`` (``ExpressionOnlyDetection``): ``from_matches`` and ``process_detections`` only
      store it, and the SPDX form of the expression, which we derive ourselves (``spdx_ids``);
    * the matched text of a group of matches whose text cannot change the analysis (``UnreadTextMatch``, while
      ``from_matches`` analyses that group). In ``analyze_detection`` only ``is_false_positive`` reads matched texts:
      it returns False when every text has "copyright" or "(c)", and otherwise decides from the rules alone
      (relevance, length, identifier, start line). So where it returns False for texts that have neither word
      (``UnreadTextMatch``'s empty text), it returns False for the real ones too, and the texts are never read. A
      group it finds a possible false positive that way has its texts built only where every match's lines hold
      one of the words (``_may_all_name_a_copyright``); otherwise the real texts cannot all hold one either, and
      the rules decide as they did without them. Rebuilding the text re-tokenizes the whole file and was ~60% of
      ScanCode's time on license files (first for the groups whose rules all have relevance 100; then for every
      group but the possible false positives; since 2026-12-07, later, for the possible false positives whose
      lines all name a copyright: the bare "GPL" words of license files no longer build theirs, docs/licenses.md).

    This is ScanCode 32.5's ``detect_licenses`` body (``index.match``, ``group_matches``,
    ``LicenseDetection.from_matches``, ``process_detections``) with those two classes swapped in.
    """
    import sys

    from licensedcode.cache import get_licensing
    from licensedcode.detection import group_matches, is_false_positive, process_detections
    from licensedcode.match import LicenseMatch

    detection_cls, unread_cls = _adapter_classes()
    matches = scancode_index().match(
        query_string=text,
        min_score=0,
        deadline=sys.maxsize,
        as_expression=False,
        unknown_licenses=False,
        approximate=approximate,
    )
    if not matches:
        return []
    detections = []
    for group in group_matches(license_matches=matches):
        plain = all(type(m) is LicenseMatch for m in group)
        try:
            if plain:
                for m in group:
                    m.__class__ = unread_cls
                if is_false_positive(license_matches=group) and _may_all_name_a_copyright(group, text):
                    for m in group:  # without the texts a possible false positive: the texts decide, build them
                        m.__class__ = LicenseMatch
            detections.append(
                detection_cls.from_matches(matches=group, analysis=None, post_scan=False, package_license=False)
            )
        finally:
            if plain:
                for m in group:
                    m.__class__ = LicenseMatch
    return [d.license_expression for d in process_detections(detections=detections, licensing=get_licensing())]


def scancode_expressions(text: str, approximate: bool = False) -> list[str | None]:
    """ScanCode's detections' license expressions for ``text``: the fast path when this ScanCode release is one it
    was verified with, else ``licensedcode.detection.detect_licenses`` itself."""
    if _fast_path_ok():
        return _expressions(text, approximate)
    from licensedcode.detection import detect_licenses as scancode_detect

    return [
        d.license_expression
        for d in scancode_detect(index=scancode_index(), query_string=text, approximate=approximate)
    ]


def bigcode_expressions(text: str) -> list[str | None]:
    """The license expressions of BigCode's own call, ``detect_licenses(query_string=text, deadline=100)``."""
    from licensedcode.detection import detect_licenses as scancode_detect

    return [d.license_expression for d in scancode_detect(index=scancode_index(), query_string=text, deadline=100)]


def detect_licenses(text: str, cfg: LicenseConfig = DEFAULT) -> list[str]:
    """Sorted SPDX ids ScanCode detects in a license file's text (empty when none)."""
    text = text[: cfg.max_chars]
    if not text.strip():
        return []
    found: set[str] = set()
    expressions = bigcode_expressions(text) if cfg.bigcode_deadline else scancode_expressions(text, cfg.approximate)
    for expression in expressions:
        if expression:
            found |= spdx_ids(expression)
    return sorted(found)
