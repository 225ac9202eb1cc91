import gzip
import hashlib
import zlib

import cchardet
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stackv2.text.decode import (
    BINARY,
    CORRUPT_OBJECT,
    HASH_MISMATCH,
    SNIFF_BYTES,
    TOO_LARGE,
    UNDECODABLE,
    CorruptObject,
    TooLarge,
    content_hashes,
    declared_encoding,
    decode_blob,
    decode_content,
    encoding_name,
    gunzip_bounded,
    process_blob,
)


def sha1(b: bytes) -> str:
    return hashlib.sha1(b).hexdigest()  # noqa: S324 - the content address SWH uses, not security


@given(st.binary(max_size=5000))
def test_gunzip_bounded_round_trips(data):
    assert gunzip_bounded(gzip.compress(data), len(data)) == data


def zlib_gunzip_bounded(data: bytes, max_size: int) -> bytes:
    """``gunzip_bounded`` as it was with CPython's zlib, before ISA-L's inflate replaced it."""
    out, pos = bytearray(), data
    while True:
        d = zlib.decompressobj(wbits=31)
        try:
            while pos:
                out += d.decompress(pos, max_size + 1 - len(out))
                if len(out) > max_size:
                    raise TooLarge
                pos = d.unconsumed_tail
                if d.eof:
                    break
        except zlib.error:
            raise CorruptObject from None
        if not d.eof:
            raise CorruptObject
        rest = d.unused_data.lstrip(b"\0")
        if not rest:
            return bytes(out)
        pos = rest


def _outcome(fn, data: bytes, max_size: int) -> bytes | type:
    try:
        return fn(data, max_size)
    except (CorruptObject, TooLarge) as e:
        return type(e)


@st.composite
def damaged_gzip(draw) -> bytes:
    """gzip members (with or without a name, any level), then perhaps cut, a byte changed, zeros or bytes added."""
    members = draw(st.lists(st.binary(max_size=3000), min_size=1, max_size=3))
    blob = b"".join(
        gzip.compress(m, compresslevel=draw(st.integers(0, 9)), mtime=draw(st.integers(0, 2**31))) for m in members
    )
    if draw(st.booleans()):
        blob = blob[: draw(st.integers(0, len(blob)))]
    if blob and draw(st.booleans()):
        at = draw(st.integers(0, len(blob) - 1))
        blob = blob[:at] + bytes([blob[at] ^ draw(st.integers(1, 255))]) + blob[at + 1 :]
    return blob + draw(st.sampled_from([b"", b"\0" * 4, b"junk"]))


@settings(max_examples=400, deadline=None)
@given(damaged_gzip(), st.integers(0, 10_000))
def test_isal_inflate_gives_what_zlib_gave(blob, max_size):
    ours, zlibs = _outcome(gunzip_bounded, blob, max_size), _outcome(zlib_gunzip_bounded, blob, max_size)
    if ours != zlibs:
        # ISA-L reads a stream a block ahead of the cap, zlib stops at the cap: a stream that inflates past the cap
        # before a damage later in its block is rejected by one as corrupt and by the other as too large. Never
        # anything else: both reject it, and it is corrupt.
        assert {ours, zlibs} == {CorruptObject, TooLarge}
        assert _outcome(zlib_gunzip_bounded, blob, len(blob) << 12) is CorruptObject


def test_a_stream_too_large_before_its_damage_is_rejected_either_way():
    """The case hypothesis found (a deflate block that inflates a few zeros, then points back too far)."""
    blob = bytes.fromhex("1f8b0800000000000403636060000112d941ff03000000")
    assert _outcome(zlib_gunzip_bounded, blob, 0) is TooLarge
    assert _outcome(gunzip_bounded, blob, 0) is CorruptObject
    assert _outcome(gunzip_bounded, blob, 10_000) is _outcome(zlib_gunzip_bounded, blob, 10_000) is CorruptObject


def test_a_header_with_reserved_flags_is_corrupt():
    """RFC 1952 reserves three FLG bits; zlib refuses a member with one set, and so do we (ISA-L alone accepts it)."""
    member = bytearray(gzip.compress(b"abc"))
    member[3] |= 0x20
    for blob in (bytes(member), gzip.compress(b"x") + bytes(member)):
        assert _outcome(zlib_gunzip_bounded, blob, 100) is CorruptObject
        assert _outcome(gunzip_bounded, blob, 100) is CorruptObject


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


@given(st.binary(max_size=5000))
def test_content_hashes_equal_swh_models(data):
    from swh.model.hashutil import MultiHash

    expected = MultiHash.from_data(data, hash_names=("sha1", "sha1_git")).digest()
    assert content_hashes(data) == {k: v.hex() for k, v in expected.items()}


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


# --- declarations and byte-order marks (docs/fidelity.md, "Decoding") ---

#: Latin-1 text cchardet takes for IBM852 (Czech), as it did on a real file: only the declaration gets it right.
FRENCH = "François Müller: déjà vu, été, naïve"


def bigcode_decode(raw: bytes) -> tuple[str, str] | None:
    """BigCode's ``decode_content``, as released: strict UTF-8, else cchardet's guess."""
    try:
        return raw.decode("UTF-8"), "UTF-8"
    except UnicodeDecodeError:
        enc = cchardet.detect(raw)["encoding"]
        if not enc or enc == "UTF-8":
            return None
        try:
            return raw.decode(enc), enc
        except (UnicodeDecodeError, LookupError):
            return None


