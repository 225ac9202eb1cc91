"""stackv2: rebuild The Stack v2 from the Software Heritage archive. Pure Python; never imports pyspark."""

__version__ = "0.1.0"
