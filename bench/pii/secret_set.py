"""A labelled set of files with and without secrets, built from real code and documented key formats.

Files are real text files of the installed distributions (site-packages, the demo corpus), sampled with a seed.
Each file gets at most one planted line, at a random line start, recorded with its offsets:

* ``KEY`` positives: a provider key or token in the provider's documented format (prefix, alphabet, length; the
  reference is in ``KEY_FORMATS``), in one of several contexts (code assignment, ``.env``, YAML, JSON, an HTTP
  header, a client call) under the variable name that provider's docs use.
* ``PASSWORD`` positives: a password in code, ``.env``, YAML, INI, XML, JSON, Java properties, a connection string,
  a URL with credentials or a command line.
* negatives of each category: the untouched real file, or one with a decoy line planted: a placeholder, an
  environment lookup, a template variable, an example or masked key, a hash, a UUID, base64 data.

No scanner's test fixtures are used (trufflehog, gitleaks, whispers, detect-secrets, GitGuardian's sample_secrets
are held out). Every system is scored on files: a positive file counts as found when a detection of either secret
type overlaps its planted value (either placeholder removes the secret); a negative file counts as flagged when
the system reports a detection of that category's type anywhere in it.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import corpus_files

AN = string.ascii_letters + string.digits
UP = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64URL = AN + "-_"
B64 = AN + "+/"


def r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(rng: random.Random) -> str:
    head = _b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
    body = {"sub": str(rng.randint(10**6, 10**9)), "name": r(rng, string.ascii_lowercase, 8), "iat": 1700000000}
    return f"{head}.{_b64url(json.dumps(body).encode())}.{r(rng, B64URL, 43)}"


def _pem(rng: random.Random, kind: str) -> str:
    body = base64.b64encode(rng.randbytes(rng.choice([600, 900, 1190]))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----"


#: name -> (variable name the provider's docs use, value generator). Formats from each provider's documentation
#: (token prefixes and lengths as published; the bodies here are random).
KEY_FORMATS = {
    "aws-access-key-id": ("AWS_ACCESS_KEY_ID", lambda g: "AKIA" + r(g, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
    "aws-secret-key": ("AWS_SECRET_ACCESS_KEY", lambda g: r(g, B64, 40)),
    "github-classic-pat": ("GITHUB_TOKEN", lambda g: "ghp_" + r(g, AN, 36)),
    "github-fine-grained": ("GH_TOKEN", lambda g: "github_pat_11" + r(g, UP, 20) + "_" + r(g, AN, 59)),
    "github-oauth": ("GITHUB_OAUTH_TOKEN", lambda g: "gho_" + r(g, AN, 36)),
    "gitlab-pat": ("GITLAB_TOKEN", lambda g: "glpat-" + r(g, B64URL, 20)),
    "slack-bot": (
        "SLACK_BOT_TOKEN",
        lambda g: f"xoxb-{g.randint(10**10, 10**12)}-{g.randint(10**11, 10**13)}-{r(g, AN, 24)}",
    ),
    "slack-webhook": (
        "SLACK_WEBHOOK_URL",
        lambda g: f"https://hooks.slack.com/services/T{r(g, UP, 10)}/B{r(g, UP, 10)}/{r(g, AN, 24)}",
    ),
    "stripe-secret": ("STRIPE_SECRET_KEY", lambda g: "sk_live_" + r(g, AN, g.choice([24, 99]))),
    "stripe-restricted": ("STRIPE_API_KEY", lambda g: "rk_live_" + r(g, AN, 24)),
    "openai-project": ("OPENAI_API_KEY", lambda g: "sk-proj-" + r(g, B64URL, 74) + "T3BlbkFJ" + r(g, B64URL, 74)),
    "openai-legacy": ("OPENAI_API_KEY", lambda g: "sk-" + r(g, AN, 20) + "T3BlbkFJ" + r(g, AN, 20)),
    "anthropic": ("ANTHROPIC_API_KEY", lambda g: "sk-ant-api03-" + r(g, B64URL, 93) + "AA"),
    "google-api-key": ("GOOGLE_API_KEY", lambda g: "AIza" + r(g, B64URL, 35)),
    "npm": ("NPM_TOKEN", lambda g: "npm_" + r(g, AN, 36)),
    "pypi": ("PYPI_TOKEN", lambda g: "pypi-AgEIcHlwaS5vcmc" + r(g, B64URL, 120)),
    "sendgrid": ("SENDGRID_API_KEY", lambda g: f"SG.{r(g, B64URL, 22)}.{r(g, B64URL, 43)}"),
    "twilio-api-key": ("TWILIO_API_KEY", lambda g: "SK" + r(g, HEX, 32)),
    "mailchimp": ("MAILCHIMP_API_KEY", lambda g: r(g, HEX, 32) + f"-us{g.randint(1, 21)}"),
    "mailgun": ("MAILGUN_API_KEY", lambda g: "key-" + r(g, HEX, 32)),
    "huggingface": ("HF_TOKEN", lambda g: "hf_" + r(g, string.ascii_letters, 34)),
    "databricks": ("DATABRICKS_TOKEN", lambda g: "dapi" + r(g, HEX, 32)),
    "digitalocean": ("DIGITALOCEAN_TOKEN", lambda g: "dop_v1_" + r(g, HEX, 64)),
    "shopify": ("SHOPIFY_ACCESS_TOKEN", lambda g: "shpat_" + r(g, HEX, 32)),
    "telegram-bot": ("TELEGRAM_BOT_TOKEN", lambda g: f"{g.randint(10**8, 10**10)}:AA{r(g, B64URL, 33)}"),
    "discord-webhook": (
        "DISCORD_WEBHOOK",
        lambda g: f"https://discord.com/api/webhooks/{g.randint(10**17, 10**18)}/{r(g, B64URL, 68)}",
    ),
    "azure-storage": (
        "AZURE_STORAGE_CONNECTION_STRING",
        lambda g: (
            f"DefaultEndpointsProtocol=https;AccountName={r(g, string.ascii_lowercase, 10)};"
            f"AccountKey={base64.b64encode(g.randbytes(64)).decode()};EndpointSuffix=core.windows.net"
        ),
    ),
    "square": ("SQUARE_ACCESS_TOKEN", lambda g: "EAAA" + r(g, B64URL, 60)),
    "linear": ("LINEAR_API_KEY", lambda g: "lin_api_" + r(g, AN, 40)),
    "notion": ("NOTION_TOKEN", lambda g: "ntn_" + str(g.randint(10**10, 10**11)) + r(g, AN, 35)),
    "postman": ("POSTMAN_API_KEY", lambda g: f"PMAK-{r(g, HEX, 24)}-{r(g, HEX, 34)}"),
    "pulumi": ("PULUMI_ACCESS_TOKEN", lambda g: "pul-" + r(g, HEX, 40)),
    "age": ("SOPS_AGE_KEY", lambda g: "AGE-SECRET-KEY-1" + r(g, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)),
    "vault": ("VAULT_TOKEN", lambda g: "hvs." + r(g, B64URL, 90)),
    "doppler": ("DOPPLER_TOKEN", lambda g: "dp.pt." + r(g, AN, 43)),
    "groq": ("GROQ_API_KEY", lambda g: "gsk_" + r(g, AN, 52)),
    "replicate": ("REPLICATE_API_TOKEN", lambda g: "r8_" + r(g, AN, 37)),
    "grafana-sa": ("GRAFANA_TOKEN", lambda g: f"glsa_{r(g, AN, 32)}_{r(g, HEX, 8)}"),
    "newrelic": ("NEW_RELIC_API_KEY", lambda g: "NRAK-" + r(g, UP, 27)),
    "planetscale": ("PLANETSCALE_TOKEN", lambda g: "pscale_tkn_" + r(g, B64URL, 43)),
    "supabase": ("SUPABASE_ACCESS_TOKEN", lambda g: "sbp_" + r(g, HEX, 40)),
    "alibaba": ("ALIBABA_CLOUD_ACCESS_KEY_ID", lambda g: "LTAI" + r(g, AN, 20)),
    "datadog": ("DD_API_KEY", lambda g: r(g, HEX, 32)),
    "heroku": ("HEROKU_API_KEY", lambda g: "HRKU-AA" + r(g, B64URL, 58)),
    "jwt": ("ACCESS_TOKEN", _jwt),
    "rsa-private-key": ("PRIVATE_KEY", lambda g: _pem(g, "RSA ")),
    "private-key": ("PRIVATE_KEY", lambda g: _pem(g, "")),
    "openssh-private-key": ("SSH_KEY", lambda g: _pem(g, "OPENSSH ")),
    "generic-base64": ("API_SECRET", lambda g: r(g, AN + "+/", g.randint(32, 44))),
    "generic-hex": ("API_TOKEN", lambda g: r(g, HEX, 40)),
}

#: Contexts for one key: {VAR} is the upper-case name, {var} lower-case, {v} the value.
KEY_CONTEXTS = [
    '{VAR} = "{v}"',
    "{VAR}={v}",
    'export {VAR}="{v}"',
    "  {var}: {v}",
    '  "{var}": "{v}",',
    "const {var} = '{v}';",
    'client = Client(api_key="{v}")',
    'headers = {{"Authorization": "Bearer {v}"}}',
    'os.environ.setdefault("{VAR}", "{v}")',
    "{var} = '{v}'",
]
#: Private keys are multi-line: only contexts a PEM block lives in.
PEM_CONTEXTS = ['{VAR} = """{v}"""', "{v}", '  "{var}": "{v_json}",']

#: Key-like values that are not secrets.
KEY_DECOYS = [
    'GITHUB_TOKEN = "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
    'OPENAI_API_KEY = "sk-..."',
    'api_key = "<your-api-key>"',
    'API_KEY = "YOUR_API_KEY_HERE"',
    "STRIPE_SECRET_KEY=${STRIPE_SECRET_KEY}",
    'token = os.environ["GITHUB_TOKEN"]',
    "  api_key: {{ .Values.apiKey }}",
    'AWS_SECRET_ACCESS_KEY = os.getenv("AWS_SECRET_ACCESS_KEY")',
    'secret_key = "*************************"',
    'sha256 = "{hex64}"',
    "commit {hex40}",
    'request_id = "{uuid}"',
    '"integrity": "sha512-{b64_88}",',
    'icon = "data:image/png;base64,{b64_88}"',
    "class AbstractAuthenticationTokenProviderFactoryBean:",
    'token = self.tokenizer.convert_tokens_to_ids("[PAD]")',
    'api_key = ""',
    "SLACK_BOT_TOKEN=xoxb-your-token",
    'ACCESS_TOKEN = "REPLACE_ME"',
    'key = "AKIAXXXXXXXXXXXXXXXX"',
]

_WORDS = [
    "summer",
    "winter",
    "dragon",
    "monkey",
    "sunshine",
    "shadow",
    "master",
    "falcon",
    "tiger",
    "coffee",
    "purple",
    "orange",
    "silver",
    "rocket",
    "river",
    "castle",
    "garden",
    "thunder",
    "pepper",
    "cookie",
    "marine",
    "harbor",
    "violet",
    "maple",
]
_SYMBOLS = "!@#$%^&*?-_+="


def password_value(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:  # Word + digits + symbol, the commonest human shape
        return rng.choice(_WORDS).title() + str(rng.randint(1, 9999)) + rng.choice(_SYMBOLS)
    if kind == 1:  # a generated password
        return r(rng, AN + _SYMBOLS, rng.randint(10, 20))
    if kind == 2:  # leetspeak
        w = rng.choice(_WORDS) + rng.choice(_WORDS)
        return w.translate(str.maketrans("aeios", "43105")) + str(rng.randint(10, 99))
    return r(rng, AN, rng.randint(12, 24))  # a random alphanumeric secret


#: Password contexts: {v} is the password (URL contexts take a value without URL-reserved characters).
PASSWORD_CONTEXTS = [
    'password = "{v}"',
    "DB_PASSWORD={v}",
    "  password: {v}",
    '    db_pass: "{v}"',
    "password = {v}",
    "passwd={v}",
    "<password>{v}</password>",
    '<add key="DbPassword" value="{v}" />',
    '<property name="password" value="{v}"/>',
    '  "password": "{v}",',
    '  "adminPassword": "{v}"',
    "spring.datasource.password={v}",
    'conn = psycopg2.connect(host="db", user="app", password="{v}")',
    "$password = '{v}';",
    'String password = "{v}";',
    '"Server=tcp:db.corp.net,1433;Database=app;User ID=sa;Password={v};"',
    "ConnectionString=Data Source=sql01;Initial Catalog=crm;User Id=crm;Pwd={v};",
    "DATABASE_URL=postgres://app:{u}@db.internal:5432/app",
    'REDIS_URL = "redis://:{u}@cache.internal:6379/0"',
    'broker_url = "amqp://worker:{u}@rabbit.internal:5672//"',
    "MONGO_URI=mongodb://admin:{u}@mongo1.corp.net,mongo2.corp.net/?replicaSet=rs0",
    "git clone https://deploy:{u}@git.corp.com/team/repo.git",
    "mysql -h db -u root --password={v} app",
    "curl -u admin:{u} https://ci.corp.net/api/json",
    "      MYSQL_ROOT_PASSWORD: {v}",
    "      - POSTGRES_PASSWORD={v}",
    "SMTP_PASS={v}",
]

#: Password-like assignments that hold no password.
PASSWORD_DECOYS = [
    "password: changeme",
    'password = ""',
    "password: ${DB_PASSWORD}",
    '"password": "<password>",',
    "PASSWORD=********",
    'password = os.getenv("DB_PASSWORD")',
    "    password: {{ .Values.db.password }}",
    "password=%(db_password)s",
    "password = self.password",
    "<password></password>",
    'password = "your_password_here"',
    "DATABASE_URL=postgres://user:password@localhost:5432/db",
    "DATABASE_URL=postgres://${DB_USER}:${DB_PASSWORD}@db:5432/app",
    '"password": null,',
    "password = forms.CharField(widget=forms.PasswordInput)",
    "if password == confirm_password:",
    "      MYSQL_ROOT_PASSWORD: ${MYSQL_ROOT_PASSWORD}",
    'password = input("Password: ")',
    '<add key="DbPassword" value="" />',
    "spring.datasource.password=${SPRING_DATASOURCE_PASSWORD}",
]


def _decoy(rng: random.Random, line: str) -> str:
    fills = {
        "{hex64}": r(rng, HEX, 64),
        "{hex40}": r(rng, HEX, 40),
        "{uuid}": "-".join(r(rng, HEX, n) for n in (8, 4, 4, 4, 12)),
        "{b64_88}": base64.b64encode(rng.randbytes(64)).decode(),
    }
    for field, value in fills.items():
        line = line.replace(field, value)
    return line


def key_line(rng: random.Random) -> tuple[str, str, str]:
    """(format name, line, value)."""
    name = rng.choice(sorted(KEY_FORMATS))
    var, make = KEY_FORMATS[name]
    v = make(rng)
    if "PRIVATE KEY" in v:
        ctx = rng.choice(PEM_CONTEXTS)
        line = ctx.format(VAR=var, var=var.lower(), v=v, v_json=v.replace("\n", "\\n"))
        return name, line, v if "v_json" not in ctx else v.replace("\n", "\\n")
    return name, rng.choice(KEY_CONTEXTS).format(VAR=var, var=var.lower(), v=v), v


def password_line(rng: random.Random) -> tuple[str, str, str]:
    ctx = rng.choice(PASSWORD_CONTEXTS)
    v = password_value(rng)
    if "{u}" in ctx:
        v = re.sub(r"[@:/?#%]", "", v) or "x9Tq2"
        return "url", ctx.format(u=v), v
    v = v.replace("'", "").replace('"', "").replace("<", "").replace("&", "")
    return ctx.split("=")[0].split(":")[0].strip()[:20], ctx.format(v=v), v


def build(root: Path, n_files: int, seed: int, max_bytes: int = 100_000) -> list[dict]:
    """Per file: ``text``, ``category`` (KEY or PASSWORD), ``positive``, ``truth`` [(start, end)] and ``what``.

    A quarter of the files are key positives, a quarter password positives; the other half are negatives of
    each category, every other one with a decoy line planted.
    """
    rng = random.Random(seed)
    docs = []
    for i, path in enumerate(corpus_files(root, n_files, seed, max_bytes)):
        text = path.read_text(errors="replace")
        category = ("KEY", "PASSWORD")[i % 2]
        positive = i % 4 < 2
        line = value = what = None
        if positive:
            what, line, value = key_line(rng) if category == "KEY" else password_line(rng)
        elif i % 8 >= 6:
            line = _decoy(rng, rng.choice(KEY_DECOYS if category == "KEY" else PASSWORD_DECOYS))
            what = "decoy"
        truth = []
        if line is not None:
            starts = [0, *(m.end() for m in re.finditer("\n", text))]
            pos = rng.choice(starts)
            text = text[:pos] + line + "\n" + text[pos:]
            if value is not None:
                s = pos + line.index(value)
                truth.append((s, s + len(value)))
        docs.append(
            {
                "path": str(path),
                "text": text,
                "category": category,
                "positive": positive,
                "truth": truth,
                "what": what or "real",
            }
        )
    return docs


def score(docs: list[dict], detections: list[list[tuple[int, int, str]]]) -> dict:
    """Per category: recall on positive files, precision over flagged files, share of negative files flagged."""
    out = {}
    for category in ("KEY", "PASSWORD"):
        tp = fp = pos = neg = 0
        missed: dict[str, int] = {}
        for doc, found in zip(docs, detections, strict=True):
            if doc["category"] != category:
                continue
            if doc["positive"]:
                pos += 1
                s0, e0 = doc["truth"][0]
                hit = any(t in ("KEY", "PASSWORD") and s < e0 and s0 < e for s, e, t in found)
                tp += hit
                if not hit:
                    missed[doc["what"]] = missed.get(doc["what"], 0) + 1
            else:
                neg += 1
                fp += any(t == category for *_, t in found)
        out[category] = {
            "positives": pos,
            "negatives": neg,
            "recall": round(tp / pos, 3) if pos else None,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "negatives_flagged": round(fp / neg, 3) if neg else None,
            "missed": dict(sorted(missed.items(), key=lambda kv: -kv[1])),
        }
    return out
