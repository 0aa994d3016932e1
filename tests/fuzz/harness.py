"""What the fuzzers share: valid seed bitstreams of every codec, a CRC fix-up that lets
mutations reach the codecs' own parsers, and the one function that decodes a file the
way a user would.

The contract under test: for any bytes, decoding ends in a correct decode or a
:class:`BitstreamError` — never another exception, never a hang, never unbounded memory.
"""

from __future__ import annotations

import ctypes
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np

from ncodec.codec import registry
from ncodec.codec.container import _FIXED, _SECTION, END_TAG, MAGIC, MAX_PARAMS_BYTES, ContainerReader
from ncodec.codec.errors import BitstreamError
from ncodec.video import decode_file, describe, encode_file

# Small enough that a fuzzer decodes hundreds of inputs a minute on two cores.
SEED_OPTIONS = {
    "x264": {"crf": 30},
    "x265": {"crf": 30},
    "av1": {"crf": 50},
    "hnerv": {"size": 10_000, "epochs": 2, "segment_frames": 2},
    "stdo": {"steps": 2, "segment_frames": 2, "crf": 50},
    "mlic": {"level": 0},
}
# Seeds of a codec's other designs: seed name -> (codec, options)
VARIANTS = {
    "stdo-espcn": (
        "stdo",
        {"network": "espcn", "base": "x264", "scale": 2, "steps": 2, "segment_frames": 2, "chunks": 2, "patch": 16},
    ),
    "stdo-x2": ("stdo", {"scale": 2, "steps": 2, "segment_frames": 2, "crf": 50}),
}
# Decoding must not need more than this for any input (atheris -rss_limit_mb; torch and
# PyAV themselves take about 600 MB).
RSS_LIMIT_MB = 3072
# Decoded-pixel cap handed to the decoders: the seeds are tiny, so a hostile header that
# claims more is refused as a decompression bomb would be.
MAX_PIXELS = 64 * 64 * 64


def _clip(path: Path, width: int, height: int, frames: int = 4) -> Path:
    """An H.264 clip with AAC audio (real PyAV encode)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from helpers import make_video

    return make_video(path, width, height, frames=frames, audio="aac")


def _photo(path: Path, width: int, height: int) -> Path:
    """An RGBA PNG (alpha exercises the ALPH section)."""
    y, x = np.mgrid[0:height, 0:width]
    bgra = np.stack([x * 6 % 256, y * 10 % 256, (x + y) * 4 % 256, 255 - x % 128], -1).astype(np.uint8)
    cv2.imwrite(str(path), bgra)
    return path


_LIBC = ctypes.CDLL("libc.so.6")


def seed_names() -> list[str]:
    """The names make_seeds gives its bitstreams: every codec, then every other design."""
    return registry.names() + list(VARIANTS)


def make_seeds(folder: Path, codecs: list[str] | None = None, size: tuple[int, int] = (48, 32)) -> dict[str, Path]:
    """One valid bitstream per codec (and per other design of a codec, VARIANTS) of a
    ``size`` clip (an RGBA photo for the image codec), written under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    clip = _clip(folder / "clip.mp4", *size)
    photo = _photo(folder / "photo.png", size[0] - 8, size[1] - 8)
    seeds = {}
    for name in codecs or seed_names():
        codec, options = VARIANTS.get(name, (name, SEED_OPTIONS.get(name, {})))
        out = folder / f"{name}.bin"
        encode_file(photo if codec == "mlic" else clip, out, codec, options=options)
        seeds[name] = out
    return seeds


def fix_crcs(data: bytes) -> bytes:
    """Recompute every CRC32 that the structure of ``data`` still lets one find (header,
    then each section in turn, as far as the lengths stay inside the data), so that a
    mutation gets past the checksums into the parsers behind them."""
    out = bytearray(data)
    if len(out) < _FIXED.size or out[:4] != MAGIC:
        return bytes(out)
    params_len = struct.unpack_from("<H", out, _FIXED.size - 2)[0]
    crc_at = _FIXED.size + min(params_len, MAX_PARAMS_BYTES)
    if crc_at + 4 > len(out):
        return bytes(out)
    struct.pack_into("<I", out, crc_at, zlib.crc32(out[:crc_at]))
    pos = crc_at + 4
    while pos + _SECTION.size <= len(out):
        tag, length, _ = _SECTION.unpack_from(out, pos)
        payload = pos + _SECTION.size
        if payload + length > len(out):
            break
        struct.pack_into("<I", out, pos + 8, zlib.crc32(out[payload : payload + length]))
        if tag == END_TAG.encode():
            break
        pos = payload + length
    return bytes(out)


def decode_everything(path: Path, scratch: Path) -> None:
    """Describe the file and decode all of it to the output a user would choose (an image
    for a one-picture bitstream, a lossless video with its audio otherwise). Raises
    BitstreamError for a bad file; anything else escaping is a bug."""
    with ContainerReader(path) as bits:
        one_picture = bits.header.frame_count == 1
    describe(path)
    out = scratch / ("out.png" if one_picture else "out.mkv")
    out.unlink(missing_ok=True)
    decode_file(path, out, lossless=not one_picture, max_pixels=MAX_PIXELS)


def check_bytes(data: bytes) -> str:
    """Decode ``data`` as a file; return "ok" or "rejected" (a BitstreamError). Any other
    exception propagates: that is a finding."""
    try:
        with tempfile.TemporaryDirectory(prefix="ncodec-fuzz-") as tmp:
            path = Path(tmp) / "input.bin"
            path.write_bytes(data)
            try:
                decode_everything(path, Path(tmp))
            except BitstreamError:
                return "rejected"
        return "ok"
    finally:
        # give freed heap back to the system, so that the fuzzer's RSS limit measures the
        # memory decoders hold, not glibc's high-water mark after a large valid decode
        _LIBC.malloc_trim(0)
