"""Classical reference codecs inside the ncodec container: x264, x265 and SVT-AV1.

They are the peers every benchmark measures against and the base layer of the neural
video codecs. The encoders run through PyAV's codec contexts, frames in and packets out
(no files, no muxer: those stay in ``ncodec.video``); packets are stored in "VPKT"
sections, several per section with varint lengths. Pictures are padded to even sizes (4:2:0) by edge
replication and cropped back on decode, so any size round-trips exactly; x265 pictures
are also padded to at least one 64-px coding tree unit per side, because libx265
corrupts the heap on smaller ones (seen as glibc aborts on 48x32 clips), and SVT-AV1
pictures to at least 8 px a side, because it refuses smaller ones.
"""

from __future__ import annotations

import functools
import os
from fractions import Fraction
from typing import Iterable, Iterator

import av
import numpy as np

from .colour import frame_planes, frame_to_rgb, output_colour, rgb_to_frame
from .container import StreamHeader, pack_chunks, unpack_chunks
from .errors import BitstreamError
from .options import PRESET_X26X, Option
from .registry import Codec, Section, register

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder unless told errors only

PACKET_SECTION = "VPKT"
PACKETS_PER_SECTION = 32

# encoder name the user gives (also for output files) -> (FFmpeg encoder, default crf, default preset)
ENCODERS = {
    "h264": ("libx264", 18, "medium"),
    "h265": ("libx265", 20, "medium"),
    "av1": ("libsvtav1", 30, "8"),
    "ffv1": ("ffv1", None, None),
}

# x264's AVX-512 code paths make its MB-tree rate control non-deterministic (measured: the
# same 25 frames encoded 4 times gave 2-4 different streams with the default flags, one
# with these, 15 times out of 15); on a CPU with AVX-512 x264 is held to the AVX2 level,
# which every AVX-512 CPU has, so the same input always gives the same bytes.
X264_AVX2_ASM = "MMX2,SSE,SSE2,SSE3,SSSE3,SSE4.1,SSE4.2,AVX,AVX2,FMA3,LZCNT,BMI1,BMI2"


@functools.cache
def _cpu_has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:  # not Linux: x264 keeps its own detection
        return False


def encoder_options(codec: str, crf: int | None, preset: str | None) -> dict[str, str]:
    """FFmpeg private options for the classical encoders (quiet, deterministic logs and bytes)."""
    _, default_crf, default_preset = ENCODERS[codec]
    opts = {}
    if default_crf is not None:
        opts["crf"] = str(default_crf if crf is None else crf)
        opts["preset"] = str(default_preset if preset is None else preset)
    if codec == "h264" and _cpu_has_avx512():
        opts["x264-params"] = f"asm={X264_AVX2_ASM}"
    if codec == "h265":
        opts["x265-params"] = "log-level=error"
    if codec == "av1":
        opts["svtav1-params"] = "enable-stat-report=0"
    return opts


