"""The dedup benchmark's datatrove adapter names each document datatrove clusters by its id, not by its Parquet row:
datatrove's reader drops empty documents, so rows and datatrove's document numbers part after the first one."""

from __future__ import annotations

import random
import string

import pytest

from bench.dedup import systems, truth
from bench.dedup.corpus import Doc
from bench.dedup.run import write_corpus

pytestmark = pytest.mark.slow


def _doc(name: str, content: str) -> Doc:
    return Doc(blob_id=f"{name:0>40}", repo_name="r", path=name, content=content)


def _source(seed: int) -> str:
    """300 random lower-case words, 10 a line: unrelated to any other seed's under any tokenization (datatrove
    normalizes digits and punctuation away)."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(300)]
    return "".join(" ".join(words[i : i + 10]) + "\n" for i in range(0, 300, 10))


def _patched(text: str) -> str:
    """The same text with one line's words changed: a near-duplicate (5-gram Jaccard ~0.9)."""
    lines = text.split("\n")
    lines[7] = " ".join(w[::-1] + "x" for w in lines[7].split())
    return "\n".join(lines)


def test_datatrove_clusters_with_empty_documents(tmp_path):
    pytest.importorskip("datatrove")
    a, b, c = _source(1), _source(2), _source(3)
    docs = [
        _doc("e1", ""),
        _doc("a", a),
        _doc("e2", ""),
        _doc("c", c),
        _doc("a2", _patched(a)),
        # second shard (write_corpus splits the rows in two halves)
        _doc("e3", ""),
        _doc("b", b),
        _doc("e4", ""),
        _doc("b2", _patched(b)),
        _doc("d", _source(4)),
    ]
    write_corpus(tmp_path, docs)
    contents = [d.content for d in docs]
    labels = truth.components(len(docs), truth.true_pairs(truth.shingle_sets(contents)))
    assert sorted(truth.true_pairs(truth.shingle_sets(contents))) == [(1, 4), (6, 8)]
    predicted = dict(systems.datatrove(tmp_path))
    assert sorted(predicted) == [1, 4, 6, 8]
    assert predicted[1] == predicted[4] != predicted[6] == predicted[8]
    assert truth.score(labels, predicted)["pair_f1"] == 1.0
