"""Arrow schemas of every table the project reads or writes: the single source of column names and types.

Spark types are derived from these (``udfs.arrow.to_spark_schema``); nothing else spells a schema out.

* ``GRAPH_TABLES``: the SWH graph export, table by table, with the ORC types of the real export
  (``swh/export/relational.py``; checked against ``shared/swh-example-dataset``).
* ``FILE_INDEX``: one row per (repository, path), the output of ``extract``.
* ``FETCHED``: ``FILE_INDEX`` + the decoded content, the output of ``fetch``.
* ``RELEASE``: the 26 columns of ``bigcode/the-stack-v2`` in their published order, plus ``content``.
"""

from __future__ import annotations

import pyarrow as pa

STRING = pa.string()
BINARY = pa.binary()
INT64 = pa.int64()
#: Graph export and release timestamps, as published (nanoseconds, no time zone).
TS_NS = pa.timestamp("ns")
#: Timestamps inside the pipeline: what Spark reads and writes natively (Spark cannot read Parquet nanoseconds).
TS = pa.timestamp("us", tz="UTC")
_HASHES = [("sha1", STRING), ("sha1_git", STRING), ("sha256", STRING), ("blake2s256", STRING)]

GRAPH_TABLES: dict[str, pa.Schema] = {
    "origin": pa.schema([("id", STRING), ("url", STRING)]),
    "origin_visit": pa.schema([("origin", STRING), ("visit", INT64), ("date", TS_NS), ("type", STRING)]),
    "origin_visit_status": pa.schema(
        [
            ("origin", STRING),
            ("visit", INT64),
            ("date", TS_NS),
            ("status", STRING),
            ("snapshot", STRING),
            ("type", STRING),
        ]
    ),
    "snapshot": pa.schema([("id", STRING)]),
    "snapshot_branch": pa.schema(
        [("snapshot_id", STRING), ("name", BINARY), ("target", STRING), ("target_type", STRING)]
    ),
    "release": pa.schema(
        [
            ("id", STRING),
            ("name", BINARY),
            ("message", BINARY),
            ("target", STRING),
            ("target_type", STRING),
            ("author", BINARY),
            ("date", TS_NS),
            ("date_offset", pa.int16()),
            ("date_raw_offset_bytes", BINARY),
            ("raw_manifest", BINARY),
        ]
    ),
    "revision": pa.schema(
        [
            ("id", STRING),
            ("message", BINARY),
            ("author", BINARY),
            ("date", TS_NS),
            ("date_offset", pa.int16()),
            ("date_raw_offset_bytes", BINARY),
            ("committer", BINARY),
            ("committer_date", TS_NS),
            ("committer_offset", pa.int16()),
            ("committer_date_raw_offset_bytes", BINARY),
            ("directory", STRING),
            ("type", STRING),
            ("raw_manifest", BINARY),
        ]
    ),
    "revision_history": pa.schema([("id", STRING), ("parent_id", STRING), ("parent_rank", pa.int32())]),
    "revision_extra_headers": pa.schema([("id", STRING), ("key", BINARY), ("value", BINARY)]),
    "directory": pa.schema([("id", STRING), ("raw_manifest", BINARY)]),
    "directory_entry": pa.schema(
        [("directory_id", STRING), ("name", BINARY), ("type", STRING), ("target", STRING), ("perms", pa.int32())]
    ),
    "content": pa.schema([*_HASHES, ("length", INT64), ("status", STRING), ("data", BINARY)]),
    "skipped_content": pa.schema([*_HASHES, ("length", INT64), ("status", STRING), ("reason", STRING)]),
}

#: Repository-level fields, in the order of the published repo-level id tables (docs/spec.md §2.3).
REPO_FIELDS: list[pa.Field] = [
    pa.field("repo_name", STRING),
    pa.field("repo_url", STRING),
    pa.field("snapshot_id", STRING),
    pa.field("revision_id", STRING),
    pa.field("directory_id", STRING),
    pa.field("branch_name", STRING),
    pa.field("visit_date", TS),
    pa.field("revision_date", TS),
    pa.field("committer_date", TS),
    pa.field("github_id", INT64),
    pa.field("star_events_count", INT64),
    pa.field("fork_events_count", INT64),
    pa.field("gha_license_id", STRING),
    pa.field("gha_event_created_at", TS),
    pa.field("gha_created_at", TS),
    pa.field("gha_language", STRING),
]

