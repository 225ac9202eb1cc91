"""Products, composition, provenance and the fidelity setting: the pure parts, without Spark."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from swh.model.exceptions import ValidationError
from swh.model.swhids import CoreSWHID, ObjectType, QualifiedSWHID

from stackv2.config import CORRECTED, REFERENCE, REFERENCE_RULES, ConfigError, RunConfig, load_config, to_dict
from stackv2.dedup.config import DedupConfig
from stackv2.release.compose import keep_rates
from stackv2.release.config import GB, ComposeConfig
from stackv2.release.products import PRODUCTS, TRAIN_FULL, TRAIN_SMOL, product
from stackv2.release.provenance import lookup
from stackv2.swh.swhid import file_swhid
from stackv2.workdir import adopt_outputs

CONTENT, SNP, REV = "94a9ed024d3859793618152ea559a168bbcbb5e2", "aa" * 20, "bb" * 20


def _get(cfg, setting: str):
    for part in setting.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_reference_mode_takes_every_rule_left_at_its_default():
    corrected, reference = RunConfig(), RunConfig(fidelity=REFERENCE)
    assert corrected.fidelity == CORRECTED
    for setting, value in REFERENCE_RULES:
        assert _get(corrected, setting) != value, setting
        assert _get(reference, setting) == value, setting


def test_reference_mode_keeps_a_rule_set_explicitly_and_copies_shared_sections():
    mine = DedupConfig(arithmetic="uint32", short_files="unique", threshold=0.8)
    cfg = RunConfig(fidelity=REFERENCE, near_dedup=mine)
    # short_files was given at its default: indistinguishable from not given, so it takes BigCode's value
    assert (cfg.near_dedup.threshold, cfg.near_dedup.short_files) == (0.8, "cluster")
    assert mine.short_files == "unique"  # the section handed in is not changed
    # a value that is not the default is kept (here the origin pattern, set through the YAML path)
    cfg = load_config(None, ["fidelity=reference", "extract.origin_pattern=.*"])
    assert cfg.extract.origin_pattern == ".*" and cfg.extract.all_fallback_branches
    assert to_dict(load_config(None, ["fidelity=reference"]))["near_dedup"]["arithmetic"] == "uint32"


def test_fidelity_must_be_known():
    with pytest.raises(ConfigError, match="fidelity"):
        RunConfig(fidelity="faithful")


def test_products_name_their_stages():
    assert [p.name for p in PRODUCTS] == [
        "the-stack-v2",
        "the-stack-v2-dedup",
        "the-stack-v2-train-full",
        "the-stack-v2-train-smol",
        "jupyter-scripts",
        "jupyter-structured",
    ]
    assert {p.name for p in PRODUCTS if p.redacted} == {p.name for p in PRODUCTS} - {
        "the-stack-v2",
        "the-stack-v2-dedup",
    }
    assert product(TRAIN_SMOL).only == "train_smol" and product(TRAIN_FULL).repo_level
    with pytest.raises(ValueError, match="unknown product"):
        product("the-stack-v3")


def test_keep_rates_cap_only_the_languages_over_their_cap():
    caps = ComposeConfig().caps
    assert caps["Java"] == caps["JavaScript"] == 200 * GB and caps["JSON"] == 8 * GB
    rates = keep_rates({"Java": 400 * GB, "JSON": 4 * GB, "Python": 900 * GB, None: 5}, caps)
    assert rates == {"Java": 0.5}
    assert keep_rates({}, caps) == {}
    with pytest.raises(ValueError, match=r"compose\.caps"):
        ComposeConfig(caps={"Java": -1})


def test_file_swhid_round_trips_and_escapes_the_path():
    swhid = file_swhid(CONTENT, "https://github.com/a/b", SNP, REV, "/src/a;b%c.py")
    assert swhid == (
        f"swh:1:cnt:{CONTENT};origin=https://github.com/a/b;visit=swh:1:snp:{SNP};anchor=swh:1:rev:{REV};"
        "path=/src/a%3Bb%25c.py"
    )
    parsed = QualifiedSWHID.from_string(swhid)
    assert parsed.path == b"/src/a;b%c.py" and parsed.origin == "https://github.com/a/b"


def test_file_swhid_leaves_out_what_is_unknown():
    # a root given by SWHID has that SWHID as its "origin"; a bare directory root has no snapshot or revision
    assert file_swhid(CONTENT, f"swh:1:dir:{SNP}", None, None, "/x.py") == f"swh:1:cnt:{CONTENT};path=/x.py"


def _swh_model_file_swhid(content_id, origin, snapshot_id, revision_id, path) -> str:
    """``file_swhid`` as it was first written: by building swh-model's ``QualifiedSWHID``."""

    def core(kind: ObjectType, hex_id: str | None) -> CoreSWHID | None:
        return CoreSWHID(object_type=kind, object_id=bytes.fromhex(hex_id)) if hex_id else None

    return str(
        QualifiedSWHID(
            object_type=ObjectType.CONTENT,
            object_id=bytes.fromhex(content_id),
            origin=origin if origin and "://" in origin else None,
            visit=core(ObjectType.SNAPSHOT, snapshot_id),
            anchor=core(ObjectType.REVISION, revision_id),
            path=path.encode() if path else None,
        )
    )


