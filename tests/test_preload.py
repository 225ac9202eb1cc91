"""Models loaded once per executor by the daemon that forks the Python workers (``stackv2.preload``): the workers
of a stage that preloads find them loaded and share their pages; a model that cannot load is left to the workers;
nothing a loader prints reaches the channel the daemon tells the JVM its port on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines._session import preloading
from stackv2.detect.config import AnnotateConfig, NaturalConfig
from stackv2.detect.natural import default_model_path
from stackv2.pii.config import PiiConfig
from stackv2.preload import PRELOAD_ENV, Preload, for_annotate, for_pii, load_from_environment

REPO = Path(__file__).resolve().parent.parent
#: What one more worker may add to an executor's memory while annotating (its private pages).
WORKER_LIMIT_MIB = 400


def test_a_preload_travels_as_text():
    models = Preload(scancode=True, fasttext="/models/lid.176.ftz", pii=PiiConfig(entities=("EMAIL",)))
    assert Preload.decode(models.encode()) == models
    assert for_annotate(AnnotateConfig(natural=NaturalConfig(model_path="/m.ftz"))) == Preload(True, "/m.ftz")
    assert for_pii(PiiConfig()) == Preload(pii=PiiConfig())
    assert for_pii(PiiConfig(ner_model="/models/starpii")) is None  # a torch model is never shared by a fork


def test_a_model_that_cannot_load_is_left_to_the_workers(capsys):
    broken = Preload(fasttext="/nonexistent/lid.176.ftz").encode()
    assert load_from_environment({PRELOAD_ENV: broken}) is None
    assert "FileNotFoundError" in capsys.readouterr().err
    assert load_from_environment({}) is None


def test_the_daemon_port_channel_stays_clean():
    """The daemon's standard output carries its port to the JVM: a preload's messages go to standard error."""
    env = {**os.environ, PRELOAD_ENV: Preload(fasttext="/nonexistent/lid.176.ftz").encode()}
    code = "import pyspark_stackv2_daemon as d, stackv2.preload as p; p.load = print; d.preload_models()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert proc.stdout == "" and "Preload(" in proc.stderr


def test_no_runtime_that_a_fork_breaks_is_loaded():
    """go-enry starts Go's runtime: a daemon that imported it would fork workers that hang. Loading the fastText
    model does not import it, and a preload that did is refused."""
    fasttext = Preload(fasttext=str(default_model_path())).encode()
    code = "import sys\nfrom stackv2.preload import Preload, load\n"
    loads = f"{code}load(Preload.decode({fasttext!r}))\nassert 'enry' not in sys.modules"
    subprocess.run([sys.executable, "-c", loads], cwd=REPO, check=True, capture_output=True)
    code = f"import enry\n{code}load(Preload())"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0 and "PreloadError" in proc.stderr


@pytest.mark.spark
@pytest.mark.slow
def test_annotate_workers_share_the_models_their_daemon_loaded(spark):
    cfg = AnnotateConfig()

    def probe(batches):
        """Each worker: whether its daemon had loaded the models, annotations of license and prose files, then its
        own memory."""
        import glob

        import licensedcode

        from stackv2.detect.annotate import annotate_blob
        from stackv2.detect.license import scancode_index
        from stackv2.detect.natural import _model

        loaded = scancode_index.cache_info().currsize + _model.cache_info().currsize
        texts = sorted(glob.glob(os.path.join(os.path.dirname(licensedcode.__file__), "data/licenses/*.LICENSE")))
        found = sum(bool(annotate_blob(["LICENSE"], Path(p).read_text(errors="replace"), "UTF-8", cfg)["licenses"])
                    for p in texts[:1000:20])  # fmt: skip
        prose = annotate_blob(["README.md"], "This file explains how the numbers are added together.", "UTF-8", cfg)
        mem = {}
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Private_Clean", "Private_Dirty"):
                    mem[key] = int(rest.split()[0]) // 1024
        for _ in batches:
            pass
        yield pa.RecordBatch.from_pydict(
            {
                "daemon": [os.getppid()],
                "loaded": [loaded],
                "found": [found],
                "natural": [prose["natural_language"]],
                "uss_mib": [sum(mem.values())],
            }
        )

    env = spark.sparkContext.environment
    with preloading(spark, for_annotate(cfg)):
        rows = spark.range(0, 2, numPartitions=2).mapInArrow(
            probe, "daemon long, loaded long, found long, natural string, uss_mib long"
        )
    assert PRELOAD_ENV not in env  # only the functions created inside the block
    got = rows.collect()
    assert len(got) == 2 and len({r["daemon"] for r in got}) == 1
    for r in got:
        assert r["loaded"] == 2, "the index and the fastText model were loaded before the fork"
        assert r["found"] > 40 and r["natural"] == "en", "the shared models work in the workers"
        assert r["uss_mib"] <= WORKER_LIMIT_MIB, f"a worker holds {r['uss_mib']} MiB of its own"
