"""PII redaction for source code (docs/spec.md §7): ``redact(text, cfg)`` gives ``.text``, ``.counts``, ``.spans``.

Engine: presidio-analyzer, offline (blank spaCy pipeline shipped in ``stackv2/data``), with the BigCode e-mail and
IP rules, the detect-secrets key plugins and filters, trigger-word passwords, and an optional local NER model.
The redaction functions load lazily: importing the package (as ``stackv2.config`` does) must not pay presidio's
2-4 s import.
"""

from stackv2.pii.config import EMAIL, IP_ADDRESS, KEY, NAME, PASSWORD, REDACTED, USERNAME, PiiConfig, PiiSetupError

_LAZY = ("PLACEHOLDERS", "PiiSpan", "Redaction", "detect", "redact")

__all__ = [
    "EMAIL",
    "IP_ADDRESS",
    "KEY",
    "NAME",
    "PASSWORD",
    "REDACTED",
    "USERNAME",
    "PiiConfig",
    "PiiSetupError",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module("stackv2.pii.redaction"), name)
    raise AttributeError(f"module 'stackv2.pii' has no attribute {name!r}")
