"""Opt-out registry: the requests, their validation, and the one matching rule used everywhere (docs/spec.md §8).

A request names either a GitHub account (user or organisation) with ``all`` — every repository under it — or
specific ``owner/name`` repositories, each optionally with its GitHub repository id. The same ``Matcher`` decides
at build time (stage ``optout``, right after extract), on released shards (``optout apply``), and when proving
the result (``optout verify``), so the three can never disagree.

Matching rule (see docs/optout.md):

* names compare case-insensitively, as GitHub does;
* a repository entry with a ``github_id`` matches rows with that id whatever the row's name (the repository was
  renamed or moved to another owner), and matches by name only rows whose id is unknown — a row with the same name
  but another id is a different repository that took over the name;
* an ``all`` request matches every row whose owner (the part of ``repo_name`` before ``/``) is the account;
* a row matched by several requests is attributed to the earliest one by (date, id).

Registries are JSONL (one request per line) or YAML (a list of requests, or ``{requests: [...]}``). Loading
validates everything first and raises one ``RegistryError`` listing every bad line as ``file:line: problem``;
nothing is returned, hence nothing applied, unless the whole file is valid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from stackv2.optout.config import OptOutConfig

#: Reject reason of the build-time stage.
REASON_OPTED_OUT = "opted_out"
#: Column naming the request that removed a row (build-time rejected table, audit).
REQUEST_COLUMN = "optout_request"
ALL = "all"

# GitHub logins: alphanumerics and single hyphens, at most 39 characters (legacy logins may hold "_").
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_]|-(?=[A-Za-z0-9_])){0,38}$")
_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_REQUEST_KEYS = {"id", "date", "user", "repos", "source"}
_ENTRY_KEYS = {"repo", "github_id"}


class RegistryError(ValueError):
    """A registry file that is missing, unreadable or holds invalid requests (all problems listed)."""


@dataclass(frozen=True)
class RepoEntry:
    name: str
    github_id: int | None = None


@dataclass(frozen=True)
class Request:
    id: str
    date: dt.date
    #: The GitHub user or organisation that asked.
    user: str
    #: True: every repository of ``user``. False: exactly ``repos``.
    all_repos: bool
    repos: tuple[RepoEntry, ...] = ()
    source: str | None = None
    #: ``file:line`` the request was read from (for messages and the audit trail).
    where: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "date": self.date.isoformat(),
            "user": self.user,
            "scope": ALL if self.all_repos else "repos",
            "source": self.source,
            "where": self.where,
        }


@dataclass(frozen=True)
class Registry:
    #: Sorted by (date, id): the order in which rows are attributed to requests.
    requests: tuple[Request, ...]
    path: str = ""
    sha256: str = ""
    #: Requests dated after this day were left out (``until``); None: every request of the file is honoured.
    cutoff: dt.date | None = None

    def until(self, day: dt.date | None) -> tuple[Registry, tuple[Request, ...]]:
        """(the registry of the requests dated on or before ``day``, the later ones), for "requests received up to
        ``day``"; ``day`` None keeps every request."""
        if day is None:
            return self, ()
        kept = tuple(r for r in self.requests if r.date <= day)
        later = tuple(r for r in self.requests if r.date > day)
        return Registry(kept, self.path, self.sha256, day), later

    @property
    def honoured_until(self) -> dt.date | None:
        """The cutoff a release states: ``cutoff`` when one was given, else the date of the latest request."""
        return self.cutoff or max((r.date for r in self.requests), default=None)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise RegistryError(f"opt-out registry {path} does not exist")
    return path.read_bytes()


def registry_fingerprint(cfg: OptOutConfig) -> str:
    """sha256 of the registry file's bytes ("" without a registry): the same digest as ``Registry.sha256``."""
    return hashlib.sha256(_read_bytes(Path(cfg.registry))).hexdigest() if cfg.registry else ""


# ---------------------------------------------------------------------------------------------------- parsing


