"""Settings of the Software Heritage side: the archive builder, stage ``extract`` and content reading (stage
``fetch``, ``stackv2 reproduce``). Defaults are the paper's values (spec sections in comments)."""

from __future__ import annotations

from dataclasses import dataclass

from stackv2.checks import non_negative, positive

MIB = 1024 * 1024
#: The paper's origin filter: GitHub repositories only (docs/spec.md §1.3).
GITHUB_ORIGIN_PATTERN = r"^https://github\.com/[^/]+/[^/]+$"


@dataclass(frozen=True)
class ArchiveConfig:
    #: Contents of this many bytes or more go to ``skipped_content`` (SWH skips very large blobs too).
    max_content_bytes: int = 100 * MIB
    #: Date recorded for every visit (and for synthetic revisions), so rebuilding is byte-identical.
    visit_date: str = "2023-09-06T00:00:00+00:00"
    #: Replace person fields by sha256(fullname), as the public export does.
    pseudonymize: bool = True

    def __post_init__(self) -> None:
        positive(self, "archive", "max_content_bytes")


@dataclass(frozen=True)
class ExtractConfig:
    #: Regex on origin URLs; the paper keeps GitHub only. Use ".*" for other forges or test graphs.
    origin_pattern: str = GITHUB_ORIGIN_PATTERN
    #: Branch names tried, in this order, when no GitHub default branch is known (docs/spec.md §1.3).
    fallback_branches: tuple[str, ...] = ("HEAD", "refs/heads/master", "refs/heads/main")
    #: Keep every fallback branch the snapshot has (``HEAD``, ``master`` and ``main`` can give up to three
    #: repositories of one origin), as BigCode's filter did; off: the first one present, one repository per origin.
    all_fallback_branches: bool = False
    #: Root-tree dedup (docs/spec.md §1.3) sorts a null ``revision_date``, ``github_id`` or ``visit_date`` first, as
    #: Spark's ascending order did in BigCode's window (a repository unknown to GitHub wins a tie); off: last.
    root_nulls_first: bool = False
    #: Several GitHub metadata rows for one repository name (a renamed or recreated repository): keep them all and
    #: let the dedup windows choose (BigCode joined on the name alone); off: the id with the latest event under
    #: that name, then the larger id, so the name's current owner (``pipelines.gharchive.one_per_name``).
    all_github_rows: bool = False
    #: Tree depth the traversal follows (docs/spec.md §1.5).
    max_depth: int = 64
    #: Skew guard: at most this many (root, path) rows per directory node and level (docs/spec.md §1.5).
    max_paths_per_directory: int = 1_000_000

    def __post_init__(self) -> None:
        positive(self, "extract", "max_depth", "max_paths_per_directory")


@dataclass(frozen=True)
class FetchConfig:
    """How content objects are read and checked (stage ``fetch`` and ``stackv2 reproduce``); where they are comes
    from the content store URL or from ``ReproduceConfig.bucket``/``prefix``."""

    #: None: boto3's chain (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, config file), else AWS itself.
    endpoint_url: str | None = None
    #: None: boto3's chain (``AWS_DEFAULT_REGION``, config file), else us-east-1 (where the SWH bucket lives).
    region: str | None = None
    #: Anonymous requests (public buckets); otherwise signed with the standard AWS credential chain.
    unsigned: bool = False
    #: Requests in flight per worker process on an S3 store (keep-alive connections on one event loop).
    concurrency: int = 64
    #: Threads reading a folder store per worker process. A local read and its checks (~0.14 ms of CPU per object)
    #: hold the GIL most of the time, so more threads only contend for it: 64 threads took 3.5x the CPU of one
    #: for the same objects (docs/fetch.md, "Folder stores"). Raise it for a folder on a network filesystem.
    folder_threads: int = 1
    #: Uncompressed size cap: objects of this size or more are rejected ``too_large`` (docs/spec.md §1.6, as
    #: the released code does).
    max_length: int = 10 * MIB
    #: Compressed responses larger than this are refused before reading (gzip never grows text by more).
    max_compressed: int = 11 * MIB
    #: Verify sha1(bytes) == blob_id and sha1_git == content_id.
    verify_hashes: bool = True
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: Tries per object (first try included) on retryable failures.
    max_attempts: int = 8
    #: Backoff before retry ``k`` is uniform in [0, min(backoff_max, backoff_base * 2**k)] (full jitter).
    backoff_base: float = 0.1
    backoff_max: float = 10.0
    #: Retry budget per reader: ``retry_budget_min`` + ``retry_budget_ratio`` x objects requested.
    retry_budget_min: int = 2000
    retry_budget_ratio: float = 0.5

    def __post_init__(self) -> None:
        positive(self, "fetch", "concurrency", "folder_threads", "max_length", "max_compressed", "max_attempts")
        positive(self, "fetch", "connect_timeout", "read_timeout")
        non_negative(self, "fetch", "backoff_base", "backoff_max", "retry_budget_min", "retry_budget_ratio")
