"""PII detectors for source code (docs/spec.md §7.3-7.4), as plain functions on a text plus presidio recognizers.

Every ``find_*`` function takes the text of one window and returns ``(start, end)`` spans of values to redact;
each one also has a cheap ``*_candidates`` function (positions where a match may start nearby, a superset of its
matches, scanned with stdlib ``re`` over the whole file) that ``redact`` uses to skip windows where the detector
cannot fire. The presidio ``CodeRecognizer`` wraps a finder so the engine can run them.

* EMAIL: the BigScience/BigCode e-mail regex; the domain must end in a public suffix (tldextract's bundled
  snapshot, offline) so ``q@self.weight`` or ``x@W.T`` in numeric code is not an address.
* IP_ADDRESS: the BigCode IPv4/IPv6 regex and its false-positive filters (a digit, not a date, not a short
  ``x.x.x.x`` version unless "dns"/"server" is near, valid), minus private addresses and the public DNS list,
  plus a few filters of our own (``ip_is_redactable``).
* KEY: the detect-secrets plugin set BigCode used, its heuristic filters, then the gibberish check and the hash
  filters of docs/spec.md §7.4 (the file-level hash filter is applied in ``redaction.detect``: it needs the whole
  file); plus generic rules: a random-looking value assigned to a key/secret/token name, an ``Authorization``
  header's credential. Provider formats come from the rule library (``stackv2.pii.rules``), run per file.
* PASSWORD: a value assigned to a name holding a trigger word (password, passwd, pwd, passphrase ...) in code and
  config (quoted, or bare in config-style lines), XML elements and key/value attributes, connection strings
  (``;Password=…;``), URLs with credentials, command-line flags; placeholders and references are filtered.
"""

from __future__ import annotations

import bisect
import heapq
import importlib.resources
import ipaddress
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

import regex
from ahocorasick_rs import AhoCorasick
from presidio_analyzer import EntityRecognizer, RecognizerResult

from stackv2.pii.config import EMAIL, IP_ADDRESS, KEY, NAME, PASSWORD, USERNAME, PiiSetupError

Span = tuple[int, int]


# ---------------------------------------------------------------- e-mail (docs/spec.md §7.4, BigScience regex)

# Domain labels may not hold quotes or angle brackets (BigScience's may): with them, a domain ran across
# `a@b.io"token"c@d.io` and, after the token became "<KEY>", the next pass found two addresses.
_EMAIL = regex.compile(
    r"""
    (?<= ^ | [[({<\b\s@,?!;'"\p{Han}¿¡:.] | \\['"] )
    (
      (?: [^][(){}<>\b\s@,?!;'":#/\\=.\-] | (?: [=.\-] (?! [.@]) ) )+
      @
      (?:
        (?: \w | [^.\b\s@?!;,/()<>\-:'"] [^.\b\s@?!;,/()<>'"]{0,62} [^.\b\s@?!;,/()<>\-:'"] )
        \.
      ){1,10}
      (?: [\p{L}\p{M}]{2,63} | xn-- \w+ )
    )
    (?= $ | [])}>\b\s@,?!;'"\p{Han}] | \\['"] | : (?! \d) | \. (?! \S))
    """,
    regex.MULTILINE | regex.VERBOSE,
)
_EMAIL_CANDIDATE = re.compile(r"@[^\s@]+\.")  # "@" first: a literal is fast to search


def email_candidates(text: str) -> list[int]:
    return [m.start() for m in _EMAIL_CANDIDATE.finditer(text) if m.start() and not text[m.start() - 1].isspace()]


