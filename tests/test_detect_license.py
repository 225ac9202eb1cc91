"""License files, ScanCode detection, propagation to folders, and the paper's decision function (docs/spec.md §3)."""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stackv2.detect.config import LICENSE_JOB_OPTIONS, AnnotateConfig, LicenseConfig, LicenseJobConfig
from stackv2.detect.license import (
    LICENSE_TYPES,
    NO_LICENSE,
    NON_PERMISSIVE,
    PERMISSIVE,
    UNKNOWN_REFERENCE,
    _adapter_classes,
    _expressions,
    _fast_path_ok,
    _may_all_name_a_copyright,
    base_path,
    detect_licenses,
    is_license_file,
    license_type,
    load_permissive,
    propagate,
    scancode_expressions,
    scancode_index,
)

REPO = Path(__file__).resolve().parent.parent
PERMISSIVE_IDS = load_permissive()
MIT = """MIT License

Copyright (c) 2021 José Müller

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to
permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of
the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""
GPL_NOTICE = """This program is free software: you can redistribute it and/or modify it under the terms of the GNU
General Public License as published by the Free Software Foundation, either version 3 of the License, or (at your
option) any later version.
"""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("LICENSE", True),
        ("LICENCE.txt", True),
        ("license.md", True),
        ("COPYING", True),
        ("COPYING3", True),
        ("NOTICE", True),
        ("README.md", True),
        ("readme", True),
        ("LICENSE-MIT", True),
        ("MIT-LICENSE.txt", True),
        ("UNLICENSE", True),
        ("gpl-3.0.txt", True),
        ("AUTHORS", False),
        ("main.py", False),
        ("licenses.py", True),
        ("unlicensed_thing.c", False),
        ("about.html", True),
        ("legal_notes.txt", True),
        ("readme_test.go", True),
        ("README-zh.md", True),
        ("permitted.txt", False),
        ("", False),
    ],
)
def test_license_file_names(name, expected):
    assert is_license_file(name) is expected


# --- decision function: one case per branch of docs/spec.md §3.3 --------------------------------------------
@pytest.mark.parametrize(
    ("gha", "detected", "expected"),
    [
        ("MIT", ["GPL-3.0-only"], PERMISSIVE),  # GitHub's permissive license wins whatever the files say
        ("GPL-3.0-only", ["MIT"], NON_PERMISSIVE),  # GitHub's non-permissive license wins too
        ("LicenseRef-unknown-gha", [], NON_PERMISSIVE),  # any other GitHub id that is not NOASSERTION
        (None, [], NO_LICENSE),  # nothing anywhere
        ("NOASSERTION", [], NON_PERMISSIVE),  # GitHub saw a license it could not name, and we found none
        (None, ["MIT", "Apache-2.0"], PERMISSIVE),
        ("NOASSERTION", ["BSD-3-Clause"], PERMISSIVE),
        (None, ["MIT", UNKNOWN_REFERENCE], PERMISSIVE),  # a pointer to a known permissive license is dropped
        (None, [UNKNOWN_REFERENCE], NON_PERMISSIVE),  # ... but alone it is an unknown license
        (None, ["MIT", "LicenseRef-scancode-generic-cla"], PERMISSIVE),  # amendments do not change the type
        (None, ["LicenseRef-scancode-generic-cla", "LicenseRef-scancode-warranty-disclaimer"], NO_LICENSE),
        (None, ["MIT", "GPL-2.0-only"], NON_PERMISSIVE),  # one non-permissive license is enough
        ("NOASSERTION", ["LicenseRef-scancode-proprietary-license"], NON_PERMISSIVE),
    ],
)
def test_license_type_branches(gha, detected, expected):
    assert license_type(gha, detected, PERMISSIVE_IDS) == expected


@given(
    st.one_of(st.none(), st.sampled_from(["MIT", "GPL-3.0-only", "NOASSERTION", "Apache-2.0", "x"])),
    st.lists(
        st.sampled_from(
            [
                "MIT",
                "GPL-2.0-only",
                UNKNOWN_REFERENCE,
                "LicenseRef-scancode-generic-cla",
                "BSD-2-Clause",
                "LicenseRef-scancode-proprietary-license",
            ]
        ),
        max_size=4,
    ),
)
def test_license_type_algebra(gha, detected):
    t = license_type(gha, detected, PERMISSIVE_IDS)
    assert t in LICENSE_TYPES
    assert t == license_type(gha, list(reversed(detected)) * 2, PERMISSIVE_IDS)  # a set function of `detected`
    if gha in PERMISSIVE_IDS:
        assert t == PERMISSIVE
    if gha is None and not detected:
        assert t == NO_LICENSE


def test_permissive_list_is_scancode_categories_plus_blue_oak_extras():
    assert {
        "MIT",
        "Apache-2.0",
        "BSD-3-Clause",
        "ISC",
        "Unlicense",
        "CC0-1.0",
        "Zlib",
        "PSF-2.0",
        "Artistic-2.0",
        "LicenseRef-scancode-public-domain",
    } <= PERMISSIVE_IDS
    assert (
        not {
            "GPL-2.0-only",
            "GPL-3.0-or-later",
            "AGPL-3.0-only",
            "LGPL-2.1-only",
            "MPL-2.0",
            "NOASSERTION",
            UNKNOWN_REFERENCE,
            "LicenseRef-scancode-proprietary-license",
        }
        & PERMISSIVE_IDS
    )


def test_permissive_list_override(tmp_path):
    custom = tmp_path / "ids.txt"
    custom.write_text("# only these\nMIT\n\nGPL-3.0-only  # we decided so\n")
    ids = load_permissive(str(custom))
    assert ids == {"MIT", "GPL-3.0-only"}
    assert license_type("GPL-3.0-only", [], ids) == PERMISSIVE
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty"):
        load_permissive(str(tmp_path / "empty.txt"))


def test_shipped_permissive_list_is_what_the_script_generates(capsys):
    scancode_index()  # the license database comes with the index: loading it here is free, a subprocess is not
    spec = importlib.util.spec_from_file_location("make_permissive_list", REPO / "scripts" / "make_permissive_list.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--check"]) == 0, capsys.readouterr().out


# --- propagation ------------------------------------------------------------------------------------------------
def test_license_job_settings_come_from_spark_options():
    """How the license job runs is set by Spark options (outside the stage's config hash); unset ones default."""
    assert LicenseJobConfig.from_options({}) == LicenseJobConfig()
    options = {LICENSE_JOB_OPTIONS["files_per_task"]: "50", "spark.stackv2.preloadModels": "false"}
    assert LicenseJobConfig.from_options(options) == LicenseJobConfig(files_per_task=50)
    with pytest.raises(ValueError, match="shared_index_min_tasks must be > 0"):
        LicenseJobConfig.from_options({LICENSE_JOB_OPTIONS["shared_index_min_tasks"]: "0"})


def test_blob_licenses_on_three_rows():
    """The license job's ``mapInArrow`` function: one row out per row in, a null content is no text."""
    import pyarrow as pa

    from udfs.annotate import BLOB_LICENSES, LICENSE_INPUT, blob_licenses

    batch = pa.RecordBatch.from_pydict({"blob_id": ["a", "b", "c"], "content": [MIT, None, GPL_NOTICE]}, LICENSE_INPUT)
    (out,) = blob_licenses(AnnotateConfig())(iter([batch]))
    assert out.schema == BLOB_LICENSES
    assert out.to_pydict() == {"blob_id": ["a", "b", "c"], "licenses": [["MIT"], [], ["GPL-3.0-or-later"]]}


def test_the_license_job_unloads_an_index_its_task_loaded_and_keeps_one_it_inherited():
    """A worker that loaded ScanCode's index for its task gives it back when the task ends (~1 GiB); one forked from
    a daemon that preloaded the index (shared by the job's workers) keeps it."""
    import pyarrow as pa

    from stackv2.detect.license import index_loaded, scancode_index, unload_index
    from udfs.annotate import LICENSE_INPUT, blob_licenses

    def rss_mib() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20

    batch = pa.RecordBatch.from_pydict({"blob_id": ["a"], "content": [MIT]}, LICENSE_INPUT)
    if index_loaded():
        unload_index()
    task = blob_licenses(AnnotateConfig())(iter([batch]))
    (out,) = [next(task)]
    loaded = rss_mib()
    assert out.column("licenses").to_pylist() == [["MIT"]] and index_loaded()
    assert list(task) == [] and not index_loaded()
    assert rss_mib() < loaded - 500, "the index's memory went back to the system"
    scancode_index()  # as a preloading daemon does before it forks the worker
    (out,) = list(blob_licenses(AnnotateConfig())(iter([batch])))
    assert out.column("licenses").to_pylist() == [["MIT"]] and index_loaded()


def test_base_path():
    assert base_path("/a/b/LICENSE") == "/a/b/"
    assert base_path("/LICENSE") == "/"
    assert base_path("LICENSE") == ""


def test_nested_license_covers_only_its_subfolder():
    paths = ["/LICENSE", "/main.py", "/sub/LICENSE", "/sub/x.py", "/sub/deep/y.py", "/subway/z.py", "/other/w.py"]
    found = [["MIT"], None, ["GPL-3.0-only"], [], None, None, None]
    assert dict(zip(paths, propagate(paths, found), strict=True)) == {
        "/LICENSE": ["MIT"],
        "/main.py": ["MIT"],
        "/sub/LICENSE": ["GPL-3.0-only", "MIT"],
        "/sub/x.py": ["GPL-3.0-only", "MIT"],
        "/sub/deep/y.py": ["GPL-3.0-only", "MIT"],
        "/subway/z.py": ["MIT"],
        "/other/w.py": ["MIT"],
    }


def test_only_nested_license():
    paths = ["/src/lib/COPYING", "/src/lib/a.c", "/src/b.c", "/README.md"]
    out = propagate(paths, [["BSD-3-Clause"], None, None, []])
    assert out == [["BSD-3-Clause"], ["BSD-3-Clause"], [], []]


_segment = st.sampled_from(["a", "b", "ab", "LICENSE", "x.py"])


@given(
    st.lists(
        st.tuples(
            st.lists(_segment, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s)),
            st.lists(st.sampled_from(["MIT", "GPL-3.0-only", "ISC"]), max_size=2),
        ),
        max_size=12,
    )
)
def test_propagate_equals_the_reference_startswith_join(rows):
    """The reference joins each file to every (repo, base_path) with ``path.startswith(base_path)``."""
    paths = [p for p, _ in rows]
    licenses = [lic for _, lic in rows]
    dirs: dict[str, set[str]] = {}
    for p, lic in rows:
        if lic:
            dirs.setdefault(base_path(p), set()).update(lic)
    expected = [sorted(set().union(*[lic for b, lic in dirs.items() if p.startswith(b)])) for p in paths]
    assert propagate(paths, licenses) == expected


