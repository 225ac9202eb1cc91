"""Arrow adapters between Spark and the pure ``stackv2`` functions (set up expensive state once per partition)."""
