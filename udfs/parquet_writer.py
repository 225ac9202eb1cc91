"""Write each Spark partition as one Parquet file with pyarrow, and say which file holds it.

Spark's own writer (parquet-mr) stores column encodings in JVM hash-set order, which changes from one JVM to
the next, so two runs over the same rows give different bytes. pyarrow's writer is deterministic: with the
rows hash-partitioned and sorted by a unique key, the same input and config give byte-identical files.

A task attempt writes a hidden file of its own (``.part_NNNNN.parquet.tmp-<write>-<attempt>``) into the output's
staging folder (``stackv2.workdir.staging_dir``, local or on an object store: ``stackv2.storage``) and reports its
name, size, rows and sha256, hashed as the bytes pass (nothing is read back); it renames nothing. The driver gives
the file of the attempt Spark accepted its name and removes every other one (``pipelines._job.write_committed``),
so a frozen or killed attempt can never leave its file among the committed ones. The rows arrive sorted on the output's
key, so a repeated key is the row just before: the writer refuses it, and a stage can never merge or duplicate rows
silently. Rows a stage left in place rather than sorted (``pipelines._job.Output.aligned``) are checked to be in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stackv2.storage import HashingWriter, location

RESULT_SCHEMA = "partition int, file string, rows long, bytes long, sha256 string, counts map<string, long>"
_RESULT = pa.schema(
    [
        ("partition", pa.int32()),
        ("file", pa.string()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("counts", pa.map_(pa.string(), pa.int64())),
    ]
)


class DuplicateKeyError(ValueError):
    """Two rows of one output share its unique key."""


class KeyOrderError(ValueError):
    """Rows that should arrive sorted on the output's key did not."""


def part_name(partition: int) -> str:
    """``part_NNNNN.parquet``: the ``_NNNNN`` is how Spark reads a file's bucket from its name, so a committed output
    can be read as the hash-partitioned table it is (``pipelines._job.read_partitioned``)."""
    return f"part_{partition:05d}.parquet"


def partition_of(name: str) -> int | None:
    """The partition ``part_name`` gave ``name`` (None for any other name: an older work folder's ``part-NNNNN``)."""
    head, _, tail = name.partition("_")
    digits = tail.removesuffix(".parquet")
    return int(digits) if head == "part" and digits.isdigit() and part_name(int(digits)) == name else None


def _compared_to_previous(keys: pa.Table, order: bool) -> tuple[pa.Array, pa.Array | None]:
    """Per row from the second on: (its key equals the row before's, with ``order`` whether its key sorts after it),
    in the ascending, nulls-first order of Spark's ``sortWithinPartitions`` (a null equals a null)."""
    same = after = None
    for column in keys.columns:
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        a, b = column.slice(1), column.slice(0, len(column) - 1)
        a_null, b_null = pc.is_null(a), pc.is_null(b)
        both_null = pc.and_(a_null, b_null)
        typed = not pa.types.is_null(column.type)
        eq = pc.fill_null(pc.or_kleene(pc.equal(a, b), both_null), False) if typed else both_null
        if order:
            null_first = pc.and_(b_null, pc.invert(a_null))
            gt = pc.fill_null(pc.or_kleene(pc.greater(a, b), null_first), False) if typed else null_first
            after = gt if after is None else pc.or_(after, pc.and_(same, gt))
        same = eq if same is None else pc.and_(same, eq)
    return same, after


def check_keys(
    batch: pa.RecordBatch, key: tuple[str, ...], last: pa.Table | None, unique: bool = True, ascending: bool = False
) -> pa.Table | None:
    """Check the rows of ``batch`` against the row before each, ``last`` being the previous batch's last key; returns
    this batch's last key. ``unique``: a repeated key (the rows are sorted on ``key``) raises ``DuplicateKeyError``.
    ``ascending``: a key below the one before raises ``KeyOrderError`` (rows a stage left in place rather than sorted:
    ``pipelines._job.Output.aligned``)."""
    if not key or not batch.num_rows or not (unique or ascending):
        return last
    keys = pa.Table.from_batches([batch.select(list(key))])
    if last is not None:
        keys = pa.concat_tables([last, keys])
    same, after = _compared_to_previous(keys, ascending)
    if unique and pc.any(same).as_py():
        n = pc.sum(same.cast(pa.int64())).as_py()
        first = keys.slice(pc.index(same, True).as_py() + 1, 1).to_pylist()[0]
        raise DuplicateKeyError(f"{n} rows repeat the key of the row before them, e.g. {first}: {key} must be unique")
    if ascending:
        below = pc.invert(pc.or_(same, after))
        if pc.any(below).as_py():
            first = keys.slice(pc.index(below, True).as_py() + 1, 1).to_pylist()[0]
            raise KeyOrderError(f"a row's key sorts before the row's before it, e.g. {first}: rows not in {key} order")
    return keys.slice(keys.num_rows - 1)


def _parquet_writer(sink, schema: pa.Schema, compression: str) -> pq.ParquetWriter:
    return pq.ParquetWriter(sink, schema, compression=compression, write_statistics=True)


def empty_part(schema: pa.Schema, compression: str = "zstd") -> bytes:
    """The bytes of a part without rows as a task of ``write_partitions`` writes it (no row group). The driver writes
    these for the partitions Spark ran no task for, so a part's bytes never depend on which of the two wrote it."""
    sink = pa.BufferOutputStream()
    _parquet_writer(sink, schema, compression).close()
    return sink.getvalue().to_pybytes()


def write_partitions(
    folder: str,
    schema: pa.Schema,
    compression: str = "zstd",
    count_by: str | None = None,
    key: tuple[str, ...] = (),
    unique: bool = False,
    ascending: bool = False,
    tag: str = "",
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function writing its partition (sorted on ``key``) to a hidden file of its own in ``folder`` (a
    local path or a URI); yields one row: the file, its rows, bytes and sha256, and with ``count_by`` the rows per
    value of that string column (e.g. the reject reasons: counted while writing saves reading the output back).
    ``unique`` and ``ascending``: the checks of ``check_keys`` on ``key``. ``tag`` names the write, so attempts of
    another write of the same folder cannot collide with these."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        pid = ctx.partitionId()
        name = f".{part_name(pid)}.tmp-{tag}-{ctx.taskAttemptId()}"
        path = location(folder) / name
        rows, counts, last = 0, Counter(), None
        out = HashingWriter(path.open_output())
        try:
            with out, _parquet_writer(out, schema, compression) as writer:
                for batch in batches:
                    if batch.num_rows:
                        last = check_keys(batch, key, last, unique, ascending)
                        writer.write_table(pa.Table.from_batches([batch]).cast(schema))
                        rows += batch.num_rows
                        if count_by is not None:
                            if batch.column(count_by).null_count:
                                raise ValueError(f"{batch.column(count_by).null_count} rows without a {count_by}")
                            for vc in pc.value_counts(batch.column(count_by)).to_pylist():
                                counts[vc["values"]] += vc["counts"]
        except BaseException:
            path.delete()
            raise
        yield pa.RecordBatch.from_pydict(
            {
                "partition": [pid],
                "file": [name],
                "rows": [rows],
                "bytes": [out.bytes],
                "sha256": [out.sha256],
                "counts": [list(counts.items())],
            },
            schema=_RESULT,
        )

    return run
