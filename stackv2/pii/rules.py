"""Provider keys and tokens from a maintained rule library: the built-in rules of kingfisher-secret-scanner.

The rules (Apache-2.0; 462 from Betterleaks, the successor of gitleaks' rule set, and 26 from Google's Veles) are
data inside the package: a pattern per provider format, with keywords, entropy limits and the placeholder filters
of their upstream (``${VAR}``, ``{{ .x }}``, ``xxxx…``, ``true/false/null`` ...). They run in kingfisher's native
engine: a Vectorscan (Hyperscan) automaton finds candidate matches for every rule in one pass and a linear-time
regex confirms them, so a scan costs time linear in the input (about 75 MB/s on one core here, docs/pii.md) and
takes a timeout. The engine never validates a finding against its provider: only ``Scanner.scan`` is called,
which uses no network.

Kept: findings the library marks visible (not the helper rules other rules depend on), minus rules that find
identifiers rather than secrets (client, tenant, account and app ids, account names, hosts, public keys; the key
ids of access key pairs, like AWS's ``AKIA…``, are kept). A rule that finds a
password (a password in a service URI, a NuGet or Terraform password) gives a PASSWORD span, every other a KEY span.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from pathlib import Path

from stackv2.pii.config import KEY, PASSWORD

Span = tuple[int, int, str]

#: Rules that find identifiers, hosts or public keys: not secrets, so not redacted. Matched on the rule id
#: without its library prefix and variant suffix ("betterleaks.azure-client-id", "...auth0-domain.1").
NOT_SECRETS = re.compile(
    r"(?:(?<!key|ess|uth|ken)-id|-domain|-host|-name|-address|-instance-url|-project-url|-jfrog-url|public-key|"
    r"pub-key|pub-api-key)(?:\.\d+)?$"
)
#: Rules whose value is a password rather than a token.
PASSWORD_RULES = re.compile(r"password|credential-uri|passphrase|curl-auth-user")


def rules_cache_dir() -> Path:
    """Where the compiled rule database is kept for the next process: beside this environment's packages (as the
    JVM class archive is), so only whoever may change the packages may change it."""
    return Path(sys.prefix) / "share" / "stackv2" / "kingfisher-rules"


def compiled_rules(confidence: str, cache_dir: Path):
    """The built-in rules, compiled (~3.3 s of CPU) or loaded from what kingfisher stored in ``cache_dir`` (~0.3 s).
    Kingfisher recompiles an unreadable or incompatible entry, writes a new one under a temporary name and renames
    it, and uses no folder that another user could write to (tests/test_pii_secrets.py); storing is best effort,
    so a read-only environment compiles in every process."""
    from kingfisher_sdk import Rules

    return Rules(cache=True, cache_dir=cache_dir, confidence=confidence)


@lru_cache(maxsize=2)
def _scanner(confidence: str):
    """One compiled rule database per process."""
    from kingfisher_sdk import Scanner

    rules = compiled_rules(confidence, rules_cache_dir())
    return Scanner(rules, base64=False), rules


def rule_ids(confidence: str = "medium") -> list[str]:
    """Ids of the rules ``RuleDetector`` runs (loaded ones, minus ``NOT_SECRETS``)."""
    _, rules = _scanner(confidence)
    return sorted(m["id"] for m in rules.metadata() if not NOT_SECRETS.search(m["id"]))


class RuleDetector:
    """Spans of secrets that the rule library finds in a text, in the text's character offsets."""

    def __init__(self, confidence: str = "medium", timeout_s: float = 5.0):
        self.scanner, rules = _scanner(confidence)
        self.entity = {}
        for m in rules.metadata():
            if not NOT_SECRETS.search(m["id"]):
                self.entity[m["id"]] = PASSWORD if PASSWORD_RULES.search(m["id"]) else KEY
        self.timeout_s = timeout_s

    def find(self, text: str) -> list[Span]:
        """Raises ``TimeoutError`` past ``timeout_s`` (the caller then scans smaller pieces)."""
        data = text.encode("utf-8", "surrogatepass")
        ascii_only = len(data) == len(text)
        out = []
        for f in self.scanner.scan(data, timeout=self.timeout_s):
            entity = self.entity.get(f.rule_id)
            if entity is None or not f.visible:
                continue
            loc = f.location
            s, e = loc["start_offset"], loc["end_offset"]
            if not ascii_only:  # byte offsets -> character offsets
                s, e = _chars(data, s), _chars(data, e)
            if e > s:
                out.append((s, e, entity))
        return out


def _chars(data: bytes, pos: int) -> int:
    return len(data[:pos].decode("utf-8", "surrogatepass"))