@lru_cache(maxsize=1)
def suffix_extractor():
    """tldextract on its bundled Public Suffix List snapshot: no fetch, no cache directory."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


#: RFC 2606 second-level example domains: documentation, never a person's address.
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")


def is_real_domain(domain: str) -> bool:
    """Ends in a public suffix and is not a reserved example domain."""
    low = domain.lower()
    if any(low == d or low.endswith("." + d) for d in EXAMPLE_DOMAINS):
        return False
    return bool(suffix_extractor()(low).suffix)


def find_emails(text: str, require_public_suffix: bool = True) -> list[Span]:
    spans = []
    for m in _EMAIL.finditer(text):
        value = m.group(1)
        if require_public_suffix and not is_real_domain(value.rpartition("@")[2]):
            continue
        spans.append(m.span(1))
    return spans


# ---------------------------------------------------------------- IP addresses (docs/spec.md §7.3-7.4)

_IPV4 = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)(?:\.(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)){3}"
_H = r"[0-9a-fA-F]{1,4}"
_V4TAIL = r"(?:(?:25[0-5]|(?:2[0-4]|1{0,1}[0-9]){0,1}[0-9])\.){3,3}(?:25[0-5]|(?:2[0-4]|1{0,1}[0-9]){0,1}[0-9])"
# BigCode's alternatives, with the two IPv4-embedding forms moved first: in BigCode's order "::ffff:192.168.0.1"
# matched as "::ffff:192" (a valid, public IPv6 address) before the mapped form was tried.
_IPV6 = "|".join(
    [
        rf"::(?:ffff(?::0{{1,4}}){{0,1}}:){{0,1}}{_V4TAIL}",
        rf"(?:{_H}:){{1,4}}:{_V4TAIL}",
        rf"(?:{_H}:){{7,7}}{_H}",
        rf"(?:{_H}:){{1,7}}:",
        rf"(?:{_H}:){{1,6}}:{_H}",
        rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
        rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
        rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
        rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
        rf"{_H}:(?:(?::{_H}){{1,6}})",
        rf":(?:(?::{_H}){{1,7}}|:)",
        r"fe80:(?::[0-9a-fA-F]{0,4}){0,4}%[0-9a-zA-Z]{1,}",
    ]
)
# Delimiters as lookarounds (BigCode consumed them), so "1.2.3.4 5.6.7.8" yields both addresses.
_IP = regex.compile(
    rf"(?<=^|[\b\s@?,!;:'\")(.\p{{Han}}])({_IPV4}|{_IPV6})(?=$|[\s@,?!;:'\"(.\p{{Han}}])", regex.MULTILINE
)
# An IPv4 address holds ".d.d." in its middle. An IPv6 address (after a non-word character, as the regex
# requires) is either 8 groups or has "::" after 1-7 groups; a leading "::" is the reserved ::/16 range, and
# "::ffff:a.b.c.d" is found by its IPv4 part. Times ("09:00:00") and reST ("note::") do not qualify. The scan
# looks for ":h:" or "::" (a literal first character is fast to search), then checks the shape where it starts.
_V4_CANDIDATE = re.compile(r"\.\d{1,3}\.\d{1,3}\.")
_V6_COLONS = re.compile(r":[0-9a-fA-F]{0,4}:")
_V6_SHAPE = re.compile(r"[0-9a-fA-F]{1,4}(?:(?::[0-9a-fA-F]{1,4}){3}|(?::[0-9a-fA-F]{1,4}){0,6}::)")
_HEX = frozenset("0123456789abcdefABCDEF")


def ip_candidates(text: str) -> list[int]:
    hits = [m.start() for m in _V4_CANDIDATE.finditer(text)]
    for m in _V6_COLONS.finditer(text):
        j = k = m.start()
        while k > 0 and j - k < 4 and text[k - 1] in _HEX:
            k -= 1
        if k < j and (k == 0 or not (text[k - 1].isalnum() or text[k - 1] == "_")) and _V6_SHAPE.match(text, k):
            hits.append(k)
    return sorted(hits)


_DATE_DELIM_L = r"(?:^|[\b\s@?,!;:'\")(.\p{Han}])"
_DATE_DELIM_R = r"(?:$|[\s@,?!;:'\"(.\p{Han}])"
_DATES = [
    regex.compile(_DATE_DELIM_L + body + _DATE_DELIM_R)
    for body in (
        r"([1-2][0-9]{3}[\p{Pd}/][1-2][0-9]{3})",
        r"([1-2][0-9]{3}[\p{Pd}/.][0-3][0-9][\p{Pd}/.][0-3][0-9])",
        r"([0-3][0-9][\p{Pd}/.][0-3][0-9][\p{Pd}/.](?:[0-9]{2}|[1-2][0-9]{3}))",
        r"([0-3][0-9][\p{Pd}/](?:[0-9]{2}|[1-2][0-9]{3}))",
        r"([1-2][0-9]{3}-[0-3][0-9])",
    )
]
#: Popular public DNS resolvers: configuration, not personal data; never replaced (docs/spec.md §7.3).
DNS_SERVERS = frozenset(
    {
        "8.8.8.8",
        "8.8.4.4",
        "1.1.1.1",
        "1.0.0.1",
        "76.76.19.19",
        "76.223.122.150",
        "9.9.9.9",
        "149.112.112.112",
        "208.67.222.222",
        "208.67.220.220",
        "8.26.56.26",
        "8.20.247.20",
        "94.140.14.14",
        "94.140.15.15",
    }
)


def _is_version_like(value: str, context: str, line_before: str) -> bool:
    """``x.x.x.x`` (three dots, seven characters) is a version number unless "dns"/"server" is near
    (docs/spec.md §7.4); so is any address after "version" on its line (``__version__ = "3.5.0.1"``), an addition
    to the spec."""
    low = context.lower()
    if "dns" in low or "server" in low:
        return False
    return (value.count(".") == 3 and len(value) == 7) or "version" in line_before.lower()


def ip_is_redactable(value: str, context: str = "", line_before: str = "") -> bool:
    """The docs/spec.md §7.3-7.4 filters: a digit, not a date, not a version, valid, public, not a popular DNS server.

    Also dropped: IPv6 values of fewer than three groups ("1::2" is Python slice syntax far more often than an
    address) and IPv4-mapped addresses whose IPv4 part is private.
    """
    if not any(c.isdigit() for c in value) or any(p.match(value) for p in _DATES):
        return False
    if _is_version_like(value, context, line_before):
        return False
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif "." not in value and sum(1 for g in value.split(":") if g) < 3:
            return False
    return not ip.is_private and value not in DNS_SERVERS


def find_ips(text: str, context_chars: int = 100) -> list[Span]:
    spans = []
    for m in _IP.finditer(text):
        s, e = m.span(1)
        context = text[max(0, s - context_chars) : e + context_chars]
        if ip_is_redactable(m.group(1), context, text[text.rfind("\n", 0, s) + 1 : s]):
            spans.append((s, e))
    return spans


# ---------------------------------------------------------------- keys (detect-secrets, docs/spec.md §7.4)

#: The detect-secrets plugins BigCode kept (Basic auth, keyword and private-key detectors removed).
KEY_PLUGINS = (
    "ArtifactoryDetector",
    "AWSKeyDetector",
    "Base64HighEntropyString",
    "HexHighEntropyString",
    "AzureStorageKeyDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "StripeDetector",
    "TwilioKeyDetector",
)
#: Spec §7.4's words, plus "checksum" and "digest" (same meaning, seen on lockfile lines).
_HASH_WORDS = ("sha", "md5", "hash", "byte", "checksum", "digest")
#: Lengths of hex MD5/SHA-1/SHA-256/SHA-512 digests and of base64 SHA-256/SHA-512 ones (``sha512-…`` integrity).
_HASH_LENGTHS = frozenset({32, 40, 64, 128, 44, 88})
#: Subresource-integrity and similar digests: ``sha512-<base64>``, ``md5:<hex>``.
_DIGEST_PREFIX = regex.compile(r"(?i)(?:sha\d*|md5)[-:]")
#: Shannon entropy a generic rule's value must exceed: (hex values, others). Lower than detect-secrets' entropy
#: plugins (3.0, 4.5) since the name already says secret; chosen on bench/pii/secret_eval.py's set (docs/pii.md).
NAMED_KEY_ENTROPY = (3.0, 3.5)
# Dotted or path-like names, file names, versions and words joined by separators are not keys.
_NOT_A_KEY = regex.compile(
    r"(?i)^[a-z_]+(?:[._\-][a-z_]+)+\d*$|\.(?:py|js|json|ya?ml|txt|html|pem|key|crt)$|example|sample|dummy|"
    r"test|fake|xxxx|your|placeholder|redacted|changeme|^\d+(?:\.\d+)+$"
)
# Candidates for the plugins' patterns, each far cheaper to scan than the patterns themselves: quoted strings
# that pass the entropy plugins' own test (charset and entropy limit), literal prefixes of the token formats, and
# lower-case words the keyword-assignment plugins (Cloudant, IBM, Softlayer, Slack webhooks) need.
#: A quoted string: ``["']([A-Za-z0-9+/=_-]{9,})["']``, scanned by ``_quoted`` as one pattern per opening quote.
_QUOTED_VALUE = r"""([A-Za-z0-9+/=_-]{9,})["']"""
#: Where a quoted string can start, per opening quote: the quote, the value and the closing quote looked ahead
#: (matching only the quote, so ``finditer`` skips none). A literal first character is searched for fast; the
#: two quotes as one class were tried at every position, three times slower.
_QUOTED_AT = tuple(re.compile(f"{quote}(?={_QUOTED_VALUE})") for quote in "\"'")
# Each pattern and literal below starts with a literal ``re`` and ``str.find`` search fast; an alternation of
# branches with different first characters is tried at every position (several times slower as one pattern).
_KEY_PREFIXES = (
    re.compile(r"A(?:KC|P[\dA-F]|3T|BIA|CCA|KIA|SIA|ccountKey=|C[a-z0-9]{32})"),
    re.compile(r"SK[a-z0-9]{32}"),
    re.compile(r"gh[opusr]_"),
)
#: Stripe's "rk_live_" and "sk_live_" are found as "k_live_" after an "r" or "s".
_STRIPE_TAIL = "k_live_"
_KEY_LITERALS = ("eyJ", "_authToken", "SG.", "-us")
_KEY_WORDS = ("cloudant", "ibm", "softlayer", "xox", "hooks.slack")
# A Discord token's ".xxxxxx.<27 chars>" tail; the token starts at most 26 characters before it.
_DISCORD_TAIL = re.compile(r"\.[\w-]{6}\.[\w-]{27}")


def _quoted(text: str) -> Iterator[tuple[int, str]]:
    """(start, value) of each quoted string ``finditer`` finds for ``["']`` + ``_QUOTED_VALUE``: of the strings that
    start at each quote, in order, those that start after the last one taken ends."""
    end = 0
    for m in heapq.merge(*(p.finditer(text) for p in _QUOTED_AT), key=re.Match.start):
        if (start := m.start()) >= end:
            value = m.group(1)
            yield start, value
            end = start + len(value) + 2


def _find_all(text: str, word: str) -> Iterator[int]:
    pos = text.find(word)
    while pos >= 0:
        yield pos
        pos = text.find(word, pos + 1)


#: The characters that case-insensitive ``re`` equates with an ASCII letter whose ``lower()`` is not that letter
#: (long s, dotless i); checked over every code point by the tests. "İ" lowers to two characters: see ``_folded``.
_ASCII_FOLD = (("\u017f", "s"), ("\u0131", "i"))


def _folded(text: str, low: str) -> str | None:
    """``text`` lower-cased character by character, each offset kept (None when a character lowers to more than
    one), from ``low = text.lower()``: an ASCII word found in it is where a case-insensitive pattern can match that
    word."""
    if len(low) != len(text):
        return None
    for char, letter in _ASCII_FOLD:
        low = low.replace(char, letter)
    return low


def _finditer_at(pattern: re.Pattern | regex.Pattern, text: str, starts: Iterable[int]) -> Iterator[re.Match]:
    """``pattern.finditer(text)`` (for a pattern without empty matches), given sorted positions that include every
    position a match can start at: the pattern is tried only there. A case-insensitive alternation has no literal
    prefix for ``re`` to search for, so ``finditer`` tries every position of the text (the slowest part of the
    candidate scans); the words it starts with are found with ``str.find``."""
    end = 0
    for pos in starts:
        if pos >= end and (m := pattern.match(text, pos)):
            yield m
            end = m.end()


def _matches_at(pattern: re.Pattern, text: str, starts: Iterable[int]) -> list[int]:
    """The starts of ``_finditer_at``'s matches."""
    return [m.start() for m in _finditer_at(pattern, text, starts)]


def _word_starts(text: str, low: str, words: tuple[str, ...]) -> list[int] | None:
    """Sorted positions of ``words`` in ``_folded(text, low)`` (None when there is none)."""
    folded = _folded(text, low)
    return None if folded is None else sorted({p for w in words for p in _find_all(folded, w)})


# Generic keys: a high-entropy value assigned to a name that says it is a key, secret, token or credential
# (gitleaks' "generic-api-key" idea), and the credential of an ``Authorization: Bearer/Basic/Token`` header.
_KEY_NAME = r"[\w.\-]{0,40}?(?:api[_.\-]?key|apikey|secret|token|access[_.\-]?key|auth[_.\-]?key|credentials?)s?"
_NAMED_KEY = regex.compile(
    rf"""(?i)(?<![\w.\-])(?P<n>{_KEY_NAME})["'`]?\]?[ \t]*(?::=|=>|=|:)[ \t]*(?:new\s+\w+\()?"""
    r"""(?P<q>["'`]?)(?P<v>[A-Za-z0-9+/=_.\-~]{16,256})(?P=q)(?![\w+/=.\-~])"""
)
_AUTH_HEADER = regex.compile(r"(?i)\b(?:bearer|basic|token)[ \t]+(?P<v>[A-Za-z0-9+/=_.\-~]{16,512})(?![\w+/=.\-~])")
# Only assignments whose value starts with 16 key characters: ``key = value`` lines are common in code.
_NAMED_KEY_CANDIDATE = re.compile(
    r"(?i)(?:(?:key|secret|token|credentials?)s?[\"'`\]]?[ \t]*(?:[:=]|=>)[ \t]*(?:new\s+\w+\()?[\"'`]?"
    r"|(?:bearer|basic|token)[ \t]+)[A-Za-z0-9+/=_.\-~]{16}"
)


#: A ``_NAMED_KEY`` name holds one of these, in any case, at most ``_NAME_REACH`` characters after its start (the
#: lazy prefix's 40, then "access_" before "key"); all its characters are name characters, the one before none.
_NAMED_KEY_NAME_WORDS = ("key", "secret", "token", "credential")
_NAME_REACH = 47
_NAME_BEFORE = regex.compile(rf"(?r)[\w.\-]{{0,{_NAME_REACH}}}")


def _named_keys(text: str) -> Iterator[regex.Match]:
    """``_NAMED_KEY.finditer(text)``, the pattern tried only at the starts of runs of name characters that hold a
    word of ``_NAMED_KEY_NAME_WORDS`` within reach: its lookbehind and lazy prefix, tried at every position, made it
    the slowest pattern of the KEY windows."""
    words = _word_starts(text, text.lower(), _NAMED_KEY_NAME_WORDS)
    if words is None:
        return _NAMED_KEY.finditer(text)
    return _finditer_at(_NAMED_KEY, text, sorted({_NAME_BEFORE.match(text, 0, q).start() for q in words}))


def named_key_values(text: str) -> Iterator[tuple[str, int, int]]:
    """(value, start, end) of the generic rules; ``KeyDetector.is_named_key`` decides."""
    for m in itertools.chain(_named_keys(text), _AUTH_HEADER.finditer(text)):
        yield m.group("v"), m.start("v"), m.end("v")


#: Every match of ``_NAMED_KEY_CANDIDATE`` starts with one of these, in any case.
_NAMED_KEY_WORDS = ("key", "secret", "token", "credential", "bearer", "basic")


#: The literals ``key_candidates`` looks for, in one Aho-Corasick pass over the lower-cased text: the words that
#: start ``_NAMED_KEY_CANDIDATE``'s matches and the keyword plugins' words, in any case, then the case-sensitive
#: token literals lower-cased (kept where the text itself holds them): one ``str.find`` pass each took longer.
_KEY_SCAN_LITERALS = (*_KEY_LITERALS, _STRIPE_TAIL)
_KEY_SCAN_PATTERNS = (*_NAMED_KEY_WORDS, *_KEY_WORDS, *(w.lower() for w in _KEY_SCAN_LITERALS))
_KEY_SCAN = AhoCorasick(list(_KEY_SCAN_PATTERNS))
_WORDS_END = len(_NAMED_KEY_WORDS) + len(_KEY_WORDS)


def _scan(automaton: AhoCorasick, patterns: int, haystack: str) -> list[list[int]]:
    """Every start of each of ``automaton``'s ``patterns`` patterns in ``haystack``, overlapping ones too."""
    found: list[list[int]] = [[] for _ in range(patterns)]
    for i, start, _ in automaton.find_matches_as_indexes(haystack, overlapping=True):
        found[i].append(start)
    return found


def _scans(automaton: AhoCorasick, patterns: int, text: str) -> tuple[str, list[list[int]], list[list[int]] | None]:
    """(``low = text.lower()``, ``_scan`` of ``low``, ``_scan`` of ``_folded(text, low)`` or None when there is no
    such text); the two scans are one where the texts are one, as they are unless "ſ" or "ı" is in the text."""
    low = text.lower()
    folded = _folded(text, low)
    in_low = _scan(automaton, patterns, low)
    return low, in_low, in_low if folded == low else None if folded is None else _scan(automaton, patterns, folded)


def _literals_in_text(text: str, low: str, literals: tuple[str, ...], in_low: list[list[int]]) -> list[list[int]]:
    """Every start of each of ``literals`` in ``text``, given ``in_low``: the starts of their lower-cased forms in
    ``low``. Where each character lowered to one, a literal of the text is lower-cased in place."""
    if len(low) == len(text):
        return [[p for p in at if text.startswith(w, p)] for w, at in zip(literals, in_low, strict=True)]
    return [list(_find_all(text, w)) for w in literals]


def _token_starts(text: str, low: str, in_low: list[list[int]]) -> list[int]:
    """Where the token formats' prefixes and literals start, unsorted; ``in_low`` is ``low``'s ``_KEY_SCAN``."""
    hits = [m.start() for pattern in _KEY_PREFIXES for m in pattern.finditer(text)]
    *literals, stripe = _literals_in_text(text, low, _KEY_SCAN_LITERALS, in_low[_WORDS_END:])
    hits += [p - 1 for p in stripe if p and text[p - 1] in "rs"]
    for at in literals:
        hits.extend(at)
    return hits


def key_candidates(text: str) -> list[int]:
    low, in_low, in_folded = _scans(_KEY_SCAN, len(_KEY_SCAN_PATTERNS), text)
    if in_folded is None:
        hits = [m.start() for m in _NAMED_KEY_CANDIDATE.finditer(text)]
    else:
        starts = sorted({p for at in in_folded[: len(_NAMED_KEY_WORDS)] for p in at})
        hits = _matches_at(_NAMED_KEY_CANDIDATE, text, starts)
    for start, value in _quoted(text):
        if entropy_over(value, 3.0 if _HEX.issuperset(value) else 4.5):
            hits.append(start)
    hits += _token_starts(text, low, in_low)
    hits += [max(0, m.start() - 26) for m in _DISCORD_TAIL.finditer(text)]
    for at in in_low[len(_NAMED_KEY_WORDS) : _WORDS_END]:
        hits.extend(at)
    return sorted(hits)


def shannon_entropy(value: str) -> float:
    """detect-secrets' ``calculate_shannon_entropy`` for a value made only of its charset, in one pass."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def entropy_over(value: str, limit: float) -> bool:
    """``shannon_entropy(value) > limit``, without counting the characters when the length rules it out: n
    characters hold at most log2(n) bits (most quoted strings in code are too short for 4.5). The margin keeps a
    length whose log2 is the limit itself (8 for 3.0) counted, so float rounding never decides."""
    return len(value) > 2**limit - 1e-6 and shannon_entropy(value) > limit


# What a text must hold for some plugins' patterns to match anywhere in it: the value each pattern captures (a run
# of its characters, folded as the plugins' IGNORECASE patterns fold them) or a literal it starts with. A text
# without them is not scanned with those plugins (tests/test_pii_secrets.py checks every pattern against them).
_VALUE_RUN = re.compile(r"[a-z0-9_\-]{24,}", re.IGNORECASE)
_LETTERS = re.compile(r"[a-z]{24}", re.IGNORECASE)
_ALNUM_RUN = re.compile(r"[a-z0-9]{48,}", re.IGNORECASE)
_ARTIFACTORY_PREFIX = re.compile(r"A(?:KC|P[\dA-F])")


def skipped_plugins(text: str) -> frozenset[str]:
    """Plugins none of whose patterns can match in ``text``: Cloudant's values are 64 hex digits or 24 letters,
    IBM Cloud IAM's 44 of ``[a-z0-9_-]``, IBM COS HMAC's 48 hex digits, Softlayer's 64 letters or digits (in
    assignments and URLs alike); Artifactory's tokens start "AKC" or "AP" and a hex digit, Mailchimp's end "-us"."""
    runs = _VALUE_RUN.findall(text)
    longest = max(map(len, runs), default=0)
    alnum = max((len(r) for run in runs if len(run) >= 48 for r in _ALNUM_RUN.findall(run)), default=0)
    skipped = []
    if alnum < 64 and not any(_LETTERS.search(run) for run in runs):
        skipped.append("CloudantDetector")
    if longest < 44:
        skipped.append("IbmCloudIamDetector")
    if alnum < 48:
        skipped.append("IbmCosHmacDetector")
    if alnum < 64:
        skipped.append("SoftlayerDetector")
    if not _ARTIFACTORY_PREFIX.search(text):
        skipped.append("ArtifactoryDetector")
    if "-us" not in text:
        skipped.append("MailchimpDetector")
    return frozenset(skipped)


class KeyDetector:
    """detect-secrets plugins run on a whole window at once (one C regex scan per pattern, not per line).

    ``scan_file`` re-reads the file and runs every plugin line by line through its settings machinery (0.21
    MB/s in the issue's measurement); the plugins' own patterns, value rules, entropy limits and heuristic
    filters are applied here directly. Plugin ``verify`` methods (network calls) are never used.
    """

    def __init__(self, gibberish_limit: float, min_length: int, gibberish_all_plugins: bool = False):
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
        from detect_secrets.filters import heuristic
        from detect_secrets.plugins.base import RegexBasedDetector
        from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
        from gibberish_detector import serializer
        from gibberish_detector.detector import Detector

        by_name = {cls.__name__: cls for cls in get_mapping_from_secret_type_to_class().values()}
        self.plugins = [by_name[n]() for n in KEY_PLUGINS]
        self._entropy = HighEntropyStringsPlugin
        self._regex_based = RegexBasedDetector
        self._h = heuristic
        model = importlib.resources.files("detect_secrets.filters.gibberish").joinpath("rfc.model").read_text()
        self.gibberish = Detector(serializer.deserialize(model), gibberish_limit)
        self.min_length = min_length
        self.gibberish_all_plugins = gibberish_all_plugins

    def _matches(self, plugin, text: str) -> Iterator[tuple[str, int, int]]:
        """(value, start, end) as the plugin's ``analyze_string`` would yield them, with offsets."""
        if isinstance(plugin, self._entropy):
            for m in plugin.regex.finditer(text):
                value = m.group(2)
                # The fast entropy bounds the plugin's own (hex lowers all-digit values); confirm with it.
                limit = plugin.entropy_limit
                if entropy_over(value, limit) and plugin.calculate_shannon_entropy(value) > limit:
                    yield value, m.start(2), m.end(2)
            return
        own_rule = type(plugin).analyze_string is not self._regex_based.analyze_string
        for pattern in plugin.denylist:
            for m in pattern.finditer(text):
                groups = [g for g in range(1, (pattern.groups or 0) + 1) if m.group(g)] or [0]
                for g in groups:
                    value, s, e = m.group(g), m.start(g), m.end(g)
                    if own_rule and value not in set(plugin.analyze_string(value)):
                        continue
                    yield value, s, e

    def is_key(self, value: str, line: str, plugin) -> bool:
        h = self._h
        if len(value) < self.min_length or _DIGEST_PREFIX.match(value):
            return False
        if (
            h.is_potential_uuid(value)
            or h.is_likely_id_string(value, line, plugin)
            or h.is_templated_secret(value)
            or h.is_sequential_string(value)
        ):
            return False
        if max(Counter(value).values()) * 2 > len(value):  # a placeholder: "ACxxxxxxxx…", "sk_live_00000…"
            return False
        needs_gibberish = self.gibberish_all_plugins or isinstance(plugin, self._entropy)
        if needs_gibberish and not self.gibberish.is_gibberish(value.lower()):
            return False
        return not (len(value) in _HASH_LENGTHS and any(w in line.lower() for w in _HASH_WORDS))

    def is_named_key(self, value: str, line: str) -> bool:
        """A generic rule's value: random-looking (letters and digits, entropy over ``NAMED_KEY_ENTROPY`` for its
        charset), not a placeholder or a dotted/underscored name, and not a hash or UUID by the filters above."""
        if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)) or _DIGEST_PREFIX.match(value):
            return False
        if _NOT_A_KEY.search(value) or not is_password_value(value):
            return False
        limit = NAMED_KEY_ENTROPY[0] if _HEX.issuperset(value) else NAMED_KEY_ENTROPY[1]
        if shannon_entropy(value) <= limit:
            return False
        h = self._h
        if h.is_potential_uuid(value) or h.is_sequential_string(value) or h.is_templated_secret(value):
            return False
        if max(Counter(value).values()) * 2 > len(value):
            return False
        return not (len(value) in _HASH_LENGTHS and any(w in line.lower() for w in _HASH_WORDS))

    def find(self, text: str) -> list[Span]:
        starts = _line_starts(text)
        spans = set()
        skipped = skipped_plugins(text)
        for plugin in self.plugins:
            if type(plugin).__name__ in skipped:
                continue
            for value, s, e in self._matches(plugin, text):
                stripped = value.strip(" \t\r\n\"'=:")
                if stripped != value:
                    s += value.index(stripped)
                    e = s + len(stripped)
                    value = stripped
                if self.is_key(value, _line_at(text, starts, s), plugin):
                    spans.add((s, e))
        for value, s, e in named_key_values(text):
            if len(value) >= self.min_length and self.is_named_key(value, _line_at(text, starts, s)):
                spans.add((s, e))
        return sorted(spans)


