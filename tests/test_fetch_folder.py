"""Reading a folder store: the same outcomes, in input order, in the calling thread or on a pool of threads."""

from __future__ import annotations

import threading

import pytest

from stackv2.swh.config import FetchConfig
from stackv2.swh.content_store import LocalStore
from stackv2.swh.reader import open_reader
from stackv2.swh.s3fetch import fetch
from tests.s3server import fault_corpus


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    blobs = fault_corpus(n_good=30, bomb=False)
    for b in blobs:
        if b.stored is not None:
            path = LocalStore(root).path(b.blob_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b.stored)
    return root, blobs


@pytest.mark.parametrize("threads", [1, 4])
def test_every_reason_in_input_order(store, threads):
    root, blobs = store
    reader = open_reader(str(root), FetchConfig(folder_threads=threads))
    seen = set()
    original = reader.fetch_one

    def fetch_one(*req):
        seen.add(threading.current_thread().name.startswith("fetch"))
        return original(*req)

    reader.fetch_one = fetch_one
    outcomes = list(fetch(reader, [(b.blob_id, b.content_id, b.src_encoding) for b in blobs]))
    assert [o.reason for o in outcomes] == [b.reason for b in blobs]
    assert [o.content for o in outcomes if o.reason is None] == [b.text for b in blobs if b.reason is None]
    assert len({b.reason for b in blobs}) > 5  # every reject reason a folder can give, and good objects
    assert seen == {threads > 1}  # one thread: read in the caller's thread, no pool


def test_folder_threads_must_be_positive():
    with pytest.raises(ValueError, match="folder_threads"):
        FetchConfig(folder_threads=0)
