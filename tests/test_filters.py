"""Unit tests of the filter heuristics (docs/spec.md §5): each check at its boundaries, and the fixed order."""

from __future__ import annotations

import base64
import random
import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stackv2.filters import CHECKS, COLUMNS, REASONS, FileFilter, FilterConfig, content, lines, metadata

CFG = FilterConfig()
CLEAN = "def add(a, b):\n    return a + b\n"


def row(**overrides):
    """A clean, kept Python row; tests change the fields a check reads."""
    r = {
        "path": "/src/add.py",
        "content": CLEAN,
        "length_bytes": len(CLEAN),
        "language": "Python",
        "extension": "py",
        "is_generated": False,
        "license_type": "permissive",
        "alpha_fraction": 0.6,
        "alphanum_fraction": 0.65,
        "num_lines": 2,
        "avg_line_length": 15.0,
        "max_line_length": 16,
    }
    r.update(overrides)
    return r


def reason(cfg=CFG, **overrides):
    return FileFilter(cfg).reason(row(**overrides))


def test_clean_row_kept_and_reasons_unique():
    assert reason() is None
    assert len(set(REASONS)) == len(REASONS)
    assert set(COLUMNS) == set(row())


@pytest.mark.parametrize("column", metadata.REQUIRED)
def test_missing_annotation(column):
    assert reason(**{column: None}) == metadata.MISSING_ANNOTATION


def test_nullable_columns_do_not_crash():
    assert reason(language=None, extension=None, path=None) is None


@pytest.mark.parametrize("license_type", ["permissive", "no_license", "non_permissive"])
def test_license_type_is_decided_before_the_filters(license_type):
    """Stage exact_dedup decides licenses (as BigCode did, before near-dedup); the filters do not look again."""
    assert reason(license_type=license_type) is None


def test_size_cap_is_10_mib_exclusive():
    assert reason(length_bytes=10 * 1024 * 1024 - 1) is None
    assert reason(length_bytes=10 * 1024 * 1024) == metadata.TOO_LARGE == "too_large"


def test_excluded_languages_and_extensions_default_empty_and_configurable():
    assert CFG.excluded_languages == () and CFG.excluded_extensions == ()
    cfg = FilterConfig(excluded_languages=("Python",), excluded_extensions=(".CSV",))
    assert reason(cfg) == metadata.EXCLUDED_LANGUAGE
    assert reason(cfg, language="Go", extension="csv") == metadata.EXCLUDED_EXTENSION
    assert reason(cfg, language="Go", extension=".Csv") == metadata.EXCLUDED_EXTENSION
    assert reason(cfg, language="Go", extension="go") is None


@pytest.mark.parametrize("language", ["Python", *CFG.long_line_exempt_languages])
def test_more_than_100k_lines_rejected_for_every_language(language):
    f = lines.long_lines
    assert not f(row(language=language, num_lines=100_000, avg_line_length=5.0, max_line_length=9), CFG)
    assert f(row(language=language, num_lines=100_001, avg_line_length=5.0, max_line_length=9), CFG)


def test_line_length_thresholds():
    assert reason(avg_line_length=100.0, max_line_length=1_000) is None
    assert reason(avg_line_length=np.float32(100.01)) == lines.LONG_LINES
    assert reason(max_line_length=1_001) == lines.LONG_LINES


@pytest.mark.parametrize("language", CFG.long_line_exempt_languages)
def test_exempt_languages_fail_only_beyond_100k_chars(language):
    f = lines.long_lines
    assert set(CFG.long_line_exempt_languages) == {
        "HTML",
        "JSON",
        "Markdown",
        "Roff",
        "Roff Manpage",
        "SMT",
        "TeX",
        "Text",
        "XML",
    }
    assert not f(row(language=language, avg_line_length=5_000.0, max_line_length=100_000), CFG)
    assert f(row(language=language, avg_line_length=5.0, max_line_length=100_001), CFG)


@pytest.mark.parametrize("language", ["Text", "JSON", "YAML", "Web Ontology Language", "Graphviz (DOT)"])
def test_data_languages_limited_to_512_lines(language):
    assert not lines.too_many_lines(row(language=language, num_lines=512), CFG)
    assert lines.too_many_lines(row(language=language, num_lines=513), CFG)


def test_512_lines_rule_only_for_data_languages():
    assert reason(num_lines=5_000) is None


