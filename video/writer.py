"""Video writer: H.264/H.265/AV1 in mp4 or mkv, lossless FFV1 in mkv, y4m, PNG.

The output appears under its name only when complete (AtomicPath). Audio packets
of a source are copied in unchanged (AudioCopier). Sizes are kept exactly: odd
widths or heights, which 4:2:0 chroma cannot carry, are written as 4:4:4 rather than
resized.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ncodec.codec.atomic import AtomicPath
from ncodec.codec.classical import ENCODERS, encoder_options
from ncodec.codec.colour import output_colour, rgb_to_frame
from ncodec.codec.container import Colour
from ncodec.codec.errors import UsageError

from .audio import AudioCopier

log = logging.getLogger("ncodec")

_CONTAINERS = {  # extension -> (PyAV format, default codec, allowed codecs)
    ".mp4": ("mp4", "h264", ("h264", "h265", "av1")),
    ".m4v": ("mp4", "h264", ("h264", "h265", "av1")),
    ".mov": ("mov", "h264", ("h264", "h265", "av1")),
    ".mkv": ("matroska", "h264", ("h264", "h265", "av1", "ffv1")),
    ".webm": ("webm", "av1", ("av1",)),
    ".y4m": ("yuv4mpegpipe", "rawvideo", ("rawvideo",)),
}
IMAGE_SUFFIXES = (".png",)
SUPPORTED_SUFFIXES = tuple(_CONTAINERS) + IMAGE_SUFFIXES


def pix_fmt_for(codec: str, width: int, height: int) -> str:
    """4:2:0 where the size allows it, 4:4:4 for odd sizes, RGB for lossless FFV1."""
    if codec == "ffv1":
        return "bgr0"  # FFV1's RGB layout: exact RGB, no matrix involved
    even = width % 2 == 0 and height % 2 == 0
    if codec == "av1" and not even:
        raise UsageError(f"AV1 needs even dimensions, the video is {width}x{height}; write .mp4 with h264 or h265")
    return "yuv420p" if even else "yuv444p"


class VideoWriter:
    """Writes RGB frames to a video or image file, atomically, with optional copied audio.

    ``codec`` None picks the container's default; ``lossless`` selects FFV1 (.mkv only).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: Fraction,
        *,
        codec: str | None = None,
        crf: int | None = None,
        preset: str | None = None,
        lossless: bool = False,
        colour: Colour = Colour(),
        audio_streams=(),
        audio_offset: float = 0.0,
    ):
        self.path = Path(path)
        self.width, self.height = width, height
        self.frames_written = 0
        self._out = AtomicPath(self.path)
        self._container = None
        self.pix_fmt: str | None = None  # of the encoded stream; None for a picture file
        self.audio: AudioCopier | None = None
        suffix = self.path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            if audio_streams:
                log.warning("%s: an image cannot hold audio; the audio is left out", self.path)
            self.codec = "png"
            return
        if suffix not in _CONTAINERS:
            self._out.discard()
            raise UsageError(
                f"cannot write {self.path.name}: unknown output type {suffix or '(none)'}; "
                f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
            )
        fmt, default_codec, allowed = _CONTAINERS[suffix]
        codec = "ffv1" if lossless else (codec or default_codec)
        if codec not in allowed:
            self._out.discard()
            raise UsageError(f"{suffix} files cannot hold {codec}; use one of: {', '.join(allowed)}")
        self.codec = codec
        try:
            self.pix_fmt = pix_fmt_for(codec, width, height)
            self.colour = output_colour(colour, height)
            self._container = av.open(str(self._out.path), mode="w", format=fmt)
            encoder = ENCODERS[codec][0] if codec in ENCODERS else codec
            opts = encoder_options(codec, crf, preset) if codec in ENCODERS else {}
            vs = self._container.add_stream(encoder, rate=fps, options=opts)
            vs.width, vs.height, vs.pix_fmt = width, height, self.pix_fmt
            vs.time_base = Fraction(1) / fps
            cc = vs.codec_context
            if self.pix_fmt.startswith("yuv"):
                cc.colorspace, cc.color_range = self.colour.matrix, self.colour.range
                cc.color_primaries, cc.color_trc = self.colour.primaries, self.colour.transfer
            if codec == "h265" and fmt in ("mp4", "mov"):
                vs.codec_tag = "hvc1"  # what Apple players require for HEVC in mp4
            self._video = vs
            if audio_streams:
                if fmt == "yuv4mpegpipe":
                    log.warning("%s: y4m cannot hold audio; the audio is left out", self.path)
                else:
                    self.audio = AudioCopier(audio_streams, self._container, audio_offset)
        except BaseException:
            self.abort()
            raise

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected {self.height}x{self.width}x3 uint8, got {rgb.shape} {rgb.dtype}")
        if self.codec == "png":
            if self.frames_written:
                raise UsageError(f"{self.path.name} holds one picture but the video has more; write a video file")
            ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            self._out.path.write_bytes(buf.tobytes())
        else:
            frame = rgb_to_frame(rgb, self.pix_fmt, self.colour)
            frame.pts = self.frames_written
            self._container.mux(self._video.encode(frame))
        self.frames_written += 1

    def write_yuv420(self, planes: list[np.ndarray]) -> None:
        """Write one picture given as its 4:2:0 planes [Y, U, V], already in the output's
        matrix and range (``colour``): no conversion, so no colour shift."""
        h, w = self.height, self.width
        if self.pix_fmt != "yuv420p" or [p.shape for p in planes] != [(h, w), (h // 2, w // 2), (h // 2, w // 2)]:
            raise ValueError(f"expected {w}x{h} yuv420p planes for a {self.pix_fmt} output")
        frame = av.VideoFrame.from_ndarray(
            np.concatenate([p.ravel() for p in planes]).reshape(h * 3 // 2, w), format="yuv420p"
        )
        frame.colorspace, frame.color_range = self.colour.matrix, self.colour.range
        frame.pts = self.frames_written
        self._container.mux(self._video.encode(frame))
        self.frames_written += 1

    @property
    def time(self) -> float:
        """Seconds of video written so far (for interleaving audio)."""
        return float(self.frames_written * self._video.time_base) if self._container else 0.0

    def close(self) -> None:
        """Flush the encoder and move the finished file into place."""
        if self._container is not None:
            self._container.mux(self._video.encode(None))
            self._container.close()
        if self.frames_written == 0:
            self._out.discard()
            raise UsageError(f"nothing to write to {self.path.name}: no frames")
        self._out.commit()

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the file is being discarded anyway
                pass
        self._out.discard()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