_HASH_MENTION = regex.compile(r"(?i)hash|sha(?=\d|-\d|sum|\b)")


def file_has_hashes(text: str, ratio: float = 0.02) -> bool:
    """More mentions of "sha"/"hash" than ``ratio`` of the line count: a lockfile/checksum file (docs/spec.md §7.4).

    "sha" counts as a word or followed by digits or "sum" (sha1, sha-256, sha512sum); BigCode counted the
    substring, so "shape", "shall" and "shared" also made a file lose all its keys.
    """
    threshold = int(ratio * text.count("\n"))
    low = text.lower()
    sha = sum(1 for m in _HASH_MENTION.finditer(low) if m.group().startswith("s"))
    return sha > threshold or low.count("hash") > threshold


def _line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in regex.finditer(r"\n", text))]


def _line_at(text: str, starts: list[int], pos: int) -> str:
    i = bisect.bisect_right(starts, pos) - 1
    end = text.find("\n", pos)
    return text[starts[i] : len(text) if end < 0 else end]


# ---------------------------------------------------------------- passwords

#: The assigned name's last word must be one of these ("db_password", "userPwd", "PASS"; not "pass_through").
PASSWORD_TRIGGERS = frozenset({"password", "passwd", "passphrase", "passwort", "pwd", "pass"})
_NAME = r"(?P<n>[A-Za-z_][\w.\-]*)"
# A quoted literal assigned to a name, in code, JSON or YAML.
_PASSWORD_QUOTED = regex.compile(
    rf"""(?<![\w.]){_NAME}["'`]?\]?[ \t]*(?::=|=>|==|=|:)[ \t]*"""
    r"""(?P<q>["'`])(?P<v>(?:(?!(?P=q))[^\s\\]){4,128})(?P=q)"""
)
# Unquoted values only in config-like lines (``key = value`` / ``key: value`` opening the line, also as a YAML list
# item or after ``export``): .env, INI, properties, YAML, docker-compose environments.
_PASSWORD_BARE = regex.compile(
    rf"""(?m)^[ \t]*(?:-[ \t]+|export[ \t]+)?["']?{_NAME}["']?[ \t]*[=:][ \t]*"""
    r"""(?P<v>[^\s"'`,;()\[\]{}<>]{4,128})[ \t]*\r?$"""
)
# XML: ``<password>v</password>`` and ``<add key="DbPassword" value="v"/>`` / ``<property name=".." value=".."/>``.
_PASSWORD_XML_ELEMENT = regex.compile(r"<(?P<n>[A-Za-z_][\w.\-]{0,64})>(?P<v>[^<>\s]{4,128})</(?P=n)>")
_PASSWORD_XML_ATTRIBUTE = regex.compile(
    r"""\b(?:key|name)[ \t]*=[ \t]*["'](?P<n>[\w.\-]{1,64})["'][ \t]+value[ \t]*=[ \t]*"""
    r"""(?P<q>["'])(?P<v>(?:(?!(?P=q))[^\s<>]){4,128})(?P=q)"""
)
# Connection strings: ``...;Password=v;...`` (a ``;`` before the name or after the value).
_PASSWORD_CONNECTION = regex.compile(
    r"""(?i)(?<=;[ \t]{0,8})(?P<n>password|pwd)[ \t]*=[ \t]*(?P<v>[^;'"\s]{4,128})(?=[;'"\s]|$)"""
    r"""|(?<![\w.])(?P<n>password|pwd)[ \t]*=[ \t]*(?P<v>[^;'"\s]{4,128})(?=;)"""
)
# ``scheme://user:password@host`` (databases, brokers, git remotes).
_PASSWORD_URL = regex.compile(
    r"""(?i)\b[a-z][a-z0-9+.\-]{1,20}://(?P<n>[^:/@\s'"`<>]{0,128}):(?P<v>[^/@\s'"`<>]{4,128})@(?=[\w\[])"""
)
# Command lines: ``--password=v`` / ``--password v``, ``curl -u user:v``.
_PASSWORD_FLAG = regex.compile(
    r"""(?<![\w-])--?(?P<n>password|passwd|pass|pwd)(?:[ \t]*=[ \t]*|[ \t]+)(?P<q>["']?)(?P<v>[^\s'"]{4,128})"""
    r"""(?P=q)(?=[\s;&|)]|$)"""
)
_PASSWORD_USER_FLAG = regex.compile(
    r"""(?<![\w-])(?:-u|--user)[ \t]+(?P<q>["']?)(?P<n>[^:\s'"]{1,64}):(?P<v>[^\s'"@]{4,128})(?P=q)(?=\s|$)"""
)
#: (pattern, the name must hold a trigger word, bare identifiers are variable references)
_PASSWORD_PATTERNS = (
    (_PASSWORD_QUOTED, True, False),
    (_PASSWORD_BARE, True, True),
    (_PASSWORD_XML_ELEMENT, True, False),
    (_PASSWORD_XML_ATTRIBUTE, True, False),
    (_PASSWORD_CONNECTION, True, True),
    (_PASSWORD_URL, False, False),
    (_PASSWORD_FLAG, True, False),
    (_PASSWORD_USER_FLAG, False, True),
)
_PASSWORD_CANDIDATE = re.compile(
    r"(?i)(?:pass(?:word|wd|phrase|wort)?|pwd)(?:[\"'`\]]?[ \t]*(?:[:=]|=>)|>|[\"'][ \t]+value)"
    r"|-(?:password|passwd|pass|pwd)[ \t]"
)
_CREDENTIAL_CANDIDATE = re.compile(r"://[^\s/@]*:[^\s/@]+@|(?<![\w-])(?:-u|--user)[ \t]+\S+:")


