"""Opt-out on a work folder on S3 (a real SeaweedFS on 127.0.0.1, the CLI in a subprocess, no Spark): ``apply``
writes the bytes of the same apply on a local copy (release shards, token files, work tables, manifests, stats,
cards, the audit), ``verify`` fails before and passes after, ``check`` lists what the local check lists; an apply
killed at any step of its journal (before its commit point, between two moves, between two manifests) is finished
by the next to the same bytes; the credentials appear in no output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from test_optout_release import REGISTRY, registry
from test_optout_tokens import ANNOTATIONS, build_tokens, tokenizer  # noqa: F401 - tokenizer: a fixture

from stackv2.config import RunConfig
from stackv2.optout import release as oo
from stackv2.storage import Location, location
from stackv2.workdir import release_dir
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY
from tests.workfiles import assert_same, outputs

pytestmark = [pytest.mark.s3, pytest.mark.slow]
BUCKET = "stackv2-optout"


@pytest.fixture(scope="module")
def env(s3server) -> dict[str, str]:
    """The CLI's environment: the store's endpoint, region and the test key, as a job's would be."""
    s3server.create_bucket(BUCKET)
    aws = {
        "AWS_ENDPOINT_URL_S3": s3server.endpoint_url,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    return {**os.environ, **aws}


@pytest.fixture
def here(env, monkeypatch) -> None:
    """This process reads (and, for in-process applies, writes) the bucket with the same settings."""
    for k, v in env.items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, tokenizer) -> tuple[Path, Path]:  # noqa: F811 - the imported fixture
    """``build_tokens``' work folder (release, tables, token files), its near-duplicates annotated as the dedup
    stage keeps them (so a promoted file may enter the training products): copied, never applied to; and the
    registry."""
    root = tmp_path_factory.mktemp("s3-optout")
    _, work = build_tokens(root, tokenizer)
    t = pq.read_table(work / "near_dedup/rejected")
    for k, v in ANNOTATIONS.items():
        t = t.set_column(t.schema.get_field_index(k), k, pa.array([v] * t.num_rows, t.schema.field(k).type))
    lines = pc.cast(pc.count_substring(t["content"], "\n"), pa.int32())
    t = t.set_column(t.schema.get_field_index("num_lines"), "num_lines", lines)
    pq.write_table(t, work / "near_dedup/rejected/part-00000.parquet")
    return work, registry(root, REGISTRY)


def local_apply(pristine, root: Path, config: RunConfig | None = None) -> dict[str, bytes]:
    """The files of a local copy of the pristine work folder after an apply."""
    work, path = pristine
    shutil.copytree(work, root / "work")
    oo.apply(path, release_dir(root / "work"), root / "work", config=config)
    return outputs(root / "work")


@pytest.fixture(scope="module")
def reference(pristine, tmp_path_factory) -> dict[str, bytes]:
    """The local apply without the run's config (what ``stackv2 optout apply`` without ``--config`` does)."""
    return local_apply(pristine, tmp_path_factory.mktemp("s3-optout-local"))


def upload(pristine, name: str) -> Location:
    work = location(f"s3://{BUCKET}/{name}-{os.getpid()}")
    source = location(pristine[0])
    for f in source.files():
        (work / f.relative_to(source)).upload(f.path)
    return work