@pytest.mark.parametrize(
    ("path", "rejected"),
    [
        ("/requirements.txt", False),
        ("/docs/dev-Requirements-py3.txt", False),
        ("/README.txt", False),
        ("/README", False),
        ("/notes.txt", False),
        ("/TODO", False),
        ("/description.txt", False),
        ("/CMakeLists.txt", False),
        ("/data.txt", True),
        ("/readme_old.txt", True),
        ("/LICENSE.txt", True),
    ],
)
def test_text_filename(path, rejected):
    assert metadata.text_filename(row(language="Text", path=path), CFG) is rejected
    assert not metadata.text_filename(row(language="Python", path=path), CFG)


def test_alpha_fraction_boundary_exactly_25_percent_kept():
    assert reason(alpha_fraction=np.float32(0.25)) is None
    assert reason(alpha_fraction=np.float32(0.2499)) == content.ALPHA


@pytest.mark.parametrize("language", ["Motorola 68K Assembly", "WebAssembly"])
def test_alphanumeric_languages(language):
    assert reason(language=language, alpha_fraction=0.05, alphanum_fraction=np.float32(0.25)) is None
    assert reason(language=language, alpha_fraction=0.9, alphanum_fraction=np.float32(0.2499)) == content.ALPHA
    assert reason(language="Assembly", alpha_fraction=0.05, alphanum_fraction=0.9) == content.ALPHA


def test_autogenerated_flag():
    assert reason(is_generated=True) == content.AUTOGENERATED


@pytest.mark.parametrize("keyword", CFG.autogenerated_keywords)
def test_autogenerated_keywords_in_first_five_lines_any_case(keyword):
    head = "\n" * 4 + f"# {keyword.upper()} by a tool\n"
    assert content.autogenerated(row(content=head + CLEAN), CFG)
    assert not content.autogenerated(row(content="\n" + head + CLEAN), CFG)  # now on line 6


def _b64(n: int) -> str:
    run = base64.b64encode(random.Random(n).randbytes(n)).decode().rstrip("=")
    return (run * 2)[:n]


def test_encoded_data_single_match_boundary():
    prose = "the quick brown fox jumps over the lazy dog\n" * 60  # ~2.6k chars, no 64-char run
    assert not content.encoded_data(row(content=f'key = "{_b64(1024)}"\n{prose}'), CFG)
    assert content.encoded_data(row(content=f'key = "{_b64(1025)}"\n{prose}'), CFG)


def test_encoded_data_half_of_file_boundary():
    assert not content.encoded_data(row(content="a" * 64 + " " * 64), CFG)  # exactly 50%
    assert content.encoded_data(row(content="a" * 65 + " " * 63), CFG)
    assert not content.encoded_data(row(content=""), CFG)


def test_encoded_data_hex_and_unicode_escapes():
    prose = "the quick brown fox jumps over the lazy dog\n" * 100
    assert content.encoded_data(row(content='s = "' + "\\x41" * 300 + '"\n' + prose), CFG)
    assert content.encoded_data(row(content='s = "' + "\\u00e9" * 200 + '"\n' + prose), CFG)
    assert content.encoded_data(row(content="0x00,0x01,0x02,0x03,0x04,0x05,0x06,0x07,0x08\n"), CFG)  # > 50%
    assert not content.encoded_data(row(content=CLEAN), CFG)


_HEX_TEXT = "0123456789abcdefABCDEFxXgz_\\, \t\n\x0b\x0c\r\x1c\x1f"


@given(st.text(alphabet=st.sampled_from(_HEX_TEXT), max_size=200) | st.text(_HEX_TEXT + "\u00a0\u2003é", max_size=200))
@example("ab cd ef 01 23 45 67 89\n")
@example("g0x01,0x02,0x03,0x04,0x05,0x06,0x07,0x08z")
@example("\\x41\\x42\\x43\\x44\\x45\\x46\\x47\\x48_ \\x41\\x42\\x43\\x44\\x45\\x46\\x47\\x48, ")
@example("01 23 45 67 89 ab cd ef 01g")
@example("ab cd\x0bef 01\x1c23 45 67 89\x0c")
def test_hex_runs_are_found_where_finditer_finds_them(text):
    """The region search of the hex pattern gives exactly ``finditer``'s matches (``\\b`` at region edges included), in
    ASCII text (runs found with ``bytes.find``) and in text with Unicode spaces, which ``\\s`` also matches."""
    pattern = re.compile(CFG.encoded_patterns[1])
    assert list(content._spans(pattern, text)) == [m.span() for m in pattern.finditer(text)]


