"""The released products on disk (docs/spec.md §2.2, §2.3): which products (``products``), their composition
(``compose``), shard layout, files and manifests (``layout``), dataset cards and the summaries they show (``card``),
settings (``config``).

Layout of ``<work_dir>/shards/release`` (the ``shards`` stage writes it, ``stackv2 optout apply`` edits it): a
``README.md`` listing the products (``products``), and one folder per product:

* file-level products (``the-stack-v2``, ``-dedup``): ``data/<Language>/train-NNNNN-of-MMMMM.parquet``, exactly
  ``schema.RELEASE`` (the 26 published columns + ``content``), sorted by ``SORT_KEY``. ``<Language>`` is the
  go-enry name as published (``data/Python``, ``data/C++``); see ``language_dir`` for unsafe characters.
* repository-level products (``-train-full``, ``-train-smol``): ``data/train-NNNNN-of-MMMMM.parquet``, one row per
  repository, ``schema.RELEASE_REPOS`` (like ``the-stack-v2-train-*-ids``, plus each file's ``content``), sorted by
  repository.
* ``manifest.json``: ``{"format", "pipeline_version", "config_hash", "created_from" (the stage the product comes
  from), "shards": [{"path", "rows", "bytes", "sha256"}, ...]}``, shards sorted by path, paths relative to the
  product folder. Whoever rewrites a shard recomputes its entry with ``describe_shard`` and saves with
  ``write_manifest``; ``verify_release`` checks every entry against the files. No timestamp, so the same build
  gives the same manifest bytes.
* ``README.md``: the product's dataset card (``dataset_card``).

Shard sizes are planned on *uncompressed* bytes (``length_bytes`` + a fixed per-row allowance), the quantity known
before writing, as ``datasets.push_to_hub(max_shard_size=...)`` does. Shards are filled with whole repositories in
key order, so a repository's files of one language are in one shard, and a shard holds at most the target plus
its last repository. Row groups are cut by the same measure (``row_group_bytes``), from the row sequence alone:
the bytes of a file do not depend on how Spark batched the rows.
"""