def stackv2(env: dict[str, str], *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """The CLI in a subprocess (``code``: a script run instead of ``pipelines.cli``, given the same arguments)."""
    head = ["-c", code] if code else ["-m", "pipelines.cli"]
    proc = subprocess.run([sys.executable, *head, *args], capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert SECRET_KEY not in out and ACCESS_KEY not in out, "a credential in the output"
    return proc


def optout(env: dict[str, str], action: str, work: Location, registry_path: Path, *more: str, code: str | None = None):
    release = release_dir(work).uri
    return stackv2(
        env,
        "optout",
        action,
        "--registry",
        str(registry_path),
        "--release",
        release,
        "--work",
        work.uri,
        *more,
        code=code,
    )


def test_apply_on_s3_writes_the_bytes_of_a_local_apply(pristine, reference, env, here, tmp_path):
    work, path = upload(pristine, "apply"), pristine[1]
    before = optout(env, "verify", work, path)
    assert before.returncode == 1, before.stdout + before.stderr
    assert "LEAK" in before.stdout and "FAILED" in before.stdout

    applied = optout(env, "apply", work, path)
    assert applied.returncode == 0, applied.stderr[-4000:]
    assert f'"report": "{work.uri}/optout_audit/audit-' in applied.stdout
    found = outputs(work)
    assert not [k for k in found if "/." in f"/{k}"], "staged files or the journal left after the commit"
    assert_same(reference, found)

    after = optout(env, "verify", work, path)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "OK:" in after.stdout and " 6 token documents scanned, 0 leaks, 0 problems" in after.stdout


def test_apply_with_the_runs_config_retokenizes_on_s3_as_locally(pristine, env, here, tmp_path):
    """A promoted file admitted to the training products: its repository is re-tokenized from the source shards
    (downloaded), the new shards uploaded beside the old and moved by the journal."""
    expected = local_apply(pristine, tmp_path, RunConfig())
    work = upload(pristine, "config")
    audit = oo.apply(pristine[1], release_dir(work), work, config=RunConfig())
    assert audit["tokens"]["retokenized"] == ["dave/copy"] and audit["report"].startswith(f"{work.uri}/")
    assert_same(expected, outputs(work))
    assert oo.verify(pristine[1], release_dir(work), work).ok


def test_check_lists_what_the_local_check_lists(pristine, env, here):
    work = upload(pristine, "check")
    local_release = str(release_dir(pristine[0]))
    local = stackv2(env, "optout", "check", "alice", "--release", local_release)
    remote = stackv2(env, "optout", "check", "alice", "--release", release_dir(work).uri)
    assert local.returncode == remote.returncode == 0, remote.stderr
    assert "\tAlice/proj\t" in remote.stdout
    assert remote.stdout == local.stdout.replace(local_release, release_dir(work).uri)


#: ``stackv2 optout apply`` killed as ``kill -9`` would (no cleanup) at one step: ``journal``, every new file staged
#: and the journal (the commit point) not written; ``move N``, before the N-th staged file is moved over its
#: original; ``json N``, before the N-th JSON file of the commit (manifests, stats, the audit) is written.
KILL_AT = """
import os, sys
from stackv2 import storage
from stackv2.optout import release as oo
from pipelines.cli import main
step, n = sys.argv[1], int(sys.argv[2])
done = {"move": 0, "json": 0}
move, write_json = storage.Location.move_or_copy, oo.write_json
def moving(self, target):
    if step == "move" and done["move"] == n:
        os._exit(137)
    done["move"] += 1
    move(self, target)
def writing(target, obj, **dumps):
    is_journal = str(target).endswith(oo.JOURNAL)
    if (step == "journal" and is_journal) or (step == "json" and not is_journal and done["json"] == n):
        os._exit(137)
    done["json"] += not is_journal
    write_json(target, obj, **dumps)
storage.Location.move_or_copy, oo.write_json = moving, writing
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize(("step", "n"), [("journal", 0), ("move", 0), ("move", 8), ("move", 20), ("json", 1)])
def test_an_apply_killed_at_a_journal_step_is_finished_by_the_next(pristine, reference, env, here, step, n):
    """The commit moves 25 files (3 release shards, 15 token files, 7 work table parts), then writes 7 JSON files
    (manifests, stats, the audit); killed before the commit point nothing changed, after it the next apply rolls
    forward."""
    work, path = upload(pristine, f"killed-{step}-{n}"), pristine[1]
    before = outputs(work)
    where = ["--release", release_dir(work).uri, "--work", work.uri]
    killed = stackv2(env, step, str(n), "optout", "apply", "--registry", str(path), *where, code=KILL_AT)
    assert killed.returncode == 137, killed.stderr[-4000:]
    journal = release_dir(work) / oo.JOURNAL
    if step == "journal":
        assert not journal.exists()
        assert {k: v for k, v in outputs(work).items() if "/." not in f"/{k}"} == before  # staged files only
    else:
        assert journal.exists()
        verify = optout(env, "verify", work, path)
        assert verify.returncode != 0 and "an interrupted apply; run apply again" in verify.stdout

    rerun = optout(env, "apply", work, path)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert_same(reference, outputs(work))
    assert optout(env, "verify", work, path).returncode == 0


def test_a_refused_key_is_named_without_the_key(pristine, env):
    """A wrong secret: the store's refusal is one line, neither key is (``stackv2`` checks every output)."""
    wrong = {**env, "AWS_SECRET_ACCESS_KEY": "not-" + SECRET_KEY}
    proc = stackv2(wrong, "optout", "check", "alice", "--release", f"s3://{BUCKET}/nothing-here/release")
    assert proc.returncode == 2 and "ACCESS_DENIED" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "not-" + SECRET_KEY not in proc.stdout + proc.stderr
