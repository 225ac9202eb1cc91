"""Read listed Parquet files inside Spark tasks with pyarrow, from any storage ``stackv2.storage`` reaches: how Spark
reads stage outputs on an object store without Hadoop's S3 connector (``pipelines._job.read_parquet``).

A ``mapInArrow`` over one row per file (the file's URI; one file per task) reads each file with pyarrow (footer,
then the column chunks in coalesced ranged reads) and yields its rows in batches, as Spark's own reader would
give them: every column nullable, and Parquet's nanosecond timestamps as longs (what the session's
``spark.sql.legacy.parquet.nanosAsLong`` makes Spark's reader do), so a stage reads the same rows, of the same
types, from a local folder and from a bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa

from stackv2.storage import parquet_file

#: The column of the file list a reader task receives.
URI = "uri"


def _as_spark_reads(t: pa.DataType) -> pa.DataType:
    """The Arrow type Spark's Parquet reader gives a column of type ``t`` (see the module docstring)."""
    if pa.types.is_timestamp(t) and t.unit == "ns":
        return pa.int64()
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _as_spark_reads(f.type)) for f in t])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field(t.value_field.name, _as_spark_reads(t.value_type)))
    if pa.types.is_map(t):
        return pa.map_(t.key_type, pa.field(t.item_field.name, _as_spark_reads(t.item_type)))
    if pa.types.is_dictionary(t):
        return _as_spark_reads(t.value_type)
    return t


def as_spark_reads(schema: pa.Schema) -> pa.Schema:
    """A Parquet file's Arrow schema as Spark's reader sees it: every field nullable, nanoseconds as longs."""
    return pa.schema([pa.field(f.name, _as_spark_reads(f.type)) for f in schema])


def read_files(schema: pa.Schema, batch_rows: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function: batches of file URIs (column ``URI``) in, the files' rows out, in batches of at
    most ``batch_rows`` rows cast to ``schema`` (Spark's schema of the files, in Arrow terms)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for uri in batch.column(URI).to_pylist():
                source = parquet_file(uri)
                for rows in source.iter_batches(batch_size=batch_rows, columns=schema.names, use_threads=False):
                    yield from pa.Table.from_batches([rows]).cast(schema).to_batches()

    return run
