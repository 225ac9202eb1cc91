"""Keys from the rule library and the generic rules, passwords in code, config, connection strings, URLs and
command lines: a positive and a negative per pattern, offsets, the timeout fallback, idempotence, the CLI counts."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stackv2.pii import KEY, PASSWORD, PiiConfig, detect, redact
from stackv2.pii import recognizers as R
from stackv2.pii.rules import NOT_SECRETS, RuleDetector, compiled_rules, rule_ids

# Random bodies in each provider's documented format (not real credentials).
OPENAI = "sk-proj-" + "Zk3q9XbT1vLr8YwPe2NcHs5Ud7Fj0Ag4Km6Bn" * 2 + "T3BlbkFJ" + "Qw8Er4Ty6Ui2Op0As5Df7Gh9Jk1Lz3Xc" * 2
ANTHROPIC = "sk-ant-api03-" + ("a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ-_" * 3)[:93] + "AA"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc9Xq2Lm"
DD_HEX = "9a012277b8e7c1a8c1520c2906026be4"
AWS_ID = "AKIAQYLPMN5HHHFPZAM2"
SRI = "lVUrwLdWd8ikLk9OTatH5JAoOtq9YQlgzhW2zX/dNJ5dn8y1ZflXLbIAQ75KSzyEgbvQdk4pjNuXDeMZGZOUOw=="


def found(text: str, cfg: PiiConfig | None = None) -> list[tuple[str, str]]:
    return [(s.entity, text[s.start : s.end]) for s in detect(text, cfg)]


# ------------------------------------------------------------------ rule library


@pytest.mark.parametrize(
    "text, value",
    [
        (f'OPENAI_API_KEY = "{OPENAI}"\n', OPENAI),
        (f"ANTHROPIC_API_KEY={ANTHROPIC}\n", ANTHROPIC),
        (f"  stripe_secret_key: {STRIPE}\n", STRIPE),
        (f"aws_access_key_id = {AWS_ID}\n", AWS_ID),
        ("HF_TOKEN=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\n", "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"),
    ],
)
def test_rule_library_finds_provider_keys(text, value):
    assert found(text) == [(KEY, value)]


def test_rule_library_finds_private_keys_across_lines():
    body = "\n".join(["MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2gJ4Zx8XqKc1Yd3Lp9Vb6Hn0Wm5Rt7Ue4Io8Pa2Sd6Fg1Jh"] * 12)
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    r = redact(f"key = '''{pem}'''\n", PiiConfig(window_chars=256, overlap_chars=32))
    assert "MIIEowIBAAKCAQEA" not in r.text and r.counts == {KEY: 1}


@pytest.mark.parametrize(
    "text",
    [
        'GITHUB_TOKEN = "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"\n',  # a placeholder (upstream filter)
        "OPENAI_API_KEY=${OPENAI_API_KEY}\n",
        'AZURE_CLIENT_ID = "0c5e1f9a-7d2b-4c3e-9f10-2b6a8d4e7f31"\n',  # an identifier rule: not a secret
        'token = "<KEY>"\n',  # our own placeholder is never a secret
    ],
)
def test_rule_library_negatives(text):
    assert found(text) == []


def test_identifier_rules_are_not_run():
    ids = rule_ids()
    assert len(ids) > 400 and not any(NOT_SECRETS.search(i) for i in ids)
    assert "betterleaks.github-pat" in ids and "betterleaks.azure-client-id" not in ids
    assert "betterleaks.alibaba-access-key-id" in ids  # half of a key pair, like AWS's AKIA ids: kept


def test_compiled_rules_are_kept_for_the_next_process(tmp_path):
    """Stored once, then loaded; a damaged entry is compiled again; a folder others can write to is not used."""
    from kingfisher_sdk import Scanner

    def stripe_found(rules) -> bool:
        return any(f.visible for f in Scanner(rules, base64=False).scan(f'key = "{STRIPE}"'.encode()))

    cache = tmp_path / "rules"
    first = compiled_rules("medium", cache)
    assert first.cache_status == "stored" and stripe_found(first)
    again = compiled_rules("medium", cache)
    assert again.cache_status == "loaded" and stripe_found(again)
    assert len(again.metadata()) == len(first.metadata())
    (entry,) = cache.iterdir()
    entry.write_bytes(entry.read_bytes()[:1000])
    repaired = compiled_rules("medium", cache)
    assert repaired.cache_status == "stored" and stripe_found(repaired)
    assert compiled_rules("medium", cache).cache_status == "loaded"
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert compiled_rules("medium", shared).cache_status == "bypassed"
    assert not any(shared.iterdir())


def test_rule_offsets_are_characters_not_bytes():
    text = f'# café, naïve, 東京\ntoken = "{STRIPE}"\n'
    assert found(text) == [(KEY, STRIPE)]


def test_rules_can_be_turned_off():
    text = f"run --with {ANTHROPIC}\n"  # no name, no quotes: only the rule knows the format
    assert found(text) == [(KEY, ANTHROPIC)]
    assert found(text, PiiConfig(key_rules=False)) == []


def test_rule_scan_past_its_timeout_scans_windows(monkeypatch):
    """A whole-file scan that times out falls back to one scan per window (an error branch: the timeout is forced)."""
    cfg = PiiConfig(window_chars=512, overlap_chars=64)
    calls: list[int] = []
    real = RuleDetector.find

    def find(self, text):
        calls.append(len(text))
        if len(text) > 2000:
            raise TimeoutError
        return real(self, text)

    monkeypatch.setattr(RuleDetector, "find", find)
    text = "x = compute(a, b)\n" * 300 + f'key = "{STRIPE}"\n' + "y = 1\n" * 100
    assert found(text, cfg) == [(KEY, STRIPE)]
    assert max(calls) > 2000 and sorted(calls)[-2] <= 512 + 4 * 64


# ------------------------------------------------------------------ generic rules (named keys, auth headers)


@pytest.mark.parametrize(
    "text, value",
    [
        (f"  dd_api_key: {DD_HEX}\n", DD_HEX),
        ("API_SECRET=z7OnjYyJjuVqNeHS01Sg4r7qiErJxH5oo9\n", "z7OnjYyJjuVqNeHS01Sg4r7qiErJxH5oo9"),
        (
            'headers = {"Authorization": "Bearer 2kiEv6iKGXh96wLDz010zx3NseXikFTET59Q"}\n',
            "2kiEv6iKGXh96wLDz010zx3NseXikFTET59Q",
        ),
    ],
)
def test_named_keys_and_auth_headers(text, value):
    assert found(text) == [(KEY, value)]


@pytest.mark.parametrize(
    "text",
    [
        'SECRET_KEY_SETTING = "django.core.signing.secret_key"\n',  # a dotted name
        'api_token = "abcdefghijklmnopqrstuvwx"\n',  # no digits: a word, not random
        'api_key = "test_api_key_1234567890"\n',  # a test placeholder
        'token_file = "credentials_2024_backup.json"\n',
        'headers = {"Authorization": "Bearer ${API_TOKEN}"}\n',
        "Authorization: Basic authentication2fa is described below\n",
        f'secret_sha256 = "{DD_HEX}{DD_HEX}"\n',  # a digest length with a hash word on the line
        f'"integrity": "sha512-{SRI}",\n',
    ],
)
def test_named_key_negatives(text):
    assert found(text) == []


# ------------------------------------------------------------------ passwords


@pytest.mark.parametrize(
    "text, value",
    [
        ("      - POSTGRES_PASSWORD=Abc123!x\n", "Abc123!x"),  # docker-compose list item
        ("export SMTP_PASS=Maple2024?\n", "Maple2024?"),
        ("<password>S3cret99</password>\n", "S3cret99"),
        ('<add key="DbPassword" value="Tr0ub4dor&amp;3" />\n', "Tr0ub4dor&amp;3"),
        ('<property name="jdbc.password" value="Winter#77"/>\n', "Winter#77"),
        ('"Server=tcp:db,1433;Database=app;User ID=sa;Password=Xy12abc;"\n', "Xy12abc"),
        ("ConnectionString=Data Source=sql01;User Id=crm;Pwd=Qq12345\n", "Qq12345"),
        ("DATABASE_URL=postgres://app:Sup3rs3cr3t@db.internal:5432/app\n", "Sup3rs3cr3t"),
        ('REDIS_URL = "redis://:k9Fz2mQ8@cache.internal:6379/0"\n', "k9Fz2mQ8"),
        ("mysql -h db -u root --password=YRZNUsLFRxBsX app\n", "YRZNUsLFRxBsX"),
        ("curl -u admin:Hello123 https://ci.corp.net/api\n", "admin:Hello123"),  # the rule's span, user too
        ('conn = connect(password="@_W@p$BxtOcJ6v1umne")\n', "@_W@p$BxtOcJ6v1umne"),
        ("spring.datasource.password=#058X?s5NPatxW\n", "#058X?s5NPatxW"),
    ],
)
def test_password_formats(text, value):
    assert found(text) == [(PASSWORD, value)]


@pytest.mark.parametrize(
    "text",
    [
        "      - POSTGRES_PASSWORD=${POSTGRES_PASSWORD}\n",
        "export SMTP_PASS=$SMTP_PASS\n",
        "<password></password>\n",
        "<password>${DB_PASSWORD}</password>\n",
        '<add key="DbPassword" value="" />\n',
        '<add key="Timeout" value="S3cret99" />\n',  # not a password name
        '"Server=tcp:db,1433;User ID=sa;Password={0};"\n',
        "DATABASE_URL=postgres://user:password@localhost:5432/db\n",
        "DATABASE_URL=postgres://${DB_USER}:${DB_PASSWORD}@db:5432/app\n",
        'url = f"postgres://{user}:{password}@{host}/db"\n',
        "mysql -u root --password $MYSQL_PWD app\n",
        "usage: tool --password PASSWORD\n",
        "curl -u admin:$API_TOKEN https://ci.corp.net/api\n",
        "password: changeme\n",
        "PASSWORD=********\n",
        'password = "your_password_here"\n',
        "password=%(db_password)s\n",
        '"password": "<password>",\n',
        "password = os.environ.get('DB_PASSWORD')\n",
    ],
)
def test_password_negatives(text):
    assert found(text) == []


# ------------------------------------------------------------------ redaction


def test_placeholders_and_counts():
    text = f'OPENAI_API_KEY = "{OPENAI}"\nDATABASE_URL=postgres://app:Sup3rs3cr3t@db.internal:5432/app\n'
    r = redact(text)
    assert r.text == 'OPENAI_API_KEY = "<KEY>"\nDATABASE_URL=postgres://app:<PASSWORD>@db.internal:5432/app\n'
    assert r.counts == {KEY: 1, PASSWORD: 1}


_FRAGMENTS = [
    f'"{OPENAI}"',
    STRIPE,
    AWS_ID,
    "postgres://app:Sup3rs3cr3t@db.internal:5432/app",
    "redis://:k9Fz2mQ8@cache",
    "<password>S3cret99</password>",
    ";Password=Xy12abc;",
    "--password=Qwerty12",
    f"dd_api_key: {DD_HEX}",
    "Bearer 2kiEv6iKGXh96wLDz010zx3NseXikFTET59Q",
    "<KEY>",
    "<PASSWORD>",
    "password",
    "@",
    ":",
    "=",
    '"',
    "\n",
    " ",
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=6)), max_size=20).map("".join))
def test_secret_redaction_is_idempotent(text):
    once = redact(text)
    twice = redact(once.text)
    assert twice.text == once.text and twice.counts == {}


def test_cli_counts_report_keys_and_passwords(tmp_path, capsys):
    from pipelines.cli import main

    f = tmp_path / ".env"
    f.write_text(f"OPENAI_API_KEY={OPENAI}\nDB_PASSWORD=Maple2024?\n")
    assert main(["pii", "--counts", str(f)]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"KEY": 1, "PASSWORD": 1}


# ------------------------------------------------------------------ candidate scans

# Pieces the candidate patterns start or go on with, in several cases, and the characters case-insensitive ``re``
# equates with ASCII letters (long s, dotless i, Kelvin sign, dotted capital I).
_SCAN_PIECES = [
    *("key", "KEY", "Secret", "tokEn", "credentials", "bearer", "BASIC", "pass", "PassWord", "pwd", "passphrase"),
    *("-u", "--user", "-password", "://", "@", ":", "=", "=>", '"', "'", "`", "]", " ", "\t", "\n", "value", "new "),
    *("\u017f", "\u0131", "\u0130", "\u212a", "abcdefghijklmnop0123", "A1b2C3d4E5f6G7h8", "x/y", "-"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_SCAN_PIECES), st.text(max_size=4)), max_size=24).map("".join))
@example("auth: Basic abcdefghijklmnop0123 and bEaReR A1b2C3d4E5f6G7h8 or token\tA1b2C3d4E5f6G7h8")
@example("\u017fecret = A1b2C3d4E5f6G7h8; credent\u0131als: 'abcdefghijklmnop0123'; \u212aEY=>A1b2C3d4E5f6G7h8")
@example("x-PassWord\tpwd: 1 -pwd a <passwd>s</passwd> 'pass' value -password x")
@example("http://u:p@h --user a:b -u c:d x-u e:f \u0130 key= A1b2C3d4E5f6G7h8")
def test_candidate_scans_find_what_a_full_scan_finds(text):
    """The scans that try the patterns only where a word they start with is give the starts ``finditer`` gives."""
    named = [m.start() for m in R._NAMED_KEY_CANDIDATE.finditer(text)]
    starts = R._word_starts(text, text.lower(), R._NAMED_KEY_WORDS)
    if starts is not None:  # None: "İ" changes the length when lower-cased, and key_candidates uses finditer
        assert R._matches_at(R._NAMED_KEY_CANDIDATE, text, starts) == named
    assert set(named) <= set(R.key_candidates(text))
    full = sorted(
        [m.start() for m in R._PASSWORD_CANDIDATE.finditer(text)]
        + [max(0, m.start() - 20) for m in R._CREDENTIAL_CANDIDATE.finditer(text)]
    )
    assert R.password_candidates(text) == full


# The token prefixes as one alternation and eleven literals, as ``key_candidates`` scanned for them before the
# scan was split into patterns and literals with a fast first character.
_TOKEN_PREFIXES = re.compile(r"A(?:KC|P[\dA-F]|3T|BIA|CCA|KIA|SIA|ccountKey=|C[a-z0-9]{32})|SK[a-z0-9]{32}")
_TOKEN_LITERALS = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "eyJ", "_authToken", "SG.", "rk_live_", "sk_live_", "-us")
_TOKEN_PIECES = [
    *("A", "AKC", "AP1", "APF", "A3T", "ABIA", "ACCA", "AKIA", "ASIA", "AccountKey=", "AC", "SK", "S", "K"),
    *("gh", "ghp_", "p_", "o_", "u_", "s_", "r_", "r", "s", "k_live_", "rk_live_", "sk_live_", "eyJ", "_authToken"),
    *("SG.", "-us", "-u", "a1b2c3d4e5f6g7h8", "0123456789abcdef", "x", " "),
    *("EYJ", "-US", "K_LIVE_", "\u212a_live_", "\u0130", "\u017f", "\u0131"),  # lower-case to a literal; İ: longer
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_TOKEN_PIECES), st.text(max_size=3)), max_size=24).map("".join))
@example("AKIA ASIA AC" + "a1b2c3d4e5f6g7h8" * 2 + "SK" + "0123456789abcdef" * 2 + " ghs_ rk_live_sk_live_ SG.-us")
@example("k_live_ ASK" + "a1b2c3d4e5f6g7h8" * 2 + " ghghp_ gho_ghu_ghr_ eyJeyJ")
@example("s\u212a_live_ EYJ eyJ r-US -us \u0130 sk_live_ SG.")
def test_token_prefixes_are_found_where_a_full_scan_finds_them(text):
    """The split scan (three patterns, the Stripe tail, four literals) gives the starts, with their repeats, that
    the one alternation and the eleven literals gave."""
    full = [m.start() for m in _TOKEN_PREFIXES.finditer(text)]
    for word in _TOKEN_LITERALS:
        full += [i for i in range(len(text)) if text.startswith(word, i)]
    low = text.lower()
    in_low = R._scan(R._KEY_SCAN, len(R._KEY_SCAN_PATTERNS), low)
    assert sorted(R._token_starts(text, low, in_low)) == sorted(full)


#: The quoted strings the entropy plugins' values are found in, as one pattern.
_QUOTED = re.compile(r"""["']([A-Za-z0-9+/=_-]{9,})["']""")
_QUOTE_PIECES = ["'", '"', "abcdefghi", "0123456789ab", "a", "+/=_-", " ", "\\'", "''", '""']


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_QUOTE_PIECES), st.text(max_size=2)), max_size=24).map("".join))
@example("\"aaaaaaaaa'bbbbbbbbb'ccccccccc'")  # a closing quote opens no string; the next quote can
@example("'abcdefghi''abcdefghi'")  # a string right after one
@example('\'aaaaaaaaa"aaaaaaaaa"aaaaaaaaa\'aaaaaaaaa"')
def test_quoted_strings_are_the_one_pattern_s_matches(text):
    assert list(R._quoted(text)) == [(m.start(), m[1]) for m in _QUOTED.finditer(text)]