def pad_to(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pad the right and bottom edges by replication up to width x height."""
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    return np.pad(rgb, ((0, height - h), (0, width - w), (0, 0)), mode="edge")


def ffmpeg_packet(data: bytes) -> av.Packet:
    """A packet whose buffer FFmpeg owns. ``av.Packet(bytes)`` borrows the Python object,
    and a frame-threaded decoder then frees it from its own threads, which needs the GIL:
    a decoder closed while the main thread holds the GIL (after a corrupt packet) deadlocks
    (found by the fuzzer). A copy into FFmpeg's memory has nothing to give back to Python."""
    packet = av.Packet(len(data))
    memoryview(packet)[:] = data
    return packet


def crf_option(encoder: str, default: int | None = None) -> Option:
    """The --crf of an encoder of ENCODERS, with its range (AV1 0..63, x264/x265 0..51)."""
    high = 63 if encoder == "av1" else 51
    return Option(
        "crf",
        int,
        ENCODERS[encoder][1] if default is None else default,
        "constant rate factor: lower is better quality and more bytes",
        low=0,
        high=high,
    )


def preset_option(encoder: str) -> Option:
    """The --preset of an encoder of ENCODERS: x264/x265 ultrafast..placebo, SVT-AV1 0..13."""
    choices = tuple(str(p) for p in range(14)) if encoder == "av1" else PRESET_X26X
    return Option("preset", str, ENCODERS[encoder][2], "encoder speed preset (slower: fewer bytes)", choices=choices)


class ClassicalCodec(Codec):
    def __init__(
        self, name: str, tag: str, encoder: str, decoder: str, description: str, qualities: dict, min_side: int = 2
    ):
        self.name, self.tag, self.description = name, tag, description
        self.min_side = min_side  # smallest coded width/height the encoder handles safely
        self.encoder = encoder  # key of ENCODERS: h264 | h265 | av1
        self.decoder = decoder
        self.quality_levels = {q: {"crf": crf} for q, crf in qualities.items()}
        self.options = (crf_option(encoder), preset_option(encoder))

    def section_tags(self) -> tuple[str, ...]:
        return (PACKET_SECTION,)

    def params(self, width: int, height: int, fps, options: dict) -> dict:
        s = self.settings(options)
        opts = encoder_options(self.encoder, s["crf"], s["preset"])
        return {
            "crf": int(opts["crf"]),
            "preset": opts["preset"],
            "pix_fmt": "yuv420p",
            "coded_size": [self._coded(width), self._coded(height)],
        }

    def _coded(self, side: int) -> int:
        return max(side + side % 2, self.min_side)

    def _geometry(self, header: StreamHeader) -> tuple[int, int]:
        try:
            cw, ch = (int(v) for v in header.params["coded_size"])
        except (KeyError, TypeError, ValueError):
            raise BitstreamError("codec parameters lack a valid coded_size") from None
        if (cw, ch) != (self._coded(header.width), self._coded(header.height)):
            raise BitstreamError(f"coded size {cw}x{ch} does not fit picture {header.width}x{header.height}")
        return cw, ch

    def encode(
        self, frames: Iterable[np.ndarray], header: StreamHeader, runtime: dict | None = None
    ) -> Iterator[Section]:
        cw, ch = self._geometry(header)
        colour = output_colour(header.colour, header.height)
        ctx = av.CodecContext.create(ENCODERS[self.encoder][0], "w")
        ctx.width, ctx.height, ctx.pix_fmt = cw, ch, "yuv420p"
        ctx.time_base, ctx.framerate = Fraction(1) / header.fps, header.fps
        ctx.colorspace, ctx.color_range = colour.matrix, colour.range
        ctx.options = encoder_options(self.encoder, header.params["crf"], header.params["preset"])
        pending: list[bytes] = []
        for i, rgb in enumerate(frames):
            frame = rgb_to_frame(pad_to(rgb, cw, ch), "yuv420p", colour)
            frame.pts = i
            pending += [bytes(p) for p in ctx.encode(frame)]
            if len(pending) >= PACKETS_PER_SECTION:
                yield PACKET_SECTION, pack_chunks(pending)
                pending = []
        pending += [bytes(p) for p in ctx.encode(None)]
        if pending:
            yield PACKET_SECTION, pack_chunks(pending)

    def decode(self, sections: Iterable[Section], header: StreamHeader) -> Iterator[np.ndarray]:
        colour = output_colour(header.colour, header.height)
        for f in self.decode_frames(sections, header):
            yield frame_to_rgb(f, colour)[: header.height, : header.width]

    def decode_planes(self, sections: Iterable[Section], header: StreamHeader) -> Iterator[tuple[np.ndarray, ...]]:
        """The decoded Y, Cb, Cr planes at the coded (even) size, as the encoder coded them."""
        for f in self.decode_frames(sections, header):
            yield frame_planes(f)

    def decode_frames(self, sections: Iterable[Section], header: StreamHeader) -> Iterator[av.VideoFrame]:
        """The decoder's 4:2:0 frames (yuvj420p where the stream is full range), each checked
        against the coded size."""
        cw, ch = self._geometry(header)
        ctx = av.CodecContext.create(self.decoder, "r")
        ctx.thread_type = "AUTO"

        def checked(frames: list[av.VideoFrame]) -> Iterator[av.VideoFrame]:
            for f in frames:
                if (f.width, f.height) != (cw, ch) or f.format.name not in ("yuv420p", "yuvj420p"):
                    raise BitstreamError(
                        f"decoded picture is {f.width}x{f.height} {f.format.name}, header says {cw}x{ch}"
                    )
                yield f

        try:
            for _, payload in sections:
                for data in unpack_chunks(payload):
                    yield from checked(ctx.decode(ffmpeg_packet(data)))
            yield from checked(ctx.decode(None))
        except av.error.FFmpegError as e:
            raise BitstreamError(f"{self.name} stream is corrupted ({e.strerror or e})") from None


X264 = register(
    ClassicalCodec(
        "x264",
        "x264",
        "h264",
        "h264",
        "H.264/AVC by x264 (reference)",
        {"low": 32, "medium": 26, "high": 21, "best": 16},
    )
)
X265 = register(
    ClassicalCodec(
        "x265",
        "x265",
        "h265",
        "hevc",
        "H.265/HEVC by x265 (reference)",
        {"low": 34, "medium": 28, "high": 23, "best": 18},
        min_side=64,
    )
)
AV1 = register(
    ClassicalCodec(
        "av1",
        "av1 ",
        "av1",
        "libdav1d",
        "AV1 by SVT-AV1, decoded by dav1d (reference)",
        {"low": 45, "medium": 36, "high": 28, "best": 20},
        min_side=8,  # SVT-AV1 refuses pictures under 4 px a side ("Source Width must be at least 4")
    )
)
