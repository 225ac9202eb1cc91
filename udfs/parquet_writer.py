"""Write each Spark partition as one Parquet file with pyarrow, named by partition index.

Spark's own writer (parquet-mr) stores column encodings in JVM hash-set order, which changes from one JVM to
the next, so two runs over the same rows give different bytes. pyarrow's writer is deterministic: with the
rows hash-partitioned and sorted by a unique key, the same input and config give byte-identical files.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stackv2.atomic import atomic_path

RESULT_SCHEMA = "partition int, rows long, bytes long, counts map<string, long>"
_RESULT = pa.schema(
    [
        ("partition", pa.int32()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("counts", pa.map_(pa.string(), pa.int64())),
    ]
)


def write_partitions(
    folder: str, schema: pa.Schema, compression: str = "zstd", count_by: str | None = None
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function writing its partition to ``folder/part-NNNNN.parquet``; yields one stats row,
    with the rows per value of the string column ``count_by`` (e.g. the reject reasons: counted while writing
    saves reading the output back)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        pid = ctx.partitionId()
        path = os.path.join(folder, f"part-{pid:05d}.parquet")
        rows, counts = 0, Counter()
        with (
            atomic_path(path, tag=ctx.attemptNumber()) as tmp,
            pq.ParquetWriter(tmp, schema, compression=compression, write_statistics=True) as writer,
        ):
            for batch in batches:
                if batch.num_rows:
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))
                    rows += batch.num_rows
                    if count_by is not None:
                        if batch.column(count_by).null_count:
                            raise ValueError(f"{batch.column(count_by).null_count} rows without a {count_by}")
                        for vc in pc.value_counts(batch.column(count_by)).to_pylist():
                            counts[vc["values"]] += vc["counts"]
        yield pa.RecordBatch.from_pydict(
            {"partition": [pid], "rows": [rows], "bytes": [os.path.getsize(path)], "counts": [list(counts.items())]},
            schema=_RESULT,
        )

    return run