# --- ScanCode ---------------------------------------------------------------------------------------------------
def test_mit_with_copyright_line_is_detected():
    # The reference's deadline=100 call misses exactly this kind of file (docs/licenses.md).
    assert detect_licenses(MIT) == ["MIT"]


def test_gpl_notice_and_apache_reference():
    assert detect_licenses(GPL_NOTICE) == ["GPL-3.0-or-later"]
    assert "Apache-2.0" in detect_licenses(
        'Licensed under the Apache License, Version 2.0 (the "License");\n'
        "you may not use this file except in compliance with the License.\n"
    )


@pytest.mark.parametrize("text", ["", "   \n\n", "# My project\n\nA tool that does things.\n", "\x00\ufffd\ufffd"])
def test_no_license_text(text):
    assert detect_licenses(text) == []


def test_odd_encoding_license_file():
    # A LICENSE stored in windows-1252 and decoded by fetch keeps its accents; UTF-16 text decodes the same way.
    raw = MIT.replace("(c)", "©").encode("cp1252")
    assert detect_licenses(raw.decode("cp1252")) == ["MIT"]
    assert detect_licenses(MIT.encode("utf-16").decode("utf-16")) == ["MIT"]


def test_long_license_file_is_capped():
    text = MIT + ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n" * 200_000)  # ~11 MiB
    assert detect_licenses(text, LicenseConfig(max_chars=len(MIT))) == ["MIT"]