#: Every match of ``_PASSWORD_CANDIDATE`` starts with one of these, in any case, or with "-" just before one.
_PASSWORD_WORDS = ("pass", "pwd")


#: ``password_candidates``' literals, in one pass as ``_KEY_SCAN``'s: the words in any case, then "-u" and "://".
_PASSWORD_SCAN_LITERALS = ("-u", "://")
_PASSWORD_SCAN_PATTERNS = (*_PASSWORD_WORDS, *_PASSWORD_SCAN_LITERALS)
_PASSWORD_SCAN = AhoCorasick(list(_PASSWORD_SCAN_PATTERNS))


def password_candidates(text: str) -> list[int]:
    low, in_low, in_folded = _scans(_PASSWORD_SCAN, len(_PASSWORD_SCAN_PATTERNS), text)
    if in_folded is None:
        hits = [m.start() for m in _PASSWORD_CANDIDATE.finditer(text)]
    else:
        words = {p for at in in_folded[: len(_PASSWORD_WORDS)] for p in at}
        hits = _matches_at(_PASSWORD_CANDIDATE, text, sorted({q for p in words for q in (p - 1, p) if q >= 0}))
    # A credential starts with "://", "-u" or the "-" of "--user".
    dash_u, scheme = _literals_in_text(text, low, _PASSWORD_SCAN_LITERALS, in_low[len(_PASSWORD_WORDS) :])
    flags = {q for p in dash_u for q in (p - 1, p) if q >= 0}
    hits += [max(0, p - 20) for p in _matches_at(_CREDENTIAL_CANDIDATE, text, sorted({*scheme, *flags}))]
    return sorted(hits)