_KEY_PIECES = [
    *_SCAN_PIECES,
    *_TOKEN_PIECES,
    *("cloudant", "IBM", "softlayer", "xoxox", "hooks.slack", "hooks.\u017flack", "\u0131bm", "'", '"'),
    *("abcdefghijklmnopqrstuvwxyz0123456789", "0123456789abcdef", ".abcdef.abcdefghijklmnopqrstuvwxyz0"),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_KEY_PIECES), st.text(max_size=3)), max_size=30).map("".join))
@example("key=\u0130 xox ibm \u212a_live_ 'abcdefghijklmnopqrstuvwxyz0123456789' cloudant hooks.slack SK")
@example("\u017fecret: 'abcdefghijklmnopqrstuvwxyz0123456789' \u0131bm xoxox eyJ -US sk_live_")
def test_key_candidates_are_every_scan_s_starts(text):
    """``key_candidates`` (one Aho-Corasick pass for the words and literals) gives every start, repeats
    included, that each scan gives on its own: the named-key pattern over the whole text, the quoted strings that
    pass the entropy test, the token prefixes and literals, Discord's tail, the keyword plugins' words."""
    low = text.lower()
    full = [m.start() for m in R._NAMED_KEY_CANDIDATE.finditer(text)]
    full += [
        m.start() for m in _QUOTED.finditer(text) if R.entropy_over(m[1], 3.0 if R._HEX.issuperset(m[1]) else 4.5)
    ]
    full += [m.start() for m in _TOKEN_PREFIXES.finditer(text)]
    for word in _TOKEN_LITERALS:
        full += [i for i in range(len(text)) if text.startswith(word, i)]
    full += [max(0, m.start() - 26) for m in R._DISCORD_TAIL.finditer(text)]
    full += [i for word in R._KEY_WORDS for i in range(len(low)) if low.startswith(word, i)]
    assert R.key_candidates(text) == sorted(full)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789abcdef", max_size=40),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40),
        st.integers(1, 40).map(lambda n: "".join(chr(65 + i % 58) for i in range(n))),  # n distinct up to 58
    ),
    st.sampled_from([3.0, 3.5, 4.0, 4.5]),
)
@example("abcdefgh", 3.0)  # 8 distinct characters: exactly 3.0 bits, not over
@example("abcdefghi", 3.0)
@example("ABCDEFGHIJKLMNOPQRSTUV", 4.5)  # 22 distinct: 4.46 bits
@example("ABCDEFGHIJKLMNOPQRSTUVW", 4.5)  # 23 distinct: 4.52 bits
def test_entropy_over_is_the_entropy_compared(value, limit):
    assert R.entropy_over(value, limit) == (R.shannon_entropy(value) > limit)