# --- the fast path is ScanCode's detect_licenses, minus work whose result is never read ---------------------------
README_REFERENCES = [
    "# geo\n\nShapes and areas.\n\n## License\n\nMIT, see [LICENSE](LICENSE).\n",
    "# tool\n\nLicensed under the Apache License, Version 2.0. See the LICENSE file for details.\n",
    "This project is released under the GPL.\n\nCopyright (c) 2019 The Authors\n",
    "License: BSD\n",
    "SPDX-License-Identifier: MIT OR Apache-2.0\n",
    "Public domain.\n",
    "This file is part of foo. foo is free software; see COPYING for copying conditions.\n",
    "GPL GPL GPL LGPL\n\n" + "filler line\n" * 30 + "license: gpl\n",
    "Dual licensed under the MIT and GPL licenses:\n  http://www.opensource.org/licenses/mit-license.php\n"
    "  http://www.gnu.org/licenses/gpl.html\n",
    # rules with relevance < 100: ScanCode reads their matched text (false positives, clues)
    "GPL\n",
    "lgpl\n",
    "freeware\n",
    "unlicense\n",
    "Copyright (c) 2020 Foo. GPL\n",
    "License: BSD\n",
    "The GPL\n" + "x\n" * 40 + "GPL v2\n",
    "\n" * 30 + "gpl\n",
    # possible false positives whose texts may or may not name a copyright: on the line, the next one, some lines
    # apart, across line breaks other than "\n"
    "GPL\nCopyright (c) 2020 Foo\n",
    "Copyright 2020 Foo\nThe GPL\n",
    "Copyright (c) 2020 Foo. GPL\nGPL\n",
    "GPL (C) Foo GPL\n\n\nGPL\n",
    "gpl\r(c) 2001\rlgpl\r",
    "GPL\x0cCopyright Foo\x0cGPL\n",
    "GPL\u2028(c) Foo\u2028\u2028\u2028lgpl\n",
    "Software under the GPL, copyright me\n",
]