@pytest.mark.parametrize(
    "text",
    [
        f"# -*- coding: latin-1 -*-\nprint('{FRENCH}')\n",
        f"#!/usr/bin/env python\n# vim: set fileencoding=iso-8859-1 :\nprint('{FRENCH}')\n",
        f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<author>{FRENCH}</author>\n',
        f"<html><head><meta charset='iso-8859-15'></head><body>{FRENCH}</body></html>\n",
    ],
)
def test_a_declaration_beats_the_guess(text):
    raw = text.encode("latin-1")
    assert cchardet.detect(raw)["encoding"] == "IBM852"  # the reference releases mojibake
    assert bigcode_decode(raw)[0] != text
    content, enc = decode_content(raw)
    assert content == text
    assert enc in ("ISO-8859-1", "ISO-8859-15")


def test_html_latin1_means_windows_1252():
    text = f'<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">\n<p>“{FRENCH}”</p>\n'
    assert decode_content(text.encode("cp1252")) == (text, "WINDOWS-1252")


def test_pep263_second_line_only_after_a_comment():
    assert declared_encoding(b"#!/bin/sh\n# coding: latin-1\n") == "ISO-8859-1"
    assert declared_encoding(b"\n# coding=cp1252\n") == "WINDOWS-1252"
    assert declared_encoding(b"x = 1\n# coding: latin-1\n") is None
    assert declared_encoding(b"# one\n# two\n# coding: latin-1\n") is None


def test_declared_names_are_spelled_like_cchardet():
    assert [encoding_name(x) for x in ("latin_1", "utf8", "cp1252", "Shift-JIS", "gb18030")] == [
        "ISO-8859-1",
        "UTF-8",
        "WINDOWS-1252",
        "SHIFT_JIS",
        "GB18030",
    ]
    assert encoding_name("windows-1254") == encoding_name("cp1254") == "CP1254"  # one name per codec
    # unknown, not a character set, or not readable as ASCII (so the declaration cannot be true)
    for label in ("no-such-charset", "base64", "unicode_escape", "utf-16", "utf-7", "cp037"):
        assert encoding_name(label) is None, label


def test_a_lying_declaration_falls_back_to_the_reference_logic():
    for decl in ("ascii", "shift_jis", "utf-16", "nonsense"):
        raw = f"# coding: {decl}\n# {FRENCH}\n".encode("latin-1")
        assert decode_content(raw) == bigcode_decode(raw), decl
    # A valid UTF-8 file keeps its reference decoding whatever it declares (UTF-8 is tried before declarations).
    raw = f"# coding: latin-1\n# {FRENCH}\n".encode()
    assert decode_content(raw) == bigcode_decode(raw) == (raw.decode(), "UTF-8")


def test_a_declaration_past_the_sniff_window_is_not_read():
    meta = f"<meta charset='iso-8859-1'>\n<p>{FRENCH}</p>\n"
    near = ("<!-- " + "x" * (SNIFF_BYTES - 200) + " -->\n" + meta).encode("latin-1")
    far = ("<!-- " + "x" * SNIFF_BYTES + " -->\n" + meta).encode("latin-1")
    assert decode_content(near)[1] == "WINDOWS-1252"
    assert declared_encoding(far) is None
    assert decode_content(far) == bigcode_decode(far) and decode_content(far)[1] == "IBM852"


@pytest.mark.parametrize(
    ("codec", "name"),
    [("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32-le", "UTF-32"), ("utf-32-be", "UTF-32")],
)
def test_utf16_and_utf32_with_a_bom_are_text(codec, name):
    text = f"{FRENCH}\n日本語のテキスト 😀\n"
    raw = "\ufeff".encode(codec) + text.encode(codec)
    out = process_blob(sha1(raw), gzip.compress(raw), max_length=1000)
    assert (out.reason, out.content, out.src_encoding) == (None, text, name)
    assert raw.decode(out.src_encoding) == out.content  # readers re-decode with src_encoding (docs/spec.md §2.4)
    assert out.length_bytes == len(text.encode())


def test_utf8_bom_stays_in_the_content_as_the_reference_keeps_it():
    raw = "\ufeffprint('é')\n".encode()
    assert decode_content(raw) == bigcode_decode(raw) == ("\ufeffprint('é')\n", "UTF-8")


def test_wide_text_without_bom_or_with_nul_characters_stays_binary():
    assert decode_blob("print('hi')\n".encode("utf-16-le")).reason == BINARY
    assert decode_blob("\ufeffa\0b".encode("utf-16-le")).reason == BINARY  # a NUL character in the text
    assert decode_blob(b"\xff\xfe\x00\xd8\x00\x00").reason == BINARY  # a lone surrogate: not UTF-16 at all


def test_a_given_encoding_is_used_as_published():
    raw = f"# -*- coding: latin-1 -*-\n# {FRENCH}\n".encode("latin-1")
    out = decode_blob(raw, "IBM852")
    assert (out.content, out.src_encoding) == (raw.decode("IBM852"), "IBM852")
    assert decode_blob("\ufeffhi".encode("utf-16"), "UTF-16").reason == BINARY  # NUL bytes, as before


@given(st.binary(max_size=300).filter(lambda b: b"\0" not in b))
def test_src_encoding_decodes_the_bytes_to_the_content(raw):
    decoded = decode_content(raw)
    if decoded is not None:
        assert raw.decode(decoded[1]) == decoded[0]


@given(st.text(max_size=300))
def test_utf8_files_decode_exactly_as_the_reference(text):
    raw = text.encode()
    assert decode_content(raw) == bigcode_decode(raw)
