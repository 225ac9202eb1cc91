"""Large read-only models loaded once per executor, by the process that forks its Python workers.

Spark forks every Python worker of an executor from a daemon (``pyspark_stackv2_daemon``). What the daemon loads
before it forks is in every worker as copy-on-write pages, one copy per executor instead of one per worker:
ScanCode's license index alone is ~1 GiB in each process that loads it. The daemon then moves what it loaded out
of the garbage collector's sight (``gc.freeze``), so the workers' collections never write to those pages; reference
counts still do, which copies only the pages a worker touches (measured in docs/scaling.md).

A ``Preload`` names what to load and the settings it is loaded with, and reaches the daemon in its environment
(``PRELOAD_ENV``): ``pipelines._session.preloading`` sets it for the Python functions of one job, and Spark starts
one daemon per distinct worker environment, so the jobs that need no model keep a daemon without any. An empty
``Preload`` loads nothing and still gives the job workers of its own: models they load themselves never reach the
workers later stages reuse. A daemon started for a ``Preload`` exits once it has had no worker for a while
(``pyspark_stackv2_daemon``), so what it holds goes with its job. Everything is read from disk (the loaders below
are the ones the workers would call): nothing is downloaded.
"""

from __future__ import annotations

import gc
import json
import sys
from dataclasses import asdict, dataclass

from stackv2.pii.config import PiiConfig

#: The worker environment variable holding a ``Preload`` (``Preload.encode``).
PRELOAD_ENV = "STACKV2_PRELOAD"


@dataclass(frozen=True)
class Preload:
    """What a daemon loads before forking workers; each the very object the workers' own cached loaders return."""

    #: ScanCode's license index and licence database (``stackv2.detect.license``).
    scancode: bool = False
    #: The presidio engine for these settings (``stackv2.pii.engine.get_engine``).
    pii: PiiConfig | None = None

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> Preload:
        """The ``Preload`` ``encode`` wrote. Imports nothing heavy (``stackv2.config`` would bring pyarrow, and its
        allocator thread, into the daemon before it forks)."""
        data = json.loads(text)
        pii = data.pop("pii", None)
        if pii is not None:
            pii = PiiConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in pii.items()})
        return cls(**data, pii=pii)


def for_licenses(shared: bool) -> Preload:
    """The license job's workers: sharing ScanCode's index loaded by their daemon, or each loading its own."""
    return Preload(scancode=shared)


def for_pii(cfg: PiiConfig) -> Preload | None:
    """None with a NER model: a torch model is not shared across a fork (a GPU context cannot be at all), so each
    worker loads its own, as without preloading."""
    return None if cfg.ner_model else Preload(pii=cfg)


#: Modules that start threads a fork cannot carry: go-enry starts Go's runtime, whose scheduler then waits forever in
#: a forked child for threads that stayed in the parent. Never loaded by a preload (BLAS thread pools, which numpy
#: starts, are fork-safe: they stop and restart themselves around a fork).
NOT_FORK_SAFE = ("enry",)


class PreloadError(RuntimeError):
    """Loading the models imported a module of ``NOT_FORK_SAFE``: workers forked from this process would hang."""


def load(models: Preload) -> None:
    """Load ``models`` into this process's caches, then freeze every object alive (``gc.freeze``). Raises
    ``PreloadError`` if that imported a module of ``NOT_FORK_SAFE``: this process is about to fork."""
    if models.scancode:
        from stackv2.detect.license import scancode_index, spdx_ids

        scancode_index()
        spdx_ids("mit")  # the licence database and expression parser
    if models.pii is not None:
        from stackv2.pii.engine import get_engine

        get_engine(models.pii)
    if unsafe := [m for m in NOT_FORK_SAFE if m in sys.modules]:
        raise PreloadError(f"loading {models} imported {unsafe}: it must not run before a fork")
    gc.collect()
    gc.freeze()


def load_from_environment(environ: dict[str, str]) -> Preload | None:
    """``load`` what ``environ[PRELOAD_ENV]`` names (nothing without it). A model that fails to load is reported on
    stderr and left to the workers, which then fail on it with their own error; ``PreloadError`` is raised."""
    text = environ.get(PRELOAD_ENV)
    if not text:
        return None
    try:
        models = Preload.decode(text)
        load(models)
    except PreloadError:
        raise
    except Exception as e:  # the worker that needs the model raises it with its own error
        print(f"[stackv2] preloading failed, each worker loads its own: {type(e).__name__}: {e}", file=sys.stderr)
        return None
    return models
