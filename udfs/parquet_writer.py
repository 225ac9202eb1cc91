"""Write each Spark partition as one Parquet file with pyarrow, named by partition index.

Spark's own writer (parquet-mr) stores column encodings in JVM hash-set order, which changes from one JVM to
the next, so two runs over the same rows give different bytes. pyarrow's writer is deterministic: with the
rows hash-partitioned and sorted by a unique key, the same input and config give byte-identical files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

RESULT_SCHEMA = "partition int, rows long, bytes long"


def write_partitions(folder: str, schema: pa.Schema, compression: str = "zstd"
                     ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function writing its partition to ``folder/part-NNNNN.parquet``; yields one stats row."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        pid = ctx.partitionId()
        path = os.path.join(folder, f"part-{pid:05d}.parquet")
        tmp = f"{path}.{ctx.attemptNumber()}.tmp"
        rows = 0
        with pq.ParquetWriter(tmp, schema, compression=compression, write_statistics=True) as writer:
            for batch in batches:
                if batch.num_rows:
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))
                    rows += batch.num_rows
        os.replace(tmp, path)
        yield pa.RecordBatch.from_pydict(
            {"partition": [pid], "rows": [rows], "bytes": [os.path.getsize(path)]},
            schema=pa.schema([("partition", pa.int32()), ("rows", pa.int64()), ("bytes", pa.int64())]))

    return run