_KELVIN, _LONG_S = "\u212a", "\u017f"  # match "k" and "s" in the plugins' IGNORECASE classes
_PLUGIN_VALUES = {
    "cloudant letters": "abcdefghijklmnopqrstuvw" + _LONG_S,  # 24
    "cloudant hex": "0123456789abcdef" * 4,  # 64
    "iam": "A1b2-C3d4_E5f6" * 3 + "G" + _KELVIN,  # 44
    "cos": "0123456789ABCDEF" * 3,  # 48
    "softlayer": "a1B2c3D4" * 8,  # 64
}
_PLUGIN_PIECES = [
    *("cloudant_api_key", "cl_password", "CLOU-token", "ibm_cloud_iam_key", "cloud-iam-apikey", "iam_pass"),
    *("IBM-COS-HMAC", "cos_secret_access_key", "secret_key", "softlayer_api_key", "sl-token", "Softlayer_key"),
    *("=", ": ", " ", "=>", '"'),
    *("'", "[", "]", "https://", "http://", "acct:", "@acct.cloudant.com", "http://api.softlayer.com/soap/v3/", "AKC"),
    *("AP1", "APf", "AP", "-us", "-us1", "x" * 8, "9" * 9, _KELVIN, _LONG_S, "\u0131", "\n", *_PLUGIN_VALUES.values()),
]
_GATED = {
    "CloudantDetector": ['cloudant_key = "{cloudant letters}"', "https://acct:{cloudant hex}@acct.cloudant.com"],
    "IbmCloudIamDetector": ["ibm_cloud_iam_key: '{iam}'"],
    "IbmCosHmacDetector": ["cos_secret_access_key={cos}"],
    "SoftlayerDetector": ["softlayer_api_key = {softlayer}", "http://api.softlayer.com/soap/v3/{softlayer}"],
    "ArtifactoryDetector": ['x = "AKC1234567890ab"', " AP1abcdefgh12 "],
    "MailchimpDetector": ["k: " + "0123456789abcdef" * 2 + "-us9"],
}