_WORDS = regex.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
#: Placeholders, masks, empty-ish literals and references to variables or templates, not passwords.
_NOT_A_PASSWORD = regex.compile(
    r"""(?ix)^(?:
        none|null|nil|true|false|undefined|empty|\*+|x+|\.+|-+|\?+|_+|
        change[_\-]?me|change[_\-]?it|changethis|placeholder|redacted|hidden|masked|secret|example|dummy|sample|
        todo|tbd|fixme|notset|unset|required|optional|string|str|text|value|default
    )$
    | ^(?:\$\{|\$\(|\{|\#\{|%\(|<.*>$|\$\w+$|%\w+%$|%[sdr]$|@\w+@$|:\w+$)  # ${X} $(x) {{x}} #{x} %(x)s <x> $X %X% @X@
    | ^(?:process\.env|os\.environ|env|config|settings|self|this|params|args|options|opts)\b[.\[(]
    | your[_\-\s]?(?:db[_\-\s]?)?(?:password|passwd|pass|pwd|secret)
    | (?:password|passwd|secret|pass)[_\-]?(?:here|goes[_\-]?here)$
    | ^(?:my|the|new|old|user|admin|db|some)?[_\-]?(?:password|passwd|pwd|pass|secret)\d*$
    | ^\w+\(\)$
    """
)