def _records(path: Path, text: str) -> list[tuple[int, Any]]:
    """(line number, raw object or the error reading it) per request; a YAML syntax error raises at once."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                out.append((n, RegistryError(f"not valid JSON ({e.msg} at column {e.colno})")))
        return out
    if suffix in (".yaml", ".yml"):
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = mark.line + 1 if mark else 0
            raise RegistryError(f"{path}:{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
        if root is None:
            return []
        if isinstance(root, yaml.MappingNode):
            keys = {k.value: v for k, v in root.value}
            if set(keys) != {"requests"}:
                raise RegistryError(
                    f"{path}:{root.start_mark.line + 1}: expected a list of requests or "
                    f"{{requests: [...]}}, got keys {sorted(keys)}"
                )
            root = keys["requests"]
        if not isinstance(root, yaml.SequenceNode):
            raise RegistryError(f"{path}:{root.start_mark.line + 1}: expected a list of requests")
        return [(item.start_mark.line + 1, _construct(item)) for item in root.value]
    raise RegistryError(f"opt-out registry {path}: unknown format {suffix!r} (expected .jsonl, .yaml or .yml)")


def _construct(node: yaml.Node) -> Any:
    """The Python value of one YAML request, or the error building it (e.g. ``date: 2023-13-01``)."""
    try:
        return yaml.SafeLoader("").construct_document(node)
    except (ValueError, yaml.YAMLError) as e:
        return RegistryError(f"invalid value: {e}")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"date {value!r} is not an ISO date (YYYY-MM-DD)")


def _entry(value: Any, i: int) -> RepoEntry:
    where = f"repos[{i}]"
    gid = None
    if isinstance(value, dict):
        unknown = sorted(set(value) - _ENTRY_KEYS)
        if unknown or "repo" not in value:
            raise ValueError(f"{where}: expected {{repo: owner/name, github_id: int}}, got keys {sorted(value)}")
        gid = value.get("github_id")
        if gid is not None and (isinstance(gid, bool) or not isinstance(gid, int) or gid <= 0):
            raise ValueError(f"{where}: github_id {gid!r} is not a positive integer")
        value = value["repo"]
    if not isinstance(value, str) or value.count("/") != 1:
        raise ValueError(f"{where}: {value!r} is not owner/name")
    owner, name = value.split("/")
    if not _LOGIN.match(owner) or not _REPO.match(name) or name in (".", ".."):
        raise ValueError(f"{where}: {value!r} is not a valid GitHub owner/name")
    return RepoEntry(value, gid)


def _request(raw: Any, where: str) -> Request:
    if not isinstance(raw, dict):
        raise ValueError(f"expected an object with {sorted(_REQUEST_KEYS)}, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _REQUEST_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; valid keys: {sorted(_REQUEST_KEYS)}")
    missing = sorted({"id", "date", "user", "repos"} - set(raw))
    if missing:
        raise ValueError(f"missing key(s) {missing}")
    rid, user, repos, source = raw["id"], raw["user"], raw["repos"], raw.get("source")
    if not isinstance(rid, str | int) or isinstance(rid, bool) or not str(rid).strip():
        raise ValueError(f"id {rid!r} must be a non-empty string")
    if not isinstance(user, str) or not _LOGIN.match(user):
        raise ValueError(f"user {user!r} is not a GitHub user or organisation name")
    if source is not None and not isinstance(source, str):
        raise ValueError(f"source {source!r} must be a string (e.g. the issue URL)")
    if repos == ALL or repos == [ALL]:
        return Request(str(rid), _date(raw["date"]), user, True, (), source, where)
    if not isinstance(repos, list) or not repos:
        raise ValueError(f'repos must be "all" or a non-empty list of owner/name, got {repos!r}')
    return Request(
        str(rid), _date(raw["date"]), user, False, tuple(_entry(v, i) for i, v in enumerate(repos)), source, where
    )


def parse_registry(path: Path, text: str, sha256: str = "") -> Registry:
    """Validate every request of ``text`` (read from ``path``); raise one error naming each bad line."""
    errors: list[str] = []
    requests: list[Request] = []
    seen: dict[str, str] = {}
    for line, raw in _records(path, text):
        where = f"{path}:{line}"
        try:
            if isinstance(raw, Exception):
                raise raw
            req = _request(raw, where)
        except ValueError as e:
            errors.append(f"{where}: {e}")
            continue
        if req.id in seen:
            errors.append(f"{where}: duplicate request id {req.id!r} (first at {seen[req.id]})")
            continue
        seen[req.id] = where
        requests.append(req)
    if errors:
        raise RegistryError(
            f"opt-out registry {path}: {len(errors)} invalid request(s), nothing applied:\n  " + "\n  ".join(errors)
        )
    requests.sort(key=lambda r: (r.date, r.id))
    return Registry(tuple(requests), str(path), sha256)


def load_registry(path: str | Path) -> Registry:
    p = Path(path)
    data = _read_bytes(p)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RegistryError(f"opt-out registry {p}: not UTF-8 ({e})") from None
    return parse_registry(p, text, hashlib.sha256(data).hexdigest())


# --------------------------------------------------------------------------------------------------- matching


def owners(repo_name: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Lower-cased owner part of ``owner/name`` values (the whole value when it has no ``/``)."""
    return pc.list_element(pc.split_pattern(pc.utf8_lower(repo_name), pattern="/", max_splits=1), 0)


