import gzip
import hashlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stackv2.text.decode import (
    BINARY,
    CORRUPT_OBJECT,
    HASH_MISMATCH,
    TOO_LARGE,
    UNDECODABLE,
    CorruptObject,
    TooLarge,
    content_hashes,
    decode_content,
    gunzip_bounded,
    process_blob,
)


def sha1(b: bytes) -> str:
    return hashlib.sha1(b).hexdigest()  # noqa: S324 - the content address SWH uses, not security


@given(st.binary(max_size=5000))
def test_gunzip_bounded_round_trips(data):
    assert gunzip_bounded(gzip.compress(data), len(data)) == data


def test_gunzip_bounded_accepts_concatenated_members():
    assert gunzip_bounded(gzip.compress(b"ab") + gzip.compress(b"cd"), 10) == b"abcd"


def test_gzip_bomb_stops_at_the_cap():
    # 64 MiB of zeros compress to ~64 KiB; with a 1 MiB cap we must stop early, not inflate it all.
    bomb = gzip.compress(b"\0" * (64 << 20))
    with pytest.raises(TooLarge):
        gunzip_bounded(bomb, 1 << 20)


@pytest.mark.parametrize("blob", [b"not gzip at all", gzip.compress(b"hello world" * 100)[:-12]])
def test_corrupt_or_truncated_gzip(blob):
    with pytest.raises(CorruptObject):
        gunzip_bounded(blob, 1 << 20)


def test_decode_utf8_and_legacy_encodings():
    assert decode_content("héllo".encode()) == ("héllo", "UTF-8")
    text = "Ceci est un fichier écrit en français, avec des accents à foison: é è ê ç à ù.\n" * 20
    decoded = decode_content(text.encode("latin-1"))
    assert decoded is not None and decoded[0] == text and decoded[1] != "UTF-8"


def test_content_hashes_equal_git():
    # `printf 'hello\n' | git hash-object --stdin`
    assert content_hashes(b"hello\n") == {
        "sha1": sha1(b"hello\n"),
        "sha1_git": "ce013625030ba8dba906f756967f9e9ca394464a",
    }


def test_process_blob_reasons():
    ok = b"print('hi')\n"
    out = process_blob(sha1(ok), gzip.compress(ok), max_length=1000)
    assert (out.content, out.src_encoding, out.length_bytes, out.reason) == ("print('hi')\n", "UTF-8", 12, None)
    assert process_blob("0" * 40, gzip.compress(ok), max_length=1000).reason == HASH_MISMATCH
    assert process_blob(sha1(ok), gzip.compress(ok), content_id="1" * 40, max_length=1000).reason == HASH_MISMATCH
    assert process_blob(sha1(ok), gzip.compress(ok), max_length=12).reason == TOO_LARGE
    assert process_blob(sha1(ok), gzip.compress(ok), max_length=13).reason is None
    binary = b"\x7fELF\0\0\x01"
    assert process_blob(sha1(binary), gzip.compress(binary), max_length=1000).reason == BINARY
    assert process_blob(sha1(ok), b"garbage", max_length=1000).reason == CORRUPT_OBJECT
    bad = b"\xff\xfe\xfa\xfb" * 3
    assert process_blob(sha1(bad), gzip.compress(bad), max_length=1000, encoding="utf-8").reason == UNDECODABLE


def test_raw_deflate_is_not_accepted_as_gzip():
    with pytest.raises(CorruptObject):
        gunzip_bounded(zlib.compress(b"x" * 100), 1000)
