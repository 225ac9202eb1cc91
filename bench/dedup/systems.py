"""One near-dedup system per function, each run in its own process by ``bench/dedup/run.py``.

Every system reads the corpus written by ``run.py`` in ``WORK`` and writes ``clusters.json``: a list of
[document index, cluster label] for the documents it puts in clusters of 2+. Same parameters everywhere: 5-gram
shingles, 250 permutations as 25 bands x 10 rows, threshold 0.7, seed 42.

    python -m bench.dedup.systems SYSTEM WORK
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from bench.dedup import truth
from stackv2.dedup.config import DedupConfig
from stackv2.dedup.shingle import shingles

CFG = DedupConfig()


def _contents(work: Path) -> list[str]:
    return pq.read_table(work / "corpus" / "data", columns=["content"]).column("content").to_pylist()


def _union_find(n: int, pairs) -> list[list[int]]:
    """[document, cluster label] for every document in a cluster of two or more."""
    labels = truth.components(n, pairs)
    sizes = Counter(labels)
    return [[i, label] for i, label in enumerate(labels) if sizes[label] > 1]


def _stage(work: Path, cfg: DedupConfig, conf: dict[str, str] | None = None) -> list[list]:
    """The ``near_dedup`` stage itself, Spark ``local[2]``, through the stage contract; ``conf``: Spark settings
    over the project's."""
    from pipelines._job import StageContext, run_stage
    from pipelines._session import spark_session
    from pipelines.stages import near_dedup
    from stackv2.config import RunConfig, SparkConfig, stable_hash, to_dict
    from stackv2.workdir import committed_files

    spark_cfg = SparkConfig(master="local[2]", driver_memory="2g", shuffle_partitions=8, conf=conf or {})
    run_cfg = RunConfig(work_dir=str(work), spark=spark_cfg, near_dedup=cfg)
    spark = spark_session(spark_cfg)
    ctx = StageContext(
        spark=spark, cfg=run_cfg, work_dir=work, previous="corpus", config_hash=stable_hash(to_dict(cfg))
    )
    run_stage(ctx, "near_dedup", near_dedup.run)
    index = {b: i for i, b in enumerate(pq.read_table(work / "corpus" / "data", columns=["blob_id"])[0].to_pylist())}
    clusters = map(str, committed_files(work / "near_dedup" / "clusters"))
    rows = spark.read.parquet(*clusters).select("blob_id", "cluster_id").collect()
    spark.stop()
    return [[index[r["blob_id"]], r["cluster_id"]] for r in rows]


def ours(work: Path) -> list[list]:
    return _stage(work, CFG)


def ours_rensa(work: Path) -> list[list]:
    return _stage(work, dataclasses.replace(CFG, engine="rensa"))


def ours_verify(work: Path) -> list[list]:
    return _stage(work, dataclasses.replace(CFG, verify=True))


def ours_verify_c1(work: Path) -> list[list]:
    """``ours-verify`` with the driver JVM's JIT limited to C1 (``-XX:TieredStopAtLevel=1``, no C2): a session
    setting, not the project's default (docs/dedup.md, "Where the CPU goes")."""
    from pipelines._session import BASE_CONF, DRIVER_OPTIONS

    options = [o for o in BASE_CONF[DRIVER_OPTIONS].split() if not o.startswith("-XX:Tier4")]
    conf = {DRIVER_OPTIONS: " ".join([*options, "-XX:TieredStopAtLevel=1"])}
    return _stage(work, dataclasses.replace(CFG, verify=True), conf)


def rensa(work: Path) -> list[list]:
    """rensa's R-MinHash (its own permutation scheme) and LSH over the same shingles; union-find on the pairs."""
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(threshold=CFG.threshold, num_perm=CFG.num_perm, num_bands=CFG.bands)
    hashes = {}
    for i, content in enumerate(_contents(work)):
        grams = shingles(content, CFG.ngram_size, CFG.min_length)
        if grams:
            m = RMinHash(num_perm=CFG.num_perm, seed=CFG.seed)
            m.update(list(grams))
            lsh.insert(i, m)
            hashes[i] = m
    pairs = [(i, j) for i, m in hashes.items() for j in lsh.query(m) if j != i]
    return _union_find(len(_contents(work)), pairs)


def datasketch(work: Path) -> list[list]:
    """datasketch MinHash (xxh32 over the same shingles) and MinHashLSH; union-find on the pairs."""
    import xxhash
    from datasketch import MinHash, MinHashLSH

    contents = _contents(work)
    lsh = MinHashLSH(threshold=CFG.threshold, num_perm=CFG.num_perm)
    hashes = {}
    for i, content in enumerate(contents):
        grams = shingles(content, CFG.ngram_size, CFG.min_length)
        if grams:
            m = MinHash(num_perm=CFG.num_perm, seed=CFG.seed, hashfunc=xxhash.xxh32_intdigest)
            m.update_batch(list(grams))
            lsh.insert(i, m)
            hashes[i] = m
    pairs = [(i, j) for i, m in hashes.items() for j in lsh.query(m) if j != i]
    return _union_find(len(contents), pairs)


def datatrove(work: Path) -> list[list]:
    """datatrove's 4 MinHash stages with the local executor (2 workers), same n-grams, bands and rows."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    from bench.dedup.datatrove_ids import RecordIds, read_ids

    out = work / "datatrove"
    config = MinhashConfig(n_grams=CFG.ngram_size, num_buckets=CFG.bands, hashes_per_bucket=CFG.rows, seed=CFG.seed)
    shards = sorted((work / "shards").glob("*.parquet"))

    def reader():
        return ParquetReader(str(work / "shards"), text_key="content", id_key="blob_id")

    stages = [
        (
            [
                reader(),
                RecordIds(str(out / "ids")),
                MinhashDedupSignature(output_folder=str(out / "sigs"), config=config),
            ],
            len(shards),
        ),
        (
            [MinhashDedupBuckets(input_folder=str(out / "sigs"), output_folder=str(out / "buckets"), config=config)],
            CFG.bands,
        ),
        (
            [
                MinhashDedupCluster(
                    input_folder=str(out / "buckets"),
                    output_folder=str(out / "remove"),
                    config=config,
                    save_cluster_id=True,
                )
            ],
            1,
        ),
        (
            [reader(), MinhashDedupFilter(input_folder=str(out / "remove")), ParquetWriter(str(out / "kept"))],
            len(shards),
        ),
    ]
    for i, (pipeline, tasks) in enumerate(stages):
        LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=min(2, tasks), logging_dir=str(out / f"logs{i}")
        ).run()
    index = {b: i for i, b in enumerate(pq.read_table(work / "corpus" / "data", columns=["blob_id"])[0].to_pylist())}
    result = []
    for rank in range(len(shards)):
        ids = read_ids(out / "ids", rank)  # datatrove's document numbers -> blob_id (not the Parquet rows)
        path = out / "remove" / f"{rank:06d}.clusters"
        if path.exists():
            values = memoryview(path.read_bytes()).cast("I")
            result.extend([index[ids[values[k]]], values[k + 1]] for k in range(0, len(values), 2))
    return result


SYSTEMS = {
    "ours": ours,
    "ours-rensa": ours_rensa,
    "ours-verify": ours_verify,
    "ours-verify-c1": ours_verify_c1,
    "rensa": rensa,
    "datasketch": datasketch,
    "datatrove": datatrove,
}

if __name__ == "__main__":
    name, work = sys.argv[1], Path(sys.argv[2])
    (work / f"{name}.json").write_text(json.dumps(SYSTEMS[name](work)))
