"""Annotate adapters: per-blob detectors as a ``mapInArrow`` function, ScanCode over the license files as another,
license propagation per repository (which also carries each path's per-blob annotations, so the stage joins them
back to the rows once).

The expensive state (ScanCode's index, the fastText model, enry's library, the line-statistics tables) lives in
module-level caches of ``stackv2.detect``: built once per Python worker, which Spark reuses across tasks. Only
``blob_licenses`` needs the index (~1.4 GB): the stage runs it apart, in workers of their own (``stackv2.preload``),
so the workers of every other function never hold it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pyarrow as pa

from stackv2.detect.annotate import BLOB_COLUMNS, annotate_blob
from stackv2.detect.config import AnnotateConfig
from stackv2.detect.language import extension
from stackv2.detect.license import (
    detect_licenses,
    index_loaded,
    license_type,
    load_permissive,
    propagate,
    unload_index,
)
from stackv2.schema import ANNOTATED, ANNOTATION_FIELDS, STRING

LICENSES_FIELD = pa.field("licenses", pa.list_(STRING))
#: Input of ``annotate_blobs``: one row per unique blob with its sorted distinct base names.
BLOB_INPUT = pa.schema(
    [
        ANNOTATED.field("blob_id"),
        pa.field("filenames", pa.list_(STRING)),
        ANNOTATED.field("content"),
        ANNOTATED.field("src_encoding"),
    ]
)
#: Output of ``annotate_blobs``.
BLOB_ANNOTATIONS = pa.schema([ANNOTATED.field("blob_id"), *(ANNOTATED.field(c) for c in BLOB_COLUMNS)])
#: Input of ``blob_licenses``: one row per blob known under a license-like name, its content once.
LICENSE_INPUT = pa.schema([ANNOTATED.field("blob_id"), ANNOTATED.field("content")])
#: Output of ``blob_licenses``: the licenses found in the blob itself (before propagation).
BLOB_LICENSES = pa.schema([ANNOTATED.field("blob_id"), LICENSES_FIELD])
#: Input of ``repo_annotations``, one group per ``directory_id``: each path with its blob's licenses and
#: annotations (``BLOB_COLUMNS``, passed through unchanged).
REPO_INPUT = pa.schema(
    [ANNOTATED.field(c) for c in ("directory_id", "path", "gha_license_id")]
    + [LICENSES_FIELD]
    + [ANNOTATED.field(c) for c in BLOB_COLUMNS]
)
#: Output of ``repo_annotations``: the row key and every annotation column.
REPO_ANNOTATIONS = pa.schema([ANNOTATED.field("directory_id"), ANNOTATED.field("path"), *ANNOTATION_FIELDS])


def annotate_blobs(cfg: AnnotateConfig) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            cols: dict[str, list] = {c: [] for c in BLOB_COLUMNS}
            for names, content, enc in zip(
                batch.column("filenames").to_pylist(),
                batch.column("content").to_pylist(),
                batch.column("src_encoding").to_pylist(),
                strict=True,
            ):
                for c, v in annotate_blob(names or [], content, enc, cfg).items():
                    cols[c].append(v)
            yield pa.RecordBatch.from_pydict({"blob_id": batch.column("blob_id"), **cols}, schema=BLOB_ANNOTATIONS)

    return run


def blob_licenses(cfg: AnnotateConfig) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``mapInArrow`` function from ``LICENSE_INPUT`` to ``BLOB_LICENSES``: ScanCode on each license file. An index
    this task loaded (not one its daemon preloaded and shares) is unloaded when the task ends."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        inherited = index_loaded()
        try:
            for batch in batches:
                found = [detect_licenses(text or "", cfg.license) for text in batch.column("content").to_pylist()]
                yield pa.RecordBatch.from_arrays(
                    [batch.column("blob_id"), pa.array(found, LICENSES_FIELD.type)], schema=BLOB_LICENSES
                )
        finally:
            if not inherited and index_loaded():
                unload_index()

    return run


@functools.cache
def _permissive(path: str | None) -> frozenset[str]:
    return load_permissive(path)


def repo_license_columns(table: pa.Table, cfg: AnnotateConfig) -> dict[str, pa.Array]:
    """``extension``, ``detected_licenses`` (licenses of license files spread to the paths under their folder) and
    ``license_type`` of every path of one repository (columns ``path``, ``licenses``, ``gha_license_id``)."""
    permissive = _permissive(cfg.license.permissive_list)
    paths = [p or "" for p in table.column("path").to_pylist()]
    detected = propagate(paths, table.column("licenses").to_pylist())
    types = [
        license_type(gha, lic, permissive)
        for gha, lic in zip(table.column("gha_license_id").to_pylist(), detected, strict=True)
    ]
    return {
        "extension": pa.array([extension(p) for p in paths], STRING),
        "detected_licenses": pa.array(detected, pa.list_(STRING)),
        "license_type": pa.array(types, STRING),
    }


def repo_annotations(cfg: AnnotateConfig) -> Callable[[pa.Table], pa.Table]:
    """``applyInArrow`` function over all paths of one repository: ``repo_license_columns`` and the per-blob
    columns passed through, in ``REPO_ANNOTATIONS`` order."""

    def run(table: pa.Table) -> pa.Table:
        computed = repo_license_columns(table, cfg)
        return pa.Table.from_arrays(
            [computed[f.name] if f.name in computed else table.column(f.name) for f in REPO_ANNOTATIONS],
            schema=REPO_ANNOTATIONS,
        )

    return run