def _scancode_texts(every: int) -> list[str]:
    from licensedcode.cache import get_licenses_db

    spdx = [
        lic
        for _, lic in sorted(get_licenses_db().items())
        if lic.spdx_license_key and not lic.spdx_license_key.startswith("LicenseRef-")
    ]
    texts = [lic.text for lic in spdx if (lic.text or "").strip()]
    return texts[::every]


def _scancode_own(text: str, approximate: bool) -> list[str | None]:
    from licensedcode.detection import detect_licenses as scancode_detect

    return [
        d.license_expression
        for d in scancode_detect(index=scancode_index(), query_string=text, approximate=approximate)
    ]


def test_fast_path_equals_scancode_detect_licenses():
    """Symbol for symbol, in order, on ScanCode's own license texts (~50 SPDX texts), the same with copyright lines
    and other text around them, README-style references and loose mentions (low-relevance rules: the texts of
    those ScanCode may call false positives are read)."""
    from licensedcode.detection import group_matches, is_false_positive
    from licensedcode.match import LicenseMatch

    spdx = _scancode_texts(every=15)
    texts = [
        *spdx,
        MIT,
        GPL_NOTICE,
        *README_REFERENCES,
        *(f"Copyright (c) 2001-2024 Jane Doe <jane@example.org>\nAll rights reserved.\n\n{t}" for t in spdx[:12]),
        *(f"# Project\n\nSome text about the project.\n\n## License\n\n{t}\n\nThanks!\n" for t in spdx[12:20]),
        spdx[0] + "\n\n" + spdx[1] + "\n\n" + GPL_NOTICE,
    ]
    unread_cls = _adapter_classes()[1]
    groups = Counter()
    for text in texts:
        assert _expressions(text, False) == _scancode_own(text, False), text[:200]
        for group in group_matches(scancode_index().match(query_string=text, approximate=False)):
            full = all(m.rule.relevance == 100 for m in group)
            try:
                for m in group:
                    m.__class__ = unread_cls
                read = is_false_positive(license_matches=group)
            finally:
                for m in group:
                    m.__class__ = LicenseMatch
            groups["texts read" if read else "full relevance" if full else "lower relevance, texts unread"] += 1
    # every branch of the adapter ran
    assert groups["full relevance"] > 50, groups
    assert groups["lower relevance, texts unread"] > 5, groups
    assert groups["texts read"] > 2, groups
    assert None in _expressions("GPL\n", False)  # a false positive: ScanCode keeps the detection, no expression


def test_a_possible_false_positive_builds_texts_only_where_every_match_may_name_a_copyright():
    def groups(text):
        from licensedcode.detection import group_matches

        return list(group_matches(scancode_index().match(query_string=text, approximate=False)))

    [quiet] = groups("GPL\n")
    assert not _may_all_name_a_copyright(quiet, "GPL\n")
    for text in ("Copyright (c) 2020 Foo. GPL\n", "GPL\nCopyright (c) 2020 Foo\n", "(C) GPL"):
        assert all(_may_all_name_a_copyright(g, text) for g in groups(text)), text


@pytest.mark.slow
def test_fast_path_equals_scancode_with_approximate_matching():
    for text in [*_scancode_texts(every=60), *README_REFERENCES, MIT.replace("free of charge", "for free")]:
        assert _expressions(text, True) == _scancode_own(text, True), text[:200]


def test_fast_path_is_used_and_restores_matches():
    from licensedcode.match import LicenseMatch

    assert _fast_path_ok()  # tests run the ScanCode release the fast path was checked against
    assert scancode_expressions(MIT) == _scancode_own(MIT, False)
    classes = {type(m) for m in scancode_index().match(query_string=MIT, approximate=False)}
    assert classes == {LicenseMatch}


def test_scancode_index_is_out_of_the_garbage_collectors_sight():
    import gc

    from stackv2.detect.license import scancode_index

    scancode_index()
    # Spark's reused workers run gc.collect() after every task: the index must not be walked each time.
    assert gc.get_freeze_count() > 500_000
