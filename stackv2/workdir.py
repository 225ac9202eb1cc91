"""The layout of a run's work folder, in one place.

* ``<work>/<stage>/``: what stage ``<stage>`` wrote (``pipelines._job``): ``data/part-NNNNN.parquet``, the rows
  it did not pass on in ``rejected/``, any other table beside them (``dedup/clusters``, ``pii/spans``),
  ``_stats.json``, and ``_SUCCESS`` last;
* ``<work>/shards/release/``: the release (``stackv2.release``), written by stage ``shards``;
* ``<work>/tokenize/tokens/``: the token files, written by stage ``tokenize``;
* ``<work>/tokenizer/tokenizer.json``: the tokenizer ``stackv2 tokenizer train`` learned (an input of
  ``tokenize``, kept when that stage reruns);
* ``<work>/report/``: ``stackv2 report``'s pages; ``<work>/optout_audit/``: ``stackv2 optout apply``'s audits.
"""

from __future__ import annotations

from pathlib import Path

DATA = "data"
REJECTED = "rejected"
STATS = "_stats.json"
SUCCESS = "_SUCCESS"
REPORT = "report"
OPTOUT_AUDIT = "optout_audit"


def release_dir(work: str | Path) -> Path:
    return Path(work) / "shards" / "release"


def tokens_dir(work: str | Path) -> Path:
    return Path(work) / "tokenize" / "tokens"


def trained_tokenizer(work: str | Path) -> Path:
    return Path(work) / "tokenizer" / "tokenizer.json"
