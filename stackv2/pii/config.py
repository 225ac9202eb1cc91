"""PII settings and entity names; imports nothing heavy, so ``RunConfig`` can hold a ``PiiConfig`` cheaply."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from stackv2.checks import fraction, non_negative, positive

EMAIL = "EMAIL"
IP_ADDRESS = "IP_ADDRESS"
KEY = "KEY"
PASSWORD = "PASSWORD"  # noqa: S105 (an entity name)
NAME = "NAME"
USERNAME = "USERNAME"
#: Entity types the redaction replaces (USERNAME and AMBIGUOUS are skipped, docs/spec.md §7.3).
REDACTED = (EMAIL, IP_ADDRESS, KEY, NAME, PASSWORD)
#: What a redacted value becomes (docs/spec.md §7.3); the tokenizer encodes each as its own special id wherever
#: content holds it (docs/spec.md §10.3, docs/tokenize.md).
PLACEHOLDERS = {EMAIL: "<EMAIL>", KEY: "<KEY>", NAME: "<NAME>", PASSWORD: "<PASSWORD>"}


class PiiSetupError(RuntimeError):
    """The PII engine cannot start as configured (missing optional dependency, bad model path)."""


@dataclass(frozen=True)
class PiiConfig:
    """Defaults: BigCode's regex/detect-secrets rules (docs/spec.md §7.4) and StarPII's replacements
    (docs/spec.md §7.3); where a value is ours, its comment says why."""

    #: Regex/detect-secrets detectors to run (docs/spec.md §7.4), plus PASSWORD (trigger-word literals).
    entities: tuple[str, ...] = (EMAIL, IP_ADDRESS, KEY, PASSWORD)
    #: E-mail domains must end in a public suffix (tldextract's bundled list) and not be a reserved example
    #: domain (RFC 2606 example.com/.net/.org); BigCode had neither check.
    email_public_suffix: bool = True
    #: Gibberish threshold for entropy-plugin keys (docs/spec.md §7.4: keep only gibberish), on detect-secrets'
    #: ``rfc.model`` (BigCode's ``big.model`` ships in no installable package). On a held-out sample 3.5 keeps 81 %
    #: of random base64/hex keys and 40 of 56 such values in 1,500 real files; BigCode's 4.0: 49 % and 23
    #: (``bench/pii/calibrate.py``, docs/pii.md).
    gibberish_limit: float = 3.5
    #: Apply the gibberish check to every plugin's values, as BigCode did. Off: only to the entropy plugins'
    #: (BigCode's own comment: "the entropy detectors esp Base64 need the gibberish detector"); a fixed token
    #: format (``ghp_…``, ``AKIA…``, ``sk_live_…``) is evidence enough, and its letters say nothing about English.
    gibberish_all_plugins: bool = False
    #: Also run the key rule library (kingfisher-secret-scanner's built-in rules: provider keys and tokens, private
    #: keys, JWTs, credentials in URIs; docs/pii.md). Off: BigCode's detect-secrets subset alone (docs/spec.md
    #: §7.4), whose file-level recall on real-format keys was 0.51 against 0.82 for the rules alone
    #: (bench/pii/secret_eval.py).
    key_rules: bool = True
    #: One rule scan of a file may take this long before the file is scanned window by window instead.
    rules_timeout_s: float = 5.0
    #: Keys must be longer than 8 characters (docs/spec.md §7.3).
    key_min_length: int = 9
    #: Drop every key of a file whose "sha"/"hash" count exceeds this share of its lines (docs/spec.md §7.4).
    hash_line_ratio: float = 0.02
    #: Characters either side of an ``x.x.x.x`` match searched for "dns"/"server" (docs/spec.md §7.4).
    ip_context_chars: int = 100
    #: Presidio sees at most ~window_chars + 2 * overlap_chars at once: its cost grows faster than linearly.
    window_chars: int = 2048
    #: Context added on each side of a window; spans up to this long are never cut at a window edge.
    overlap_chars: int = 256
    #: Optional local token-classification model folder (e.g. StarPII); needs ``transformers`` + ``torch``.
    ner_model: str | None = None
    #: Labels taken from the NER model; USERNAME is detected but not redacted (docs/spec.md §7.3 skips it).
    ner_entities: tuple[str, ...] = (NAME, PASSWORD, USERNAME)
    ner_min_score: float = 0.5
    #: Spark stage: also write the ``spans`` audit table (offsets and types, never values).
    write_spans: bool = True

    def __post_init__(self) -> None:
        positive(self, "pii", "rules_timeout_s", "key_min_length", "window_chars")
        non_negative(self, "pii", "ip_context_chars", "overlap_chars")
        fraction(self, "pii", "hash_line_ratio", "ner_min_score")


def model_fingerprint(cfg: PiiConfig) -> str:
    """Names and sizes of the NER model's files (contents too for files under 1 MB: configs, vocabularies), so a
    model replaced at the same path changes the stage's config hash. Empty without a model."""
    if not cfg.ner_model or not Path(cfg.ner_model).is_dir():
        return ""
    h = hashlib.sha256()
    root = Path(cfg.ner_model)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        size = f.stat().st_size
        h.update(f"{f.relative_to(root)}\0{size}\0".encode())
        if size < 1 << 20:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]