def _plugin_patterns(name: str) -> list[re.Pattern]:
    detector = R.KeyDetector(4.0, 8)
    (plugin,) = [p for p in detector.plugins if type(p).__name__ == name]
    return list(plugin.denylist)


def test_each_gated_plugin_matches_where_it_is_not_skipped():
    """The examples at each gate's edge (values of exactly the length, folded letters) match and are not skipped."""
    for name, examples in _GATED.items():
        for example_text in examples:
            text = example_text.format(**_PLUGIN_VALUES)
            assert any(p.search(text) for p in _plugin_patterns(name)), (name, text)
            assert name not in R.skipped_plugins(text), (name, text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_PLUGIN_PIECES), st.text(max_size=3)), max_size=16).map("".join))
@example("cloudant_apikey = 'abcdefghijklmnopqrstuvw'")  # 23 letters: skipped, and no match
@example("ibm_cloud_iam_key: " + "A1b2-C3d4_E5f6" * 3 + "G")  # 43
def test_a_skipped_plugin_has_no_match(text):
    for name in R.skipped_plugins(text):
        assert not any(p.search(text) for p in _plugin_patterns(name)), name


_NAME_PIECES = [
    *("api_key", "API.KEY", "apikey", "secret", "Tokens", "access-key", "auth_key", "credentials", "SECRET_"),
    "x" * 30,
    *("my.app-", "a" * 40, "b" * 7, "=", ":=", "=>", ": ", "\t", " ", '"', "'", "`", "]", "new Foo(", "\n", ".", "-"),
    *("A1b2C3d4E5f6G7h8", "abcdefghijklmnop0123", "~+/=", "\u212a", "\u017f", "\u0131", "\u0130", "é", "_"),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_NAME_PIECES), st.text(max_size=3)), max_size=20).map("".join))
