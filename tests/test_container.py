"""The container: round trip, and every kind of damage ends in BitstreamError."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import pytest

from ncodec.codec.container import (
    MAX_SECTION_BYTES,
    Colour,
    ContainerReader,
    ContainerWriter,
    StreamHeader,
    pack_chunks,
    unpack_chunks,
)
from ncodec.codec.errors import BitstreamError

HEADER = StreamHeader(
    codec="x264",
    width=177,
    height=99,
    fps=Fraction(30000, 1001),
    frame_count=0,
    colour=Colour(1, 1, 1, 1),
    has_audio=True,
    params={"crf": 23, "name": "é"},
)


def write_sample(path, sections=(("VPKT", b"abc" * 100), ("AUDM", b"\x00" * 10), ("VPKT", b""))):
    with ContainerWriter(path, HEADER) as w:
        for tag, payload in sections:
            w.write(tag, payload)
        w.close(frame_count=7)
    return path


def test_round_trip(tmp_path):
    path = write_sample(tmp_path / "a.bin")
    with ContainerReader(path) as r:
        assert r.header == StreamHeader(**{**HEADER.__dict__, "frame_count": 7})
        assert list(r.sections()) == [("VPKT", b"abc" * 100), ("AUDM", b"\x00" * 10), ("VPKT", b"")]
        assert list(r.sections("AUDM")) == [("AUDM", b"\x00" * 10)]
    assert not list(tmp_path.glob(".*part*")), "temporary file left behind"


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with ContainerWriter(tmp_path / "a.bin", HEADER) as w:
            w.write("VPKT", b"x")
            raise RuntimeError("encoder crashed")
    assert list(tmp_path.iterdir()) == []


def test_writer_without_close_leaves_nothing(tmp_path):
    with ContainerWriter(tmp_path / "a.bin", HEADER) as w:
        w.write("VPKT", b"x")
    assert list(tmp_path.iterdir()) == []


def corrupt(path, offset, value):
    data = bytearray(path.read_bytes())
    data[offset] = value
    path.write_bytes(bytes(data))


def first_section_offset(path):
    params_len = struct.unpack_from("<H", path.read_bytes(), 36)[0]
    return 38 + params_len + 4


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: corrupt(p, 0, ord("X")), "not an ncodec bitstream"),
        (lambda p: corrupt(p, 4, 9), "version 9"),
        (lambda p: corrupt(p, 13, 0x55), "header is corrupted"),  # width byte: CRC catches it
        (lambda p: corrupt(p, first_section_offset(p) + 4, 0xFF), "truncated"),  # section length
        (lambda p: corrupt(p, first_section_offset(p) + 12 + 5, 0x00), "CRC32 mismatch"),  # payload byte
        (lambda p: p.write_bytes(p.read_bytes()[:-3]), "truncated"),
        (lambda p: p.write_bytes(p.read_bytes()[:-16]), "truncated"),  # cut exactly at a section boundary
        (lambda p: p.write_bytes(p.read_bytes()[:20]), "truncated"),
        (lambda p: p.write_bytes(b""), "not an ncodec bitstream"),
        (lambda p: p.write_bytes(p.read_bytes() + b"junk"), "after the end marker"),
    ],
)
def test_damage_is_reported(tmp_path, damage, message):
    path = write_sample(tmp_path / "a.bin")
    damage(path)
    with pytest.raises(BitstreamError, match=message):
        with ContainerReader(path) as r:
            list(r.sections())


def forged_header(width, height, frames=1, params=b"{}"):
    fixed = struct.pack(
        "<4sBB4sIIIIIBBBBHH", b"NCDC", 1, 0, b"x264", width, height, 25, 1, frames, 2, 2, 2, 0, 0, len(params)
    )
    body = fixed + params
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    "width, height, frames",
    [(2**31, 2**31, 1), (100000, 10, 1), (0, 10, 1), (16384, 16384, 1), (64, 64, 2**31)],
)
def test_absurd_header_rejected_before_allocation(tmp_path, width, height, frames):
    path = tmp_path / "forged.bin"
    path.write_bytes(forged_header(width, height, frames))
    with pytest.raises(BitstreamError, match="outside|exceeds"):
        ContainerReader(path)


def test_section_length_over_limit_rejected(tmp_path):
    path = tmp_path / "forged.bin"
    path.write_bytes(forged_header(64, 64) + struct.pack("<4sII", b"VPKT", MAX_SECTION_BYTES + 1, 0))
    with pytest.raises(BitstreamError, match="over the limit"):
        ContainerReader(path)


def test_chunks_round_trip_and_bounds():
    chunks = [b"", b"a", b"b" * 127, b"c" * 128, b"d" * 70000]
    assert unpack_chunks(pack_chunks(chunks)) == chunks
    packed = pack_chunks([b"x" * 300])
    with pytest.raises(BitstreamError):
        unpack_chunks(packed[:-1])
    with pytest.raises(BitstreamError):
        unpack_chunks(b"\xff" * 10)


def test_missing_file():
    with pytest.raises(BitstreamError, match="no such file"):
        ContainerReader("/nonexistent/x.bin")
