"""Run configuration: frozen dataclasses whose defaults are the paper's values (spec sections in comments).

One YAML file per run maps onto ``RunConfig``; ``--set section.key=value`` overrides single values. Unknown keys
are errors, not silently ignored. Each stage's config hash (``stage_hash``) goes into its ``_stats.json`` and
``_SUCCESS`` marker, so a rerun skips exactly the stages whose inputs and settings did not change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stackv2.checks import positive
from stackv2.dedup.config import SHORT_CLUSTER, UINT32_ARITHMETIC, DedupConfig, ExactDedupConfig
from stackv2.detect.config import AnnotateConfig
from stackv2.filters.config import FilterConfig
from stackv2.malware.config import MalwareConfig
from stackv2.notebooks.config import FIRST_STREAM_OUTPUT, NotebookConfig
from stackv2.optout.config import OptOutConfig
from stackv2.pii.config import PiiConfig
from stackv2.release.config import ComposeConfig, ShardsConfig
from stackv2.reproduce.config import ReproduceConfig
from stackv2.swh.config import ExtractConfig, FetchConfig
from stackv2.tokenize.config import TokenizeConfig


class ConfigError(ValueError):
    """A configuration file or override that does not match ``RunConfig``."""


#: Spark's master URL forms (Spark docs, "Master URLs"), ``local-cluster`` (Spark's own tests) included.
SPARK_MASTERS = "local, local[N], local[*], local[N,F], spark://HOST:PORT, yarn, k8s://URL, mesos://HOST:PORT"
_SPARK_MASTER = re.compile(
    r"local(\[(\*|[1-9]\d*)(,[1-9]\d*)?\])?|local-cluster\[\d+,\d+,\d+\]|yarn|(spark|k8s|mesos)://\S+"
)
#: A JVM memory size as Spark reads ``spark.driver.memory``: 512m, 4g, 2gb ...
_JVM_SIZE = re.compile(r"[1-9]\d*([kmgtp]b?)?", re.IGNORECASE)


#: ``RunConfig.fidelity``: our rules, each departure from BigCode's released code documented and tested
#: (docs/fidelity.md), or BigCode's code as it ran, quirks included, to check a rebuild against the published id
#: tables.
CORRECTED = "corrected"
REFERENCE = "reference"

#: Every rule on which the two modes differ, as (setting, BigCode's value). In reference mode a rule left at its
#: default takes BigCode's value; one set explicitly keeps it. docs/fidelity.md has a row for each.
REFERENCE_RULES: tuple[tuple[str, Any], ...] = (
    # SQL ``origin LIKE 'https://github.com/%'``: a prefix, so longer GitHub paths pass too.
    ("extract.origin_pattern", r"^https://github\.com/"),
    ("extract.all_fallback_branches", True),
    ("extract.root_nulls_first", True),
    ("extract.all_github_rows", True),
    ("annotate.license.bigcode_deadline", True),
    ("exact_dedup.license_first", False),
    ("near_dedup.short_files", SHORT_CLUSTER),
    ("near_dedup.arithmetic", UINT32_ARITHMETIC),
    ("notebooks.outputs", FIRST_STREAM_OUTPUT),
    ("notebooks.clean_markdown", True),
)


@dataclass(frozen=True)
class SparkConfig:
    master: str = "local[*]"
    app_name: str = "stackv2"
    #: Shuffle partitions; also the number of output files of each stage (deterministic layout).
    shuffle_partitions: int = 8
    driver_memory: str = "4g"
    arrow_batch_size: int = 2000
    #: Any other Spark setting, passed through as is.
    conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _SPARK_MASTER.fullmatch(self.master):
            raise ValueError(f"spark.master must be one of {SPARK_MASTERS}; got {self.master!r}")
        if not _JVM_SIZE.fullmatch(self.driver_memory):
            raise ValueError(f"spark.driver_memory must be a JVM size such as 512m or 4g, got {self.driver_memory!r}")
        positive(self, "spark", "shuffle_partitions", "arrow_batch_size")


@dataclass(frozen=True)
class RunConfig:
    #: Where every stage writes ``<work_dir>/<stage>/``.
    work_dir: str = "work"
    #: ``corrected`` or ``reference`` (``REFERENCE_RULES``).
    fidelity: str = CORRECTED
    #: SWH graph export: a folder (or s3a:// URL) holding one sub-folder of ORC files per table.
    graph: str = ""
    #: Content store: a folder or s3://bucket[/prefix] holding gzip objects at ``content/<sha1>``.
    content_store: str = ""
    #: Optional GitHub metadata table (Parquet, ``schema.GITHUB_METADATA``).
    github_metadata: str | None = None
    #: Optional file of SWHIDs (one per line) used as roots instead of selecting from origins.
    swhids: str | None = None
    #: Parquet dataset the first stage of the run reads when it is not ``extract`` (a stage folder or its data/).
    input: str | None = None
    #: Stages to run, in pipeline order; empty means every registered stage.
    stages: tuple[str, ...] = ()
    spark: SparkConfig = field(default_factory=SparkConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    optout: OptOutConfig = field(default_factory=OptOutConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    exact_dedup: ExactDedupConfig = field(default_factory=ExactDedupConfig)
    near_dedup: DedupConfig = field(default_factory=DedupConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    malware: MalwareConfig = field(default_factory=MalwareConfig)
    compose: ComposeConfig = field(default_factory=ComposeConfig)
    notebooks: NotebookConfig = field(default_factory=NotebookConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    #: ``stackv2 reproduce``: contents for published id tables (``stackv2.reproduce``).
    reproduce: ReproduceConfig = field(default_factory=ReproduceConfig)

    def __post_init__(self) -> None:
        if self.fidelity not in (CORRECTED, REFERENCE):
            raise ConfigError(f"fidelity must be {CORRECTED!r} or {REFERENCE!r}, got {self.fidelity!r}")
        if self.fidelity == REFERENCE:
            for setting, value in REFERENCE_RULES:
                head, *rest = setting.split(".")
                object.__setattr__(self, head, _reference_value(getattr(self, head), rest, value))


def _reference_value(section: Any, path: list[str], value: Any) -> Any:
    """``section`` with ``path`` set to ``value`` if it holds its class default (a copy: sections may be shared)."""
    head, *rest = path
    current = getattr(section, head)
    if rest:
        return dataclasses.replace(section, **{head: _reference_value(current, rest, value)})
    if current != getattr(type(section)(), head):
        return section
    return dataclasses.replace(section, **{head: value})


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Turn a YAML value into the field's declared type, recursing into nested config dataclasses."""
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): str(v) if args and args[1] is str else v for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp in (int, float, str):
        try:
            return tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    values = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as e:  # a section's own range checks (``__post_init__``)
        raise ConfigError(str(e)) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings (value parsed as YAML) to a nested dict."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: the value is not valid YAML: {_yaml_problem(e)}") from None
    return data


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where."""
    mark = getattr(e, "problem_mark", None)
    if getattr(e, "problem", None) and mark is not None:
        return f"{e.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(e).split())


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {_yaml_problem(e)}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p}: expected a mapping at the top level")
    return from_dict(RunConfig, apply_overrides(data, overrides or []))


def stable_hash(*parts: Any) -> str:
    """A short hash of JSON-able values, stable across runs and machines."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