@example("x" * 40 + "access_key = A1b2C3d4E5f6G7h8")  # the name at its longest: 40 characters, "access_key"
@example("x" * 41 + "api_key = A1b2C3d4E5f6G7h8 " + "y" * 33 + "access-key: abcdefghijklmnop0123")
@example("é" * 40 + "token: A1b2C3d4E5f6G7h8 my.app-\u017fecret = 'abcdefghijklmnop0123' \u212aEY=A1b2C3d4E5f6G7h8")
@example("secret=A1b2C3d4E5f6G7h8secret=A1b2C3d4E5f6G7h8 credentials: A1b2C3d4E5f6G7h8")
def test_named_keys_are_the_patterns_matches(text):
    """Tried only at the starts of name runs holding a key word, the pattern finds what ``finditer`` finds."""
    expected = [m.span("v") for m in R._NAMED_KEY.finditer(text)]
    assert [m.span("v") for m in R._named_keys(text)] == expected


def test_case_folding_of_the_candidate_words():
    """Every character case-insensitive ``re`` matches with a letter of the words is that letter in ``_folded``
    (so no match is missed), except "İ", which lower-cases to two characters: then the scans use ``finditer``. No
    character above U+2FFF matches an ASCII letter (checked once over every code point)."""
    letters = set("".join(R._NAMED_KEY_WORDS + R._PASSWORD_WORDS))
    patterns = {c: re.compile(f"(?i){c}") for c in letters}
    for code in range(0x3000):
        char = chr(code)
        for letter, pattern in patterns.items():
            if pattern.fullmatch(char):
                assert R._folded(char, char.lower()) == (None if char == "\u0130" else letter), hex(code)
    assert R._folded("\u212a\u017f\u0131", "\u212a\u017f\u0131".lower()) == "ksi"
