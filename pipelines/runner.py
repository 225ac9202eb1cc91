"""Chains the stages of a run with resume: ``stackv2 run --config run.yaml``.

A run executes the configured subset of ``_job.PIPELINE`` in that order; each stage reads the output of the stage
run just before it (``StageContext.input``) and may read any earlier stage by name.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path

from pipelines._job import PIPELINE, Stage, StageContext, run_stage
from pipelines._session import spark_session
from stackv2.config import ConfigError, RunConfig, stable_hash, to_dict
from stackv2.stats import StageStats


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


def run_pipeline(cfg: RunConfig, log: Callable[[str], None] = print) -> list[StageStats]:
    """Run the configured stages with resume; returns each stage's stats in order."""
    if "://" in cfg.work_dir:
        raise ConfigError(
            f"work_dir {cfg.work_dir!r}: stage outputs need a local or mounted shared folder "
            "(object stores cannot rename atomically; see docs/deploy.md)"
        )
    work = Path(cfg.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = selected_stages(cfg)
    spark = spark_session(cfg.spark)
    results: list[StageStats] = []
    upstream, previous = "", None
    for name in names:
        stage = load_stage(name)
        h = stage_hash(stage, cfg, upstream)
        ctx = StageContext(spark=spark, cfg=cfg, work_dir=work, previous=previous, config_hash=h)
        t0 = time.monotonic()
        log(f"[stackv2] stage {name} ...")
        stats, skipped = run_stage(ctx, name, stage.run)
        what = "skipped (complete for this config)" if skipped else f"done in {time.monotonic() - t0:.1f}s"
        log(
            f"[stackv2] stage {name}: {what}: {stats.rows_in} in, {stats.rows_out} out, "
            f"{stats.rows_rejected} rejected {stats.rejected or ''}"
        )
        results.append(stats)
        upstream, previous = h, name
    return results
