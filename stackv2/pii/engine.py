"""The presidio analyzer, configured fully offline: a blank spaCy English pipeline shipped in ``stackv2/data``,
the project's code recognizers, the key rule library (``stackv2.pii.rules``), tldextract on its bundled suffix list,
and optionally a local NER model.

Nothing here touches the network: spaCy loads a folder (presidio downloads only names it cannot find on disk),
tldextract is given no suffix-list URLs, detect-secrets plugins are used for their patterns only (their
``verify`` calls are never made), the rule library only scans (its validation is never called), and the NER path
refuses anything but a local folder.
"""

from __future__ import annotations

import importlib.resources
from functools import lru_cache
from pathlib import Path

from stackv2.pii import recognizers as R
from stackv2.pii.config import PiiConfig, PiiSetupError
from stackv2.pii.rules import RuleDetector

#: ``spacy.blank("en").to_disk(...)``: a tokenizer only, no weights (see ``save_blank_pipeline``).
BLANK_SPACY = Path(str(importlib.resources.files("stackv2") / "data" / "spacy_blank_en"))


class PiiEngine:
    """A presidio ``AnalyzerEngine`` plus, per entity, the cheap candidate scan ``redact`` prefilters with."""

    def __init__(self, cfg: PiiConfig):
        import spacy  # noqa: F401  (fail here, clearly, if spaCy is missing)
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine

        if not (BLANK_SPACY / "config.cfg").is_file():
            raise PiiSetupError(f"blank spaCy pipeline missing at {BLANK_SPACY}; run save_blank_pipeline()")
        unknown = set(cfg.entities) - {R.EMAIL, R.IP_ADDRESS, R.KEY, R.PASSWORD}
        if unknown:
            raise PiiSetupError(f"pii.entities: unknown {sorted(unknown)}")
        install_offline_tldextract()
        keys = R.KeyDetector(cfg.gibberish_limit, cfg.key_min_length, cfg.gibberish_all_plugins)
        finders = {
            R.EMAIL: (lambda t: R.find_emails(t, cfg.email_public_suffix), R.email_candidates),
            R.IP_ADDRESS: (lambda t: R.find_ips(t, cfg.ip_context_chars), R.ip_candidates),
            R.KEY: (keys.find, R.key_candidates),
            R.PASSWORD: (R.find_passwords, R.password_candidates),
        }
        recognizers = [R.CodeRecognizer(e, *finders[e]) for e in cfg.entities]
        #: entity -> candidate positions function; entities without one (the NER model) run on every window.
        self.candidates = {r.supported_entities[0]: r.candidates for r in recognizers}
        self.always: tuple[str, ...] = ()
        if cfg.ner_model:
            ner = R.NerRecognizer(cfg.ner_model, cfg.ner_entities, cfg.ner_min_score)
            recognizers.append(ner)
            self.always = tuple(cfg.ner_entities)
        #: The rule library, run over whole files (linear time) rather than in presidio's windows.
        self.rules = RuleDetector(timeout_s=cfg.rules_timeout_s) if cfg.key_rules and R.KEY in cfg.entities else None
        self.rule_entities = frozenset(cfg.entities)
        if not recognizers:  # presidio would load its own default recognizers for an empty registry
            raise PiiSetupError("pii.entities is empty and no pii.ner_model is set: nothing to detect")
        nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": str(BLANK_SPACY)}])
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
        # Tokens (spaCy) serve only presidio's context enhancer, for recognizers with context words. Ours have
        # none (they check their context themselves), and tokenizing took most of the redaction time: skip it then.
        self.tokens_needed = any(r.context for r in recognizers)
        self._no_tokens = NlpArtifacts(
            entities=[], tokens=nlp.nlp["en"].make_doc(""), tokens_indices=[], lemmas=[], nlp_engine=nlp, language="en"
        )

    def rule_spans(self, text: str, windows) -> list[tuple[int, int, str]]:
        """The rule library's KEY/PASSWORD spans in ``text``: one scan of the whole text; past the timeout, one
        scan per window (each bounded by the window size), keeping what starts in the window's own region."""
        if self.rules is None:
            return []
        try:
            found = self.rules.find(text)
        except TimeoutError:
            found = []
            for w in windows:
                try:
                    spans = self.rules.find(text[w.start : w.end])
                except TimeoutError:
                    continue
                found += [(s + w.start, e + w.start, t) for s, e, t in spans if w.own_start <= s + w.start < w.own_end]
        return [
            (s, e, t)
            for s, e, t in found
            if t in self.rule_entities and (t != R.PASSWORD or R.is_password_value(text[s:e]))
        ]

    def analyze(self, text: str, entities: list[str]) -> list[tuple[int, int, str]]:
        artifacts = None if self.tokens_needed else self._no_tokens
        results = self.analyzer.analyze(text=text, language="en", entities=entities, nlp_artifacts=artifacts)
        return [(r.start, r.end, r.entity_type) for r in results]


@lru_cache(maxsize=4)
def get_engine(cfg: PiiConfig) -> PiiEngine:
    """One engine per process and config (the Spark UDF reuses it across batches and partitions)."""
    return PiiEngine(cfg)


def install_offline_tldextract() -> None:
    """Point tldextract's module-level ``extract`` (used by presidio's own e-mail/URL recognizers) at the
    bundled suffix list, so nothing in this process fetches publicsuffix.org."""
    import tldextract.tldextract as tx

    tx.TLD_EXTRACTOR = R.suffix_extractor()


def save_blank_pipeline(path: Path = BLANK_SPACY) -> None:
    """(Re)create the shipped pipeline (``spacy.blank("en")``: tokenizer rules only, nothing downloaded)."""
    import spacy

    spacy.blank("en").to_disk(path)