def _is_trigger(name: str) -> bool:
    words = _WORDS.findall(regex.split(r"[_.\-]", name)[-1] or name)
    return bool(words) and words[-1].lower() in PASSWORD_TRIGGERS


def is_password_value(value: str, bare: bool = False) -> bool:
    """Not a placeholder, mask, template or variable reference; ``bare`` (unquoted) values that are plain names
    without digits read as references to variables."""
    if _NOT_A_PASSWORD.search(value):
        return False
    return not (bare and regex.fullmatch(r"[A-Za-z_.]+", value))


def find_passwords(text: str) -> list[Span]:
    spans = set()
    for pattern, needs_trigger, bare in _PASSWORD_PATTERNS:
        for m in pattern.finditer(text):
            if needs_trigger and not _is_trigger(m.group("n")):
                continue
            value = m.group("v")
            if value == m.group("n") or not is_password_value(value, bare):
                continue
            spans.add(m.span("v"))
    return sorted(spans)


# ---------------------------------------------------------------- presidio adapter


class CodeRecognizer(EntityRecognizer):
    """A presidio recognizer around one ``find`` function (score 1.0: each finder has already filtered)."""

    def __init__(self, entity: str, find: Callable[[str], list[Span]], candidates: Callable[[str], list[int]]):
        self.find = find
        self.candidates = candidates
        super().__init__(supported_entities=[entity], name=f"stackv2-{entity.lower()}")

    def load(self) -> None:
        """Nothing to load: finders are plain regex code."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        return [RecognizerResult(entity, s, e, 1.0) for s, e in self.find(text)]


#: StarPII's labels (docs/spec.md §7.2) as presidio entity names.
NER_LABELS = {
    "NAME": NAME,
    "EMAIL": EMAIL,
    "KEY": KEY,
    "PASSWORD": PASSWORD,
    "IP_ADDRESS": IP_ADDRESS,
    "USERNAME": USERNAME,
}


class NerRecognizer(EntityRecognizer):
    """A local transformers token-classification model (e.g. StarPII). ``transformers`` is imported only here,
    so the stage runs without it; a model must be a local folder (nothing is downloaded)."""

    def __init__(self, model_path: str, entities: tuple[str, ...], min_score: float):
        self.model_path = model_path
        self.min_score = min_score
        super().__init__(supported_entities=list(entities), name="stackv2-ner")

    def load(self) -> None:
        from pathlib import Path

        if not Path(self.model_path).is_dir():
            raise PiiSetupError(f"pii.ner_model={self.model_path!r}: expected a local model folder")
        try:
            from transformers import pipeline
        except ImportError as e:
            raise PiiSetupError("pii.ner_model needs the optional packages `transformers` and `torch`") from e
        # stride: the pipeline splits texts longer than the model's 512 tokens into overlapping chunks.
        self.pipe = pipeline("token-classification", model=self.model_path, aggregation_strategy="simple", stride=64)

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for ent in self.pipe(text):
            label = NER_LABELS.get(str(ent["entity_group"]).upper())
            if label in self.supported_entities and ent["score"] >= self.min_score:
                s, e = _cleanup(text, int(ent["start"]), int(ent["end"]), label)
                if s < e:
                    out.append(RecognizerResult(label, s, e, float(ent["score"])))
        return out


_LEADING = "!\"'()*+,-./:;<=>?[\\]^_`{|}~"
_TRAILING = regex.compile(r"[\s\W]+$")


def _cleanup(text: str, s: int, e: int, entity: str) -> tuple[int, int]:
    """Spec §7.3 cleanup of model spans (sub-word token edges): strip leading punctuation; for non-keys also
    trailing spaces and punctuation. Regex detectors have exact literal boundaries and skip this."""
    while s < e and text[s] in _LEADING:
        s += 1
    if entity != KEY:
        m = _TRAILING.search(text, s, e)
        if m:
            e = m.start()
    return s, e
