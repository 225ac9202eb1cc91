"""Arrow <-> Spark schema glue: Spark types are derived from ``stackv2.schema``, never written by hand."""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType


def to_spark_schema(schema: pa.Schema) -> StructType:
    return from_arrow_schema(schema)


def conform(df: DataFrame, schema: pa.Schema) -> DataFrame:
    """Select ``schema``'s columns in its order, cast to its types (missing nullable columns become nulls)."""
    spark_schema = to_spark_schema(schema)
    cols = []
    for f in spark_schema.fields:
        col = F.col(f.name) if f.name in df.columns else F.lit(None)
        cols.append(col.cast(f.dataType).alias(f.name))
    return df.select(*cols)
