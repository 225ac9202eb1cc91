"""Settings of the ``shards`` stage (``RunConfig.shards``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stackv2.checks import positive

MB = 1_000_000


@dataclass(frozen=True)
class ShardsConfig:
    #: Uncompressed bytes per shard (HF's ``push_to_hub`` measures ``max_shard_size`` the same way).
    target_shard_bytes: int = 256 * MB
    #: Uncompressed bytes per Parquet row group: the Hub's viewer wants 100-300 MB and rejects > 286 MiB;
    #: a streaming reader holds one row group at a time, so take the low end.
    row_group_bytes: int = 100 * MB
    compression: str = "zstd"
    #: zstd level 3, Spark's (parquet-mr's) default: pyarrow's own default (1) writes larger files on code.
    compression_level: int | None = 3

    def __post_init__(self) -> None:
        positive(self, "shards", "target_shard_bytes", "row_group_bytes")


GB = 1_000_000_000


@dataclass(frozen=True)
class ComposeConfig:
    """The training sets' composition (docs/spec.md §5.5; paper §4): caps on a few languages, and smol's languages."""

    #: Content bytes kept at most per language in ``-train-full`` (and so in ``-train-smol``); above a cap, whole
    #: (repository, language) groups are subsampled. The paper's caps; the "few other data formats" it took down to
    #: 1 GB are not named anywhere we could read, so none is set.
    caps: dict[str, int] = field(
        default_factory=lambda: {
            "Java": 200 * GB,
            "JavaScript": 200 * GB,
            "HTML": 100 * GB,
            "JSON": 8 * GB,
            "XML": 8 * GB,
            "YAML": 8 * GB,
        }
    )
    #: ``-train-smol``'s languages: the card's 17 programming languages, the paper's documentation languages, and
    #: the configuration languages of a third-party transcription of its Appendix C.1 (partial, unverified).
    smol_languages: tuple[str, ...] = (
        *("C", "C#", "C++", "Go", "Java", "JavaScript", "Kotlin", "Lua", "PHP", "Python", "R", "Ruby", "Rust"),
        *("SQL", "Shell", "Swift", "TypeScript"),
        *("AsciiDoc", "HTML", "Markdown", "RDoc", "RMarkdown", "Text", "reStructuredText"),
        *("Ant Build System", "CMake", "Dockerfile", "Go Module", "Gradle", "Groovy", "INI", "Java Properties"),
        *("JSON", "JSON with Comments", "M4Sugar", "Makefile", "Maven POM"),
    )
    #: Seeds which (repository, language) groups a cap keeps.
    seed: int = 0

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.caps.items() if not isinstance(v, int) or v < 0}
        if bad:
            raise ValueError(f"compose.caps must be byte counts >= 0, got {bad}")
