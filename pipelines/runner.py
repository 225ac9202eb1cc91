"""Chains the stages of a run with resume: ``stackv2 run --config run.yaml``.

A run executes the configured subset of ``_job.PIPELINE`` in that order; each stage reads the output of the stage
run just before it (``StageContext.input``) and may read any earlier stage by name. It holds the work folder's lock
(``stackv2.workdir.work_lock``) throughout: a second run on the same folder stops at once, naming the first. The
work folder is a local (or mounted) folder or a URI such as ``s3://bucket/run`` (``stackv2.storage``, docs/deploy.md).

Resume: a stage complete for its config hash whose outputs check (``_job.resume_state``) is skipped; any other is
run, and once one stage has run, every stage after it runs too (what they read has been rewritten).
"""

from __future__ import annotations

import importlib
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pipelines._job import PIPELINE, Stage, StageContext, run_stage
from pipelines._session import release_unreferenced, spark_session
from stackv2.config import ConfigError, RunConfig, stable_hash, to_dict
from stackv2.stats import StageStats
from stackv2.storage import Location, is_remote, location
from stackv2.workdir import work_lock


def load_stage(name: str) -> Stage:
    if name not in PIPELINE:
        raise ConfigError(f"unknown stage {name!r}; known stages: {list(PIPELINE)}")
    return importlib.import_module(f"pipelines.stages.{name}").STAGE


def selected_stages(cfg: RunConfig) -> list[str]:
    names = list(cfg.stages) or list(PIPELINE)
    for n in names:
        load_stage(n)
    return [n for n in PIPELINE if n in names]


def stage_hash(stage: Stage, cfg: RunConfig, upstream: str) -> str:
    cfg_dict = to_dict(cfg)
    extra = stage.fingerprint(cfg) if stage.fingerprint else ""
    return stable_hash(
        stage.name, stage.version, upstream or cfg.input, {k: cfg_dict[k] for k in stage.config_keys}, extra
    )


def work_location(work_dir: str) -> Location:
    """The configured work folder: a URI as given, a local path resolved."""
    return location(work_dir if is_remote(work_dir) else Path(work_dir).resolve())


def run_pipeline(cfg: RunConfig, log: Callable[[str], None] = print, command: str | None = None) -> list[StageStats]:
    """Run the configured stages with resume; returns each stage's stats in order. ``command`` is what the work
    folder's lock records as the run holding it (default: this process's command line)."""
    work = work_location(cfg.work_dir)
    work.mkdir()
    names = selected_stages(cfg)
    with work_lock(work, command or shlex.join(["stackv2", *sys.argv[1:]]), log) as lock:
        spark = spark_session(cfg.spark)
        results: list[StageStats] = []
        upstream, previous, redone = "", None, None
        trusted: set[str] = set()
        for name in names:
            lock.check()
            stage = load_stage(name)
            h = stage_hash(stage, cfg, upstream)
            ctx = StageContext(spark=spark, cfg=cfg, work_dir=work, previous=previous, config_hash=h, trusted=trusted)
            t0 = time.monotonic()
            log(f"[stackv2] stage {name} ...")
            redo = f"stage {redone} ran before it" if redone else None
            stats, skipped = run_stage(ctx, name, stage.run, redo=redo, log=log)
            if not skipped:
                release_unreferenced(spark)
            what = "skipped (complete for this config)" if skipped else f"done in {time.monotonic() - t0:.1f}s"
            log(
                f"[stackv2] stage {name}: {what}: {stats.rows_in} in, {stats.rows_out} out, "
                f"{stats.rows_rejected} rejected {stats.rejected or ''}"
            )
            results.append(stats)
            upstream, previous = h, name
            redone = redone or (None if skipped else name)
    return results
