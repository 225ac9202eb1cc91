import dataclasses
import re

import pytest

from stackv2.config import ConfigError, RunConfig, SparkConfig, load_config, stable_hash, to_dict
from stackv2.swh.config import FetchConfig


def test_defaults_are_the_papers():
    cfg = RunConfig()
    assert cfg.extract.max_depth == 64
    assert cfg.extract.origin_pattern.startswith("^https://github")
    assert cfg.fetch.max_length == 10 * 1024 * 1024


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("work_dir: /tmp/w\nextract:\n  max_depth: 3\n  fallback_branches: [HEAD]\n")
    cfg = load_config(p, ["spark.shuffle_partitions=3", "fetch.verify_hashes=false", "extract.origin_pattern='.*'"])
    assert cfg.work_dir == "/tmp/w"
    assert cfg.extract.max_depth == 3 and cfg.extract.fallback_branches == ("HEAD",)
    assert cfg.spark.shuffle_partitions == 3 and cfg.fetch.verify_hashes is False
    assert cfg.extract.origin_pattern == ".*"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense_key: 1\n", "unknown key"),
        ("extract:\n  max_depth: deep\n", "expected int"),
        ("- a list\n", "mapping"),
        ("extract: [1\n", "not valid YAML"),
        ("fetch:\n  verify_hashes: 3\n", "true/false"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    p = tmp_path / "run.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(p)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_hash_is_stable_and_sensitive():
    a, b = to_dict(RunConfig()), to_dict(load_config(None, ["extract.max_depth=5"]))
    assert stable_hash(a) == stable_hash(to_dict(RunConfig()))
    assert stable_hash(a) != stable_hash(b)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("spark.shuffle_partitions=0", "spark.shuffle_partitions must be > 0, got 0"),
        ("spark.arrow_batch_size=-1", "spark.arrow_batch_size must be > 0"),
        ("spark.driver_memory=lots", "spark.driver_memory must be a JVM size"),
        ("fetch.max_length=-5", "fetch.max_length must be > 0, got -5"),
        ("fetch.concurrency=0", "fetch.concurrency must be > 0"),
        ("fetch.read_timeout=0", "fetch.read_timeout must be > 0"),
        ("fetch.backoff_base=-0.1", "fetch.backoff_base must be >= 0"),
        ("reproduce.fetch.max_attempts=0", "fetch.max_attempts must be > 0"),
        ("reproduce.rows_per_shard=0", "reproduce.rows_per_shard must be > 0"),
        ("extract.max_depth=0", "extract.max_depth must be > 0"),
        ("filter.min_alpha_fraction=1.5", "filter.min_alpha_fraction must be within [0, 1], got 1.5"),
        ("filter.max_line_length=0", "filter.max_line_length must be > 0"),
        ("pii.window_chars=0", "pii.window_chars must be > 0"),
        ("pii.ner_min_score=2", "pii.ner_min_score must be within [0, 1]"),
        ("shards.target_shard_bytes=0", "shards.target_shard_bytes must be > 0"),
        ("annotate.license.max_chars=0", "annotate.license.max_chars must be > 0"),
        ("tokenize.fim_spm_rate=1.5", "tokenize.fim_spm_rate must be within [0, 1]"),
        ("tokenize.vocab_size=0", "tokenize.vocab_size must be > 0"),
    ],
)
def test_out_of_range_values_are_one_clear_error(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


@pytest.mark.parametrize(
    "master",
    [
        *("local", "local[1]", "local[*]", "local[4,2]", "local[*,3]", "local-cluster[2,1,1024]", "yarn"),
        *("spark://10.0.0.1:7077", "spark://a:7077,b:7077", "k8s://https://kube:6443", "mesos://zk:5050"),
    ],
)
def test_spark_masters_of_every_known_form(master):
    assert load_config(None, [f"spark.master={master}"]).spark.master == master


@pytest.mark.parametrize("master", ["bogus://x", "local[0]", "local[two]", "spark://", "Local", "", "yarn-client"])
def test_unknown_spark_masters_name_the_allowed_forms(master):
    with pytest.raises(ConfigError, match=r"spark.master must be one of local, local\[N\], local\[\*\].* got"):
        load_config(None, [f"spark.master={master!r}"])


def test_sections_check_themselves_however_built():
    """``dataclasses.replace`` (command-line flags) goes through the same checks as loading."""
    with pytest.raises(ValueError, match=re.escape("fetch.concurrency must be > 0, got 0")):
        dataclasses.replace(FetchConfig(), concurrency=0)
    with pytest.raises(ValueError, match=re.escape("spark.master must be one of")):
        SparkConfig(master="bogus://x")


def test_the_defaults_pass_their_own_checks():
    assert load_config(None, []) == RunConfig()
