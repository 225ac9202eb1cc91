"""Spark jobs and the ``stackv2`` command line. The only layer that imports pyspark."""