def _lookup(keys: pa.Array | pa.ChunkedArray, mapping: dict[Any, int], key_type: pa.DataType):
    """Request ordinal for each key (null where the key is not in ``mapping``)."""
    if not mapping:
        return pa.nulls(len(keys), pa.int32())
    pos = pc.index_in(keys, value_set=pa.array(list(mapping), key_type))
    return pc.take(pa.array(list(mapping.values()), pa.int32()), pos)


class Matcher:
    """Vectorized matching of (repo_name, github_id) columns against a registry (see the module docstring)."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.request_ids = pa.array([r.id for r in registry.requests], pa.string())
        self.accounts: dict[str, int] = {}
        self.names: dict[str, int] = {}  # entries without github_id: match by name always
        self.names_without_id: dict[str, int] = {}  # entries with github_id: by name only where the row has no id
        self.github_ids: dict[int, int] = {}
        for i, req in enumerate(registry.requests):  # in (date, id) order: setdefault keeps the earliest
            if req.all_repos:
                self.accounts.setdefault(req.user.lower(), i)
            for e in req.repos:
                if e.github_id is None:
                    self.names.setdefault(e.name.lower(), i)
                else:
                    self.github_ids.setdefault(e.github_id, i)
                    self.names_without_id.setdefault(e.name.lower(), i)

    def ordinals(self, repo_name, github_id=None):
        """Index into ``registry.requests`` of the earliest matching request per row (null: not opted out)."""
        names = pc.utf8_lower(repo_name)
        if github_id is None:
            github_id = pa.nulls(len(repo_name), pa.int64())
        hits = [
            _lookup(owners(repo_name), self.accounts, pa.string()),
            _lookup(names, self.names, pa.string()),
            pc.if_else(pc.is_null(github_id), _lookup(names, self.names_without_id, pa.string()), None),
            _lookup(pc.cast(github_id, pa.int64()), self.github_ids, pa.int64()),
        ]
        return pc.min_element_wise(*hits)

    def match(self, repo_name, github_id=None):
        """The id of the request that removes each row, or null."""
        return pc.take(self.request_ids, self.ordinals(repo_name, github_id))

    def match_table(self, table: pa.Table | pa.RecordBatch):
        """``match`` on a table's ``repo_name`` (and ``github_id`` when it has one)."""
        gid = table.column("github_id") if "github_id" in table.schema.names else None
        return self.match(table.column("repo_name"), gid)