#: The columns that identify a file row in every stage from ``extract`` to ``pii``: a path in a root directory.
FILE_KEY = ("directory_id", "path")

FILE_INDEX = pa.schema(
    [
        *REPO_FIELDS,
        pa.field("path", STRING),
        pa.field("blob_id", STRING),
        pa.field("content_id", STRING),
        pa.field("length", INT64),
    ]
)

#: Extract rejects whole repositories (``path`` null) or single tree entries (``path`` set).
EXTRACT_REJECTED = pa.schema(
    [
        pa.field("origin", STRING),
        pa.field("snapshot_id", STRING),
        pa.field("revision_id", STRING),
        pa.field("directory_id", STRING),
        pa.field("path", STRING),
        pa.field("target", STRING),
        pa.field("reason", STRING),
    ]
)

CONTENT_FIELDS: list[pa.Field] = [
    pa.field("content", STRING),
    pa.field("src_encoding", STRING),
    pa.field("length_bytes", INT64),
]

FETCHED = pa.schema([*FILE_INDEX, *CONTENT_FIELDS])

#: Columns ``annotate`` adds (docs/spec.md §3, §4; ``stackv2.detect``). Line statistics feed the filters (§5.2).
ANNOTATION_FIELDS: list[pa.Field] = [
    pa.field("language", STRING),
    pa.field("is_vendor", pa.bool_()),
    pa.field("is_generated", pa.bool_()),
    pa.field("extension", STRING),
    pa.field("detected_licenses", pa.list_(STRING)),
    pa.field("license_type", STRING),
    pa.field("natural_language", STRING),
    pa.field("natural_language_score", pa.float64()),
    pa.field("alpha_fraction", pa.float32()),
    pa.field("alphanum_fraction", pa.float32()),
    pa.field("num_lines", pa.int32()),
    pa.field("avg_line_length", pa.float32()),
    pa.field("max_line_length", pa.int32()),
]

ANNOTATED = pa.schema([*FETCHED, *ANNOTATION_FIELDS])

#: One row per unique blob, as the fetch workers return it (``reason`` null when the blob is usable).
BLOB_RESULT = pa.schema(
    [pa.field("blob_id", STRING), *CONTENT_FIELDS, pa.field("reason", STRING), pa.field("detail", STRING)]
)

#: The 26 columns of ``bigcode/the-stack-v2`` (names, types, order as published, docs/spec.md §2.2) + ``content``.
RELEASE = pa.schema(
    [
        pa.field("blob_id", STRING),
        pa.field("directory_id", STRING),
        pa.field("path", STRING),
        pa.field("content_id", STRING),
        pa.field("detected_licenses", pa.list_(STRING)),
        pa.field("license_type", STRING),
        pa.field("repo_name", STRING),
        pa.field("snapshot_id", STRING),
        pa.field("revision_id", STRING),
        pa.field("branch_name", STRING),
        pa.field("visit_date", TS_NS),
        pa.field("revision_date", TS_NS),
        pa.field("committer_date", TS_NS),
        pa.field("github_id", INT64),
        pa.field("star_events_count", INT64),
        pa.field("fork_events_count", INT64),
        pa.field("gha_license_id", STRING),
        pa.field("gha_event_created_at", TS_NS),
        pa.field("gha_created_at", TS_NS),
        pa.field("gha_language", STRING),
        pa.field("src_encoding", STRING),
        pa.field("language", STRING),
        pa.field("is_vendor", pa.bool_()),
        pa.field("is_generated", pa.bool_()),
        pa.field("length_bytes", INT64),
        pa.field("extension", STRING),
        pa.field("content", STRING),
    ]
)
RELEASE_ID_COLUMNS = RELEASE.names[:-1]

#: One element of a repo-level row's ``files`` (docs/spec.md §2.3, in the card's order) + ``content``: the release's
#: per-file fields and annotate's line statistics.
REPO_FILE = pa.struct(
    [
        RELEASE.field(name) if name in RELEASE.names else {f.name: f for f in ANNOTATION_FIELDS}[name]
        for name in (
            "blob_id",
            "path",
            "content_id",
            "language",
            "length_bytes",
            "detected_licenses",
            "license_type",
            "src_encoding",
            "is_vendor",
            "is_generated",
            "alphanum_fraction",
            "alpha_fraction",
            "num_lines",
            "avg_line_length",
            "max_line_length",
            "content",
        )
    ]
)

