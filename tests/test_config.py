import pytest

from stackv2.config import ConfigError, RunConfig, load_config, stable_hash, to_dict


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
