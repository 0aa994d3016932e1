"""The container: round trip, and every kind of damage ends in BitstreamError."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from fractions import Fraction

import pytest

from ncodec.codec import container
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


def empty_sections(path, count: int):
    """A complete file of ``count`` empty sections, 12 bytes each: the most sections a
    file of its size can declare."""
    one, end = struct.pack("<4sII", b"VPKT", 0, zlib.crc32(b"")), struct.pack("<I", count)
    with open(path, "wb") as f:
        f.write(StreamHeader(**{**HEADER.__dict__, "frame_count": 1}).pack())
        for done in range(0, count, 65536):
            f.write(one * min(65536, count - done))
        f.write(struct.pack("<4sII", b"END ", 4, zlib.crc32(end)) + end)
    return path


def test_opening_takes_the_same_memory_for_a_thousand_sections_as_for_200000(tmp_path):
    peaks = []
    for count in (1000, 200_000):
        path = empty_sections(tmp_path / f"{count}.bin", count)
        tracemalloc.start()
        with ContainerReader(path) as r:
            assert r.section_count == count
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] + 50_000, peaks  # a list of entries would be ~200 bytes a section


def test_the_section_limit_admits_exactly_max_sections(tmp_path, monkeypatch):
    monkeypatch.setattr(container, "MAX_SECTIONS", 5)
    with ContainerReader(empty_sections(tmp_path / "five.bin", 5)) as r:
        assert len(list(r.sections())) == 5
    with pytest.raises(BitstreamError, match="more than 5 sections"):
        ContainerReader(empty_sections(tmp_path / "six.bin", 6))