_HEX_IDS = st.one_of(
    st.binary(min_size=20, max_size=20).map(bytes.hex),
    st.binary(min_size=20, max_size=20).map(lambda b: b.hex().upper()),
    st.binary(min_size=0, max_size=24).map(bytes.hex),  # wrong lengths: both must refuse them
)
# Characters the escaping rules name, among any others.
_TEXT = st.text(st.one_of(st.sampled_from("%;/~ ?#&=:+"), st.characters(codec="utf-8")), max_size=30)


@settings(max_examples=400, deadline=None)
@example(CONTENT, "https://h/a%3Bb;c", SNP, REV.upper(), "/a b/%;~\u00e9+")
@given(
    content_id=_HEX_IDS,
    origin=st.one_of(st.none(), _TEXT, st.builds("{}://{}".format, _TEXT, _TEXT)),
    snapshot_id=st.one_of(st.none(), st.just(""), _HEX_IDS),
    revision_id=st.one_of(st.none(), st.just(""), _HEX_IDS),
    path=st.one_of(st.none(), _TEXT, st.builds("/{}/{}".format, _TEXT, _TEXT)),
)
def test_file_swhid_writes_what_swh_model_writes(content_id, origin, snapshot_id, revision_id, path):
    args = (content_id, origin, snapshot_id, revision_id, path)
    try:
        expected = _swh_model_file_swhid(*args)
    except ValidationError:
        with pytest.raises(ValidationError):
            file_swhid(*args)
        return
    assert file_swhid(*args) == expected


def test_lookup(tmp_path):
    rows = [
        {"product": p, "repo_name": r, "path": f, "blob_id": b, "swhid": f"swh:{r}{f}", "content": "x"}
        for p in ("the-stack-v2", TRAIN_FULL)
        for r, f, b in (("a/b", "/x.py", "b1"), ("a/c", "/y.py", "b2"))
    ]
    table = tmp_path / "shards" / "data"
    table.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), table / "part-00000.parquet")
    adopt_outputs(tmp_path / "shards")
    found = lookup(table, blob_id="b1")
    assert [(r["product"], r["swhid"]) for r in found] == [
        ("the-stack-v2", "swh:a/b/x.py"),
        (TRAIN_FULL, "swh:a/b/x.py"),
    ]
    assert "content" not in found[0]
    assert lookup(table, repo_name="a/c", product=TRAIN_FULL)[0]["path"] == "/y.py"
    assert lookup(table, path="/nope") == []
    with pytest.raises(ValueError, match="give a blob id"):
        lookup(table, product=TRAIN_FULL)
    with pytest.raises(FileNotFoundError, match="shards stage"):
        lookup(tmp_path / "missing", blob_id="b1")


def test_reference_rules_are_documented():
    """Every rule reference mode changes has its row in docs/fidelity.md."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "fidelity.md").read_text()
    for setting, _ in REFERENCE_RULES:
        assert f"`{setting}`" in doc, setting