#: The repo-grouped release (like ``the-stack-v2-train-*-ids``): our repo fields, then ``files``, ``num_files``.
#: The card lists ``gha_updated_at``/``gha_pushed_at``; the metadata we join has ``gha_event_created_at`` instead.
RELEASE_REPOS = pa.schema([*REPO_FIELDS, pa.field("files", pa.list_(REPO_FILE)), pa.field("num_files", INT64)])

#: Optional GitHub (GHArchive-derived) metadata, joined on ``full_name`` (docs/spec.md §1.4). Timestamps in micro-
#: seconds: Spark cannot read Parquet nanosecond timestamps.
GITHUB_METADATA = pa.schema(
    [
        pa.field("full_name", STRING),
        pa.field("github_id", INT64),
        pa.field("default_branch", STRING),
        pa.field("license_spdx_id", STRING),
        pa.field("star_events_count", INT64),
        pa.field("fork_events_count", INT64),
        pa.field("created_at", pa.timestamp("us")),
        pa.field("event_created_at", pa.timestamp("us")),
        pa.field("language", STRING),
    ]
)

#: What ``stackv2 gharchive build`` writes (one row per GitHub id and name, docs/gharchive.md): ``GITHUB_METADATA``,
#: then ``latest_event_at``, the pair's latest event of any type, by which a reader chooses among the ids that held
#: one name. A separate schema, so that hand-made tables with ``GITHUB_METADATA``'s columns stay valid.
GHARCHIVE_METADATA = pa.schema([*GITHUB_METADATA, pa.field("latest_event_at", pa.timestamp("us"))])

#: Columns ``dedup`` adds to the rows it keeps (both null for files in no near-duplicate cluster).
DEDUP_FIELDS: list[pa.Field] = [pa.field("cluster_id", STRING), pa.field("is_representative", pa.bool_())]

#: ``dedup``'s ``clusters`` table: one row per member of every near-duplicate cluster of 2+ files. ``rank`` 0 is
#: the kept representative, then the order in which opt-out promotes the next member.
DEDUP_CLUSTERS = pa.schema(
    [
        pa.field("cluster_id", STRING),
        pa.field("blob_id", STRING),
        pa.field("repo_name", STRING),
        pa.field("path", STRING),
        pa.field("language", STRING),
        pa.field("rank", pa.int32()),
        pa.field("is_representative", pa.bool_()),
    ]
)

#: Internal to ``dedup``: a file's sketch (its LSH band keys, little-endian ``rows * 4`` bytes each, and with
#: ``dedup.verify`` its sorted distinct shingle hashes as little-endian uint32 bytes), and a file's cluster after
#: exact verification.
DEDUP_SKETCHES = pa.schema(
    [
        pa.field("blob_id", STRING),
        pa.field("language", STRING),
        pa.field("keys", pa.list_(BINARY)),
        pa.field("shingles", BINARY),
    ]
)
DEDUP_VERIFIED = pa.schema([pa.field("node", STRING), pa.field("component", STRING)])

#: Columns ``pii`` adds: redactions per type in the row's ``content`` (``stackv2.pii``; 0 when none).
PII_COUNT_FIELDS: list[pa.Field] = [
    pa.field(f"pii_{t}", pa.int32()) for t in ("email", "ip_address", "key", "password", "name")
]
#: One redacted span: offsets in characters of the original content, and its type; never the value.
PII_SPAN = pa.struct([pa.field("start", pa.int32()), pa.field("end", pa.int32()), pa.field("entity", STRING)])
#: ``pii``'s audit table: one row per redacted span.
PII_SPANS = pa.schema(
    [pa.field("directory_id", STRING), pa.field("path", STRING), pa.field("blob_id", STRING), *PII_SPAN]
)


#: ``tokenize``'s row table: one row per release file, where it went in the token files and how many tokens it
#: took (the document's ``<repo_name>`` header counts for its first file, ``<|endoftext|>`` for its last).
TOKENIZED_FILES = pa.schema(
    [
        pa.field("repo_name", STRING),
        pa.field("path", STRING),
        pa.field("blob_id", STRING),
        pa.field("language", STRING),
        pa.field("shard", STRING),
        pa.field("document", INT64),
        pa.field("position", pa.int32()),
        pa.field("tokens", INT64),
        pa.field("fim", STRING),
        pa.field("metadata", pa.bool_()),
    ]
)


def with_reason(schema: pa.Schema) -> pa.Schema:
    """The schema of a stage's ``rejected`` output: its input rows plus ``reason``."""
    return schema.append(pa.field("reason", STRING))
