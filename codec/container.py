"""The ncodec container: one versioned file format for every codec.

Layout (little-endian; full description in docs/FORMAT.md)::

    header   magic "NCDC", version, codec tag, picture size, fps, frame count,
             colour tags, flags, codec parameters (JSON), CRC32 of all of it
    section  tag (4 ASCII bytes), payload length (u32), CRC32 of payload, payload
    ...
    "END "   payload = number of sections before it (u32): marks a complete file

The reader trusts nothing: every length and dimension is checked against the hard
limits below (and against the bytes actually left in the file) before anything is
allocated, and every fault raises :class:`BitstreamError`.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple

from .atomic import AtomicPath
from .errors import BitstreamError

MAGIC = b"NCDC"
VERSION = (1, 0)  # (major, minor): a reader accepts any minor of its own major

# Hard limits, checked before any allocation.
MAX_SIDE = 16384  # pixels per side (8K UHD is 7680x4320)
MAX_PIXELS = 16384 * 8640  # per frame
MAX_FRAMES = 10_000_000  # about 46 hours at 60 fps
MAX_FPS = 1000
MAX_PARAMS_BYTES = 65535  # the u16 length field
MAX_SECTION_BYTES = 256 * 1024 * 1024
MAX_SECTIONS = 50_000_000
# Decompression-bomb guard: a few bytes of HNeRV weights or a static x264 clip can declare
# hours of frames, so decoders refuse more decoded pixels (all frames) than this unless
# the caller raises it. 10^12 is about 4.5 hours of 1080p at 30 fps.
DEFAULT_MAX_OUTPUT_PIXELS = 10**12

_FIXED = struct.Struct("<4sBB4sIIIIIBBBBHH")  # up to and including the params length
_SECTION = struct.Struct("<4sII")
_CRC = struct.Struct("<I")
END_TAG = "END "

FLAG_AUDIO = 1  # the file carries copied audio ("AUDM" sections)


@dataclass(frozen=True)
class Colour:
    """Colour description with ITU-T H.273 code points (2 = unspecified).

    ``range`` follows FFmpeg: 0 unspecified, 1 limited ("tv"/MPEG), 2 full ("pc"/JPEG).
    """

    primaries: int = 2
    transfer: int = 2
    matrix: int = 2
    range: int = 0


@dataclass(frozen=True)
class StreamHeader:
    """What a decoder needs before the first section: the picture, its timing and the codec."""

    codec: str  # 4-character codec tag, e.g. "x264"
    width: int
    height: int
    fps: Fraction
    frame_count: int
    colour: Colour = Colour()
    has_audio: bool = False
    params: dict = field(default_factory=dict)  # codec parameters, JSON-serialisable

    def validate(self) -> "StreamHeader":
        """Raise BitstreamError if any field is outside the hard limits."""
        if len(self.codec) != 4 or not self.codec.isascii() or not self.codec.isprintable():
            raise BitstreamError(f"invalid codec tag {self.codec!r}")
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise BitstreamError(
                f"picture size {self.width}x{self.height} outside the limit of 1..{MAX_SIDE} pixels per side"
            )
        if self.width * self.height > MAX_PIXELS:
            raise BitstreamError(f"picture size {self.width}x{self.height} exceeds {MAX_PIXELS} pixels")
        if not (0 < self.fps <= MAX_FPS) or self.fps.numerator > 2**31 or self.fps.denominator > 2**31:
            raise BitstreamError(f"frame rate {self.fps} outside 0..{MAX_FPS} fps")
        if not (0 <= self.frame_count <= MAX_FRAMES):
            raise BitstreamError(f"frame count {self.frame_count} outside 0..{MAX_FRAMES}")
        if self.colour.range not in (0, 1, 2):
            raise BitstreamError(f"colour range {self.colour.range} is not 0 (unspecified), 1 (limited) or 2 (full)")
        if not isinstance(self.params, dict):
            raise BitstreamError("codec parameters must be a JSON object")
        return self

    def check_output_pixels(self, limit: int, frames: int | None = None) -> None:
        """Raise BitstreamError if decoding ``frames`` (default: all) frames exceeds ``limit`` pixels."""
        frames = self.frame_count if frames is None else frames
        total = self.width * self.height * frames
        if total > limit:
            raise BitstreamError(
                f"the bitstream declares {frames} frames of {self.width}x{self.height} ({total:.3g} pixels), "
                f"over the decoded-pixel limit of {limit:.3g}; raise --max-pixels if you trust it"
            )

    def pack(self) -> bytes:
        self.validate()
        params = json.dumps(self.params, separators=(",", ":"), sort_keys=True).encode()
        if len(params) > MAX_PARAMS_BYTES:
            raise BitstreamError(f"codec parameters take {len(params)} bytes, more than {MAX_PARAMS_BYTES}")
        c = self.colour
        fixed = _FIXED.pack(
            MAGIC,
            *VERSION,
            self.codec.encode("ascii"),
            self.width,
            self.height,
            self.fps.numerator,
            self.fps.denominator,
            self.frame_count,
            c.primaries,
            c.transfer,
            c.matrix,
            c.range,
            FLAG_AUDIO if self.has_audio else 0,
            len(params),
        )
        body = fixed + params
        return body + _CRC.pack(zlib.crc32(body))


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a bitstream may hold")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text} is not a number a bitstream may hold")
    return value


def parse_json(data: bytes | str):
    """JSON from a bitstream: strict, so NaN, Infinity and overflowing numbers like 1e999
    (which Python's json accepts and int() then fails on with OverflowError) are a
    ValueError like any other bad value."""
    return json.loads(data, parse_constant=_no_constant, parse_float=_finite)


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise BitstreamError(f"file is truncated: {what} needs {n} bytes, only {len(data)} left")
    return data


def read_header(f: BinaryIO) -> StreamHeader:
    """Read and validate the header at the current position of ``f``."""
    fixed = f.read(_FIXED.size)
    if fixed[:4] != MAGIC:
        raise BitstreamError("not an ncodec bitstream (bad magic bytes)")
    if len(fixed) != _FIXED.size:
        raise BitstreamError("file is truncated inside the header")
    (_, major, minor, tag, width, height, fps_num, fps_den, frames, prim, trc, matrix, rng, flags, params_len) = (
        _FIXED.unpack(fixed)
    )
    if major != VERSION[0]:
        raise BitstreamError(
            f"bitstream format version {major}.{minor} is not supported by this ncodec "
            f"(reads {VERSION[0]}.x); upgrade ncodec"
        )
    params_raw = _read_exact(f, params_len, "the codec parameters")
    (crc,) = _CRC.unpack(_read_exact(f, _CRC.size, "the header checksum"))
    if zlib.crc32(fixed + params_raw) != crc:
        raise BitstreamError("header is corrupted (CRC32 mismatch)")
    try:
        codec = tag.decode("ascii")
        params = parse_json(params_raw.decode("utf-8")) if params_len else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BitstreamError(f"header is corrupted ({e})") from None
    if fps_den == 0:
        raise BitstreamError("header is corrupted (frame rate denominator is zero)")
    header = StreamHeader(
        codec=codec,
        width=width,
        height=height,
        fps=Fraction(fps_num, fps_den),
        frame_count=frames,
        colour=Colour(prim, trc, matrix, rng),
        has_audio=bool(flags & FLAG_AUDIO),
        params=params,
    )
    header.validate()
    if header.frame_count == 0:  # a writer finishes a file only after at least one frame
        raise BitstreamError("the bitstream declares no frames")
    return header


class SectionEntry(NamedTuple):
    tag: str
    offset: int  # of the payload
    length: int
    crc: int


class ContainerReader:
    """Reads an ncodec file lazily: the header up front, sections on demand.

    Opening walks the section headers once (payloads are skipped, not read), so the whole
    file is checked for completeness before a decoder sees any section; nothing is kept
    of that walk but the count, so memory does not grow with the number of sections.
    ``entries`` and ``sections`` walk the file again, checking every section anew.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._f: BinaryIO = open(self.path, "rb")
        except FileNotFoundError:
            raise BitstreamError(f"{self.path}: no such file") from None
        except OSError as e:
            raise BitstreamError(f"{self.path}: cannot read ({e.strerror})") from None
        self.file_size = os.fstat(self._f.fileno()).st_size
        try:
            self.header = read_header(self._f)
            self._first = self._f.tell()
            self.section_count = sum(1 for _ in self.entries())
        except BaseException:
            self._f.close()
            raise

    def entries(self) -> Iterator[SectionEntry]:
        """The sections' headers in file order (not the end marker), each checked against
        the limits and the file's size; the end marker is checked when the walk reaches it."""
        pos, count = self._first, 0
        while True:
            self._f.seek(pos)
            raw = self._f.read(_SECTION.size)
            if len(raw) < _SECTION.size:
                raise BitstreamError("file is truncated (the end marker is missing)")
            tag_raw, length, crc = _SECTION.unpack(raw)
            try:
                tag = tag_raw.decode("ascii")
            except UnicodeDecodeError:
                raise BitstreamError(f"corrupted section header at byte {pos}") from None
            if length > MAX_SECTION_BYTES:
                raise BitstreamError(f"section {tag!r} at byte {pos} claims {length} bytes, over the limit")
            payload_at = pos + _SECTION.size
            if payload_at + length > self.file_size:
                raise BitstreamError(
                    f"file is truncated: section {tag!r} at byte {pos} needs {length} bytes, "
                    f"{self.file_size - payload_at} left"
                )
            entry = SectionEntry(tag, payload_at, length, crc)
            if tag == END_TAG:
                end = self._payload(entry)
                if length != 4 or struct.unpack("<I", end)[0] != count:
                    raise BitstreamError("corrupted end marker (section count mismatch)")
                if payload_at + length != self.file_size:
                    raise BitstreamError("unexpected bytes after the end marker")
                return
            if count == MAX_SECTIONS:
                raise BitstreamError(f"more than {MAX_SECTIONS} sections")
            count += 1
            yield entry
            pos = payload_at + length

    def _payload(self, entry: SectionEntry) -> bytes:
        self._f.seek(entry.offset)
        data = _read_exact(self._f, entry.length, f"section {entry.tag!r}")
        if zlib.crc32(data) != entry.crc:
            raise BitstreamError(f"section {entry.tag!r} at byte {entry.offset} is corrupted (CRC32 mismatch)")
        return data

    def has(self, tag: str) -> bool:
        """Whether the file holds a section ``tag``."""
        return any(entry.tag == tag for entry in self.entries())

    def sections(self, *tags: str) -> Iterator[tuple[str, bytes]]:
        """Yield (tag, payload) in file order, CRC-checked, optionally only the given tags."""
        for entry in self.entries():
            if not tags or entry.tag in tags:
                yield entry.tag, self._payload(entry)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "ContainerReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ContainerWriter:
    """Writes an ncodec file atomically; sections stream to disk as they are produced.

    The frame count is only known at the end, so ``close`` rewrites it into the
    header (same length) before the temporary file is renamed into place.
    """

    def __init__(self, path: str | os.PathLike, header: StreamHeader):
        self.header = header.validate()
        self._out = AtomicPath(path)
        self._f = open(self._out.path, "wb")
        self._f.write(header.pack())
        self.sections_written = 0

    def write(self, tag: str, payload: bytes) -> None:
        if len(tag) != 4 or tag == END_TAG:
            raise ValueError(f"invalid section tag {tag!r}")
        if len(payload) > MAX_SECTION_BYTES:
            raise BitstreamError(f"section {tag!r} of {len(payload)} bytes exceeds the {MAX_SECTION_BYTES} limit")
        self._f.write(_SECTION.pack(tag.encode("ascii"), len(payload), zlib.crc32(payload)))
        self._f.write(payload)
        self.sections_written += 1

    def close(self, frame_count: int | None = None, params: dict | None = None) -> int:
        """Finish the file (end marker, final header) and rename it into place; return its size.

        ``params`` may replace the codec parameters only if they pack to the same length.
        """
        count = struct.pack("<I", self.sections_written)
        self._f.write(_SECTION.pack(END_TAG.encode("ascii"), 4, zlib.crc32(count)) + count)
        final = replace(
            self.header,
            frame_count=self.header.frame_count if frame_count is None else frame_count,
            params=self.header.params if params is None else params,
        )
        packed = final.pack()
        if len(packed) != len(self.header.pack()):
            raise ValueError("the final header must keep the length of the first one")
        self._f.seek(0)
        self._f.write(packed)
        self.header = final
        size = self._f.seek(0, os.SEEK_END)
        self._f.close()
        self._out.commit()
        return size

    def abort(self) -> None:
        """Drop the partial file (called on any error)."""
        self._f.close()
        self._out.discard()

    def __enter__(self) -> "ContainerWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._f.closed:  # leaving without close(): error or not, nothing half-written stays
            self.abort()


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it); at most 5 bytes (35 bits), all bounds-checked."""
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise BitstreamError("corrupted length or count (bad varint)")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return n, pos


def pack_chunks(chunks: list[bytes]) -> bytes:
    """Several byte strings in one payload: each prefixed with its length as a LEB128 varint."""
    return b"".join(encode_varint(len(c)) + c for c in chunks)


def unpack_chunks(payload: bytes) -> list[bytes]:
    """Inverse of :func:`pack_chunks`; every length is checked against the bytes left."""
    chunks, pos, end = [], 0, len(payload)
    while pos < end:
        n, pos = decode_varint(payload, pos)
        if n > end - pos:
            raise BitstreamError(f"chunk of {n} bytes overruns its section ({end - pos} left)")
        chunks.append(payload[pos : pos + n])
        pos += n
    return chunks
