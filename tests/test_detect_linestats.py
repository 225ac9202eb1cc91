"""Line statistics: the numpy version equals the plain-Python definition (BigCode preprocessing) on any text."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stackv2.detect.linestats import EMPTY, LineStats, letter_count, line_stats


def reference(text: str) -> LineStats:
    """The definition, written the slow obvious way."""
    if not text:
        return EMPTY
    lengths = [len(line) for line in text.splitlines()]
    return LineStats(
        alpha_fraction=sum(c.isalpha() for c in text) / len(text),
        alphanum_fraction=sum(c.isalnum() for c in text) / len(text),
        num_lines=len(lengths),
        avg_line_length=sum(lengths) / len(lengths),
        max_line_length=max(lengths),
    )


_chars = st.one_of(st.sampled_from(list("ab1 \t\r\n\x0b\x0c\x1c\x85\u2028\u2029é٣Ω_\ud800")), st.characters())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_chars, max_size=60))
@example("\r\n")
@example("a\r\r\nb\n\n")
@example("x\ud83d")
@example("é\x85a")
@example("é\u2028a")
@example("é\u2029a\n")
def test_equals_the_reference_definition(text):
    got, want = line_stats(text), reference(text)
    assert (got.num_lines, got.max_line_length) == (want.num_lines, want.max_line_length)
    assert got.alpha_fraction == pytest.approx(want.alpha_fraction)
    assert got.alphanum_fraction == pytest.approx(want.alphanum_fraction)
    assert got.avg_line_length == pytest.approx(want.avg_line_length)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_chars, max_size=60))
@example("")
@example("x\ud83d")
def test_letter_count_equals_isalpha(text):
    assert letter_count(text) == sum(c.isalpha() for c in text)


_ascii = st.one_of(st.sampled_from(list("aZz09 _@[`{/:\t\r\n\x0b\x0c\x1c\x1d\x1e")), st.characters(max_codepoint=127))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_ascii, max_size=80))
@example("a\r\nb\x1c")
def test_ascii_text_equals_the_reference_exactly(text):
    """ASCII text takes the arithmetic path; its numbers are the definition's to the last bit."""
    assert line_stats(text) == reference(text)
    assert letter_count(text) == sum(c.isalpha() for c in text)


def test_ascii_classes_on_every_ascii_character():
    everything = "".join(map(chr, range(128)))
    for c in everything:
        stats = line_stats(c * 3)
        assert (stats.alpha_fraction, stats.alphanum_fraction) == (float(c.isalpha()), float(c.isalnum())), repr(c)


def test_examples():
    assert line_stats("") == EMPTY
    s = line_stats("ab 12\n\nxyz")
    assert (s.num_lines, s.max_line_length, s.avg_line_length) == (3, 5, pytest.approx(8 / 3))
    assert s.alpha_fraction == pytest.approx(5 / 10) and s.alphanum_fraction == pytest.approx(7 / 10)
    assert line_stats("one line, no newline").num_lines == 1
    assert line_stats("a\n").num_lines == 1


def test_ten_mib():
    text = "x = 1  # ok\n" * (10 * 1024 * 1024 // 12)
    s = line_stats(text)
    assert s.num_lines == 10 * 1024 * 1024 // 12 and s.max_line_length == 11
