"""BigCode's released scripts on a local archive, patched only for paths and IO: the other side of
``bench.fidelity.bigcode``.

The scripts are read, unchanged, from git (a bare mirror or a checkout of ``bigcode-project/the-stack-v2`` and
``bigcode-project/bigcode-dataset`` at the commits below) and run in order on one local Spark session:

1. ``the_stack/0_repo_data/merge_gha_swh.py`` ``main``: the GH Archive event files and the graph's ORC tables;
2. ``the_stack/1_directory_traversal/find_file_paths.py`` ``main`` and ``get_unique_files.py`` ``main``;
3. ``the_stack/2_download_files/get_file_contents.py``: its ``read_records``, ``get_blob`` and ``get_lang_license``
   on every list file; their ``__main__`` (S3 listing, pypeln's process pools, upload) is replaced by a loop, and
   boto3's client by ``LocalS3`` (the ``softwareheritage`` bucket is the archive's content store);
4. ``the_stack/3_file_dataset/get_license_types.py`` ``main``; the permissive list it downloads from the Hugging
   Face Hub at import is ours (``stackv2/data/permissive_licenses.txt``: that URL is not reachable offline, and our
   pipeline uses the same list);
5. the unreleased step between (docs/fidelity.md, "Checked against BigCode's scripts"): file contents and language
   joined back by ``blob_id``; ``non_permissive`` rows, rows without a language and rows without content
   (binary, undecodable) dropped; ``repo_url`` added; one folder per language (``language_id=<Lang>``, as the
   near-dedup input list ``dirs.list`` names them). These rows are BigCode's ``the-stack-v2``;
6. ``near_deduplication/bigcode-v2/intra_dedup.py`` as ``run.sh`` calls it (``--threshold 0.7 --repo_column
   repo_url --rank``), once per language folder: ``the-stack-v2-dedup``. GraphFrames' JAR cannot be fetched here, so
   ``graphframes.GraphFrame`` is ``GraphFrameShim`` (connected components by union-find; the labels differ, the
   components do not, and ``--rank`` uses the label only as a grouping key).

Besides paths and IO, changes that decide no ranking: partition counts are capped at ``--partitions``
(``capped_repartition``, ``capped_shuffle_partitions``: the scripts' 512 to 8192 are sized for a cluster; a layout
decides only which of equal candidates wins, as BigCode's own layout did), and ``find_file_paths.py``'s 64 levels
stop after the first empty one (``tree_levels``).

Each step writes to ``OUT/<step>/`` with the scripts' own writers; ``OUT/files/<product>.parquet`` lists the
products' (repo_name, path, blob_id).

    python -m bench.fidelity.bigcode_run --archive A --github-events A/gharchive --out OUT \\
        --the-stack-v2 GIT_DIR --bigcode-dataset GIT_DIR
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

#: The commits read (the ones docs/fidelity.md's numbers come from).
THE_STACK_V2_COMMIT = "917204185fa014813d03020532e7ef9078609c4d"
BIGCODE_DATASET_COMMIT = "bebec929edd826f19b5fa3538f22d18d5b50da4b"
DEFAULT_MIRRORS = {
    "the_stack_v2": "/work/.mirror/bigcode-project+the-stack-v2/repo",
    "bigcode_dataset": "/work/.mirror/bigcode-project+bigcode-dataset/repo",
}


def script_source(repo: str, commit: str, path: str) -> str:
    """A file of ``repo`` (a git dir, bare or not, or a checkout) at ``commit``."""
    folder = Path(repo)
    git_dir = folder / ".git" if (folder / ".git").exists() else folder
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def load_module(name: str, source: str, filename: str) -> types.ModuleType:
    """``source`` executed as module ``name`` (not ``__main__``: the script's own driver does not run)."""
    from pyspark import cloudpickle

    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 (BigCode's script, read from git)
    cloudpickle.register_pickle_by_value(module)  # its UDFs reach the Python workers, which cannot import it
    return module


class LocalS3:
    """The two boto3 calls ``get_file_contents.py`` makes, on local folders: bucket -> folder."""

    def __init__(self, buckets: dict[str, Path]):
        self.buckets = buckets

    def get_object(self, Bucket: str, Key: str) -> dict:
        return {"Body": (self.buckets[Bucket] / Key).open("rb")}


class GraphFrameShim:
    """``graphframes.GraphFrame(vertices, edges).connectedComponents()``: (id, component) for every vertex, the
    component labelled by its smallest id (GraphFrames' labels are ids of the component too)."""

    def __init__(self, vertices, edges):
        self.vertices, self.edges = vertices, edges

    def connectedComponents(self):
        parent: dict[int, int] = {}

        def root(x: int) -> int:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for r in self.vertices.select("id").collect():
            root(r["id"])
        for r in self.edges.select("src", "dst").collect():
            a, b = root(r["src"]), root(r["dst"])
            if a != b:
                parent[max(a, b)] = min(a, b)
        rows = [(v, root(v)) for v in parent]
        spark = self.edges.sparkSession
        return spark.createDataFrame(rows, "id long, component long")


def capped_repartition(limit: int):
    """``DataFrame.repartition`` with at most ``limit`` partitions. The scripts' counts (512 per traversal level,
    4096 for the dedup graph, 256+ per saved language) are sized for a cluster; on a local session each empty task
    costs time. A partition count decides the layout of rows, so only which of equal candidates wins a tie (arrival
    order, which BigCode's code leaves open on any cluster too), never a decision with unequal keys."""
    from pyspark.sql.classic.dataframe import DataFrame  # the class sessions make (pyspark.sql.DataFrame is its base)

    original = DataFrame.repartition

    def repartition(self, n=None, *cols):
        if isinstance(n, int):
            n = min(n, limit)
        return original(self, *(() if n is None else (n,)), *cols)

    return mock.patch.object(DataFrame, "repartition", repartition)


def tree_levels(cache_path: str):
    """``range`` for ``find_file_paths.main``'s ``for level in range(64)``: the same levels, stopping after the first
    one whose directories (``cache_path/level=N``) are empty, since every later level then joins nothing and writes
    nothing. BigCode's 64 levels cost a local session half an hour of empty Spark jobs."""
    import pyarrow.dataset as ds

    def levels(n: int):
        for level in range(n):
            yield level
            if ds.dataset(f"{cache_path}/level={level}", format="parquet").count_rows() == 0:
                return

    return levels


def capped_shuffle_partitions(limit: int):
    """``SparkSession.Builder.getOrCreate`` that leaves ``spark.sql.shuffle.partitions`` at ``limit``:
    ``intra_dedup.py`` asks for 8192, sized for a cluster; a partition count decides the layout of rows (and
    ``monotonically_increasing_id``'s values), so only ties, as in ``capped_repartition``."""
    from pyspark.sql import SparkSession

    original = SparkSession.Builder.getOrCreate

    def get_or_create(self):
        spark = original(self)
        spark.conf.set("spark.sql.shuffle.partitions", str(limit))
        return spark

    return mock.patch.object(SparkSession.Builder, "getOrCreate", get_or_create)


def spark_session(partitions: int):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers need this environment's numpy, xxhash
    return (
        SparkSession.builder.master("local[2]")
        .appName("bigcode-scripts")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.files.ignoreCorruptFiles", "true")  # merge_gha_swh.py's setting
        .config("spark.driver.memory", "3g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )


def file_contents(module: types.ModuleType, lists: Path, store: Path, out: Path) -> dict:
    """``get_file_contents.py``'s loop: for each list file, each record read, downloaded and annotated, one JSON line
    in a file of the same name under ``out`` (as its ``__main__`` uploads them)."""
    s3 = LocalS3({"lists": lists, "softwareheritage": store})
    counts = {"lists": 0, "records": 0}
    for listed in sorted(lists.rglob("*.json.gz")):
        key = str(listed.relative_to(lists))
        target = out / key
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(target, "wt") as fout:
            for record in module.read_records(s3, "lists", key):
                fout.write(module.get_lang_license(module.get_blob(record, s3)) + "\n")
                counts["records"] += 1
        counts["lists"] += 1
    return counts


def unreleased_step(spark, out: Path) -> int:
    """``detected_licenses`` joined back to the file contents (docs/fidelity.md): BigCode's ``the-stack-v2`` rows,
    one folder per language under ``out/licensed_files``. Returns the number of rows."""
    from pyspark.sql import functions as F

    contents = spark.read.json(
        str(out / "file_contents"),
        schema="blob_id string, content string, src_encoding string, language string, is_vendor boolean, "
        "is_generated boolean, length long",
    )
    files = (
        spark.read.parquet(str(out / "detected_licenses"))
        .join(contents, "blob_id")
        .where((F.col("license_type") != "non_permissive") & F.col("language").isNotNull())
        .where(F.col("content").isNotNull())
        .withColumn("repo_url", F.concat(F.lit("https://github.com/"), "repo_name"))
        .withColumn("language_id", F.col("language"))
    )
    files.write.partitionBy("language_id").parquet(str(out / "licensed_files"), mode="overwrite")
    return spark.read.parquet(str(out / "licensed_files")).count()


def near_dedup(source: str, filename: str, spark, out: Path, partitions: int) -> dict:
    """``intra_dedup.py`` per language folder, as ``run.sh`` runs it."""
    sys.modules["graphframes"] = types.SimpleNamespace(GraphFrame=GraphFrameShim)
    code = compile(source, filename, "exec")
    counts = {}
    for folder in sorted((out / "licensed_files").glob("language_id=*")):
        language = folder.name.split("=", 1)[1]
        target = out / "deduped" / language
        argv = ["intra_dedup.py", "--input", str(folder), "--output", str(target)]
        argv += ["--checkpoint_dir", str(out / "checkpoints"), "--threshold", "0.7", "--repo_column", "repo_url"]
        with mock.patch.object(sys, "argv", [*argv, "--rank"]), capped_shuffle_partitions(partitions):
            try:
                exec(code, {"__name__": "__main__", "__file__": filename})  # noqa: S102 (as run.sh runs it)
            except SystemExit as e:  # the script exits 0 when a language has no edge (after writing it)
                if e.code not in (0, None):
                    raise
        counts[language] = spark.read.parquet(str(target)).count()
    return counts


def file_lists(out: Path) -> dict[str, int]:
    """``OUT/files/<product>.parquet``: (repo_name, path, blob_id) of each product. Read with pyarrow: Spark reads
    the language folders of ``deduped`` only one by one (each has its own ``__pid__`` partitions)."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    counts = {}
    for product, folder in (("the-stack-v2", "licensed_files"), ("the-stack-v2-dedup", "deduped")):
        files = ds.dataset(out / folder, format="parquet", ignore_prefixes=[".", "_SUCCESS"])  # not __pid__=N
        rows = files.to_table(columns=["repo_name", "path", "blob_id"])
        pq.write_table(rows, out / "files" / f"{product}.parquet")
        counts[product] = len(rows)
    return counts


def run(
    archive: Path, events: Path, out: Path, the_stack_v2: str, bigcode_dataset: str, partitions: int, resume: bool
) -> dict:
    from stackv2.detect.license import load_permissive

    spark = spark_session(partitions)
    capped = capped_repartition(partitions)
    capped.start()
    (out / "files").mkdir(parents=True, exist_ok=True)
    orc = archive / "orc"
    seconds: dict[str, float] = {}
    summary: dict = {"seconds": seconds}

    def step(name: str, path: str, args: dict | None = None, names: dict | None = None) -> types.ModuleType:
        """Load a script of the-stack-v2 and run its ``main`` with ``args``, ``names`` set in its globals; a step
        that completed (``OUT/<name>.done``) is skipped with ``--resume``."""
        t0 = time.monotonic()
        module = load_module(name, script_source(the_stack_v2, THE_STACK_V2_COMMIT, path), path)
        module.__dict__.update(names or {})
        marker = out / f"{name}.done"
        done = args is not None and resume and marker.exists()
        if args is not None and not done:
            module.main(spark, SimpleNamespace(**args))
            marker.touch()
        seconds[name] = round(time.monotonic() - t0, 1)
        print(f"  {name}: {seconds[name]}s{' (done before)' if done else ''}", file=sys.stderr)
        return module

    step(
        "merge_gha_swh",
        "the_stack/0_repo_data/merge_gha_swh.py",
        {
            "gharchive_path": str(events),
            "swh_origin_path": str(orc / "origin_visit_status"),
            "swh_snapshot_branch_path": str(orc / "snapshot_branch"),
            "swh_revision_path": str(orc / "revision"),
            "output_path": str(out / "repo_data"),
        },
    )
    step(
        "find_file_paths",
        "the_stack/1_directory_traversal/find_file_paths.py",
        {
            "repo_data_path": str(out / "repo_data"),
            "swh_directory_entry_path": str(orc / "directory_entry"),
            "swh_content_path": str(orc / "content"),
            "cache_path": str(out / "file_paths_cache"),
            "output_path": str(out / "file_paths"),
        },
        {"range": tree_levels(str(out / "file_paths_cache"))},
    )
    step(
        "get_unique_files",
        "the_stack/1_directory_traversal/get_unique_files.py",
        {"input_path": str(out / "file_paths"), "output_path": str(out / "files_to_download")},
    )
    t0 = time.monotonic()
    sys.modules.setdefault("pypeln", types.ModuleType("pypeln"))  # used by the replaced __main__ only
    contents = step("get_file_contents", "the_stack/2_download_files/get_file_contents.py")
    summary["file_contents"] = file_contents(contents, out / "files_to_download", archive, out / "file_contents")
    seconds["get_file_contents"] = round(time.monotonic() - t0, 1)
    permissive = SimpleNamespace(text="\n".join(sorted(load_permissive())))
    with mock.patch("requests.get", lambda url, **kw: permissive):
        step(
            "get_license_types",
            "the_stack/3_file_dataset/get_license_types.py",
            {
                "repo_data_path": str(out / "repo_data"),
                "file_paths_path": str(out / "file_paths"),
                "file_contents_path": str(out / "file_contents"),
                "output_path": str(out / "detected_licenses"),
            },
        )
    if not (resume and (out / "intra_dedup.done").exists()):
        t0 = time.monotonic()
        summary["the_stack_v2_rows"] = unreleased_step(spark, out)
        seconds["unreleased_step"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        path = "near_deduplication/bigcode-v2/intra_dedup.py"
        summary["deduped_per_language"] = near_dedup(
            script_source(bigcode_dataset, BIGCODE_DATASET_COMMIT, path), path, spark, out, partitions
        )
        seconds["intra_dedup"] = round(time.monotonic() - t0, 1)
        (out / "intra_dedup.done").touch()
    summary["products"] = file_lists(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    capped.stop()
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", required=True, type=Path, help="archive folder (orc/ and content/)")
    p.add_argument("--github-events", required=True, type=Path, help="folder of GH Archive *.json.gz files")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--the-stack-v2", default=DEFAULT_MIRRORS["the_stack_v2"], help="git dir or checkout")
    p.add_argument("--bigcode-dataset", default=DEFAULT_MIRRORS["bigcode_dataset"], help="git dir or checkout")
    p.add_argument("--partitions", type=int, default=8, help="spark.sql.shuffle.partitions (BigCode: 2048-65536)")
    p.add_argument("--resume", action="store_true", help="skip the scripts that completed before (OUT/<step>.done)")
    a = p.parse_args(argv)
    summary = run(
        a.archive.resolve(),
        a.github_events.resolve(),
        a.out.resolve(),
        a.the_stack_v2,
        a.bigcode_dataset,
        a.partitions,
        a.resume,
    )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