@given(
    st.lists(st.sampled_from(["a" * 30, "Zz09+/=", "\n", "b" * 63, "c", " ", "-", "_", "é", "\u2003"]), max_size=30)
)
@example("a" * 64)
@example("a" * 63 + "-" + "a" * 64)
@example("x" + "a" * 200 + "\n" + "b" * 10)
@example("é" * 3 + "a" * 64 + "\ud800" + "b" * 70)
def test_base64_runs_are_found_where_finditer_finds_them(chunks):
    """The run search of the base64 pattern gives exactly ``finditer``'s matches, with other characters around."""
    text = "".join(chunks)
    pattern = re.compile(CFG.encoded_patterns[0])
    assert list(content._spans(pattern, text)) == [m.span() for m in pattern.finditer(text)]


def test_encoded_data_counts_overlapping_matches_once():
    # "ab\n" * 30 is one 90-char match of the base64 and of the hex pattern: 90 covered chars, not 180.
    blob = "ab\n" * 30
    assert not content.encoded_data(row(content=blob + "-" * 91), CFG)
    assert content.encoded_data(row(content=blob + "-" * 89), CFG)


PAPER_UNICODE_ESCAPES = r"(?:\\u[0-9a-fA-F]{4}){8,}"


@given(st.lists(st.sampled_from(["\\u00e9"] * 8 + ["\\u12G4", "\\u", "u", "\\", "0", " "]), max_size=40).map("".join))
@example("\\u00e9" * 8 + "\\u0" + "\\uABCD" * 9)
def test_unrolled_unicode_pattern_matches_like_the_papers(text):
    spans = [m.span() for m in re.finditer(CFG.encoded_patterns[2], text)]
    assert spans == [m.span() for m in re.finditer(PAPER_UNICODE_ESCAPES, text)]


def _html(visible: int, total: int) -> str:
    page = f"<p>{'v' * visible}</p><script>"
    return page + "x" * (total - len(page) - len("</script>")) + "</script>"


def test_html_visible_text_boundaries():
    assert len(_html(100, 500)) == 500
    assert content.visible_text(_html(100, 500)) == "v" * 100
    assert not content.html_visible_text(row(language="HTML", content=_html(100, 500)), CFG)  # 100 chars, 20%
    assert content.html_visible_text(row(language="HTML", content=_html(99, 400)), CFG)  # < 100 chars
    assert content.html_visible_text(row(language="HTML", content=_html(100, 501)), CFG)  # < 20%
    assert content.html_visible_text(row(language="HTML", content="<style>" + "p{}" * 50 + "</style>"), CFG)
    assert not content.html_visible_text(row(language="Vue", content=_html(1, 500)), CFG)


def test_first_failing_check_wins():
    r = {"length_bytes": 11 * 1024 * 1024, "num_lines": 200_000, "is_generated": True}
    assert reason(**r) == "too_large"
    assert reason(**{**r, "length_bytes": 100}) == "long_lines"
    assert [name for name, _ in CHECKS][:2] == ["missing_annotation", "too_large"]
    assert REASONS[-1] == "decontaminated"


def test_batch_reasons_match_row_reasons():
    rows = [row(), row(language="JSON", num_lines=600), row(is_generated=True), row(language="Text", path="/a.txt")]
    table = pa.Table.from_pylist([{**r, "extra": i} for i, r in enumerate(rows)])
    file_filter = FileFilter(CFG)
    assert file_filter.reasons(table.to_batches()[0]).to_pylist() == [
        None,
        "too_many_lines",
        "autogenerated",
        "text_filename",
    ]


def test_mark_batches_appends_reason_and_keeps_columns():
    from udfs.filter import mark_batches

    batches = pa.Table.from_pylist([row(), row(is_generated=True), row(content="x = 'ok'\n")]).to_batches(
        max_chunksize=2
    )
    out = list(mark_batches(CFG, ["x='ok'"])(iter(batches)))
    assert [b.num_rows for b in out] == [2, 1]
    merged = pa.Table.from_batches(out)
    assert merged.column("reason").to_pylist() == [None, "autogenerated", "decontaminated"]
    assert merged.drop_columns(["reason"]).equals(pa.Table.from_batches(batches))
