"""Streaming media reader: anything PyAV opens, one frame in memory at a time.

Frame-rate policy (docs/FORMAT.md, "Timing"): ncodec works at a constant frame
rate, the stream's average rate. Variable-frame-rate input is resampled to it by
presentation time, repeating a frame to fill a gap and dropping one that arrives
before its slot (FFmpeg's ``-fps_mode cfr``), so duration and audio sync survive.
Frames are delivered upright: a display-matrix rotation is applied, as players do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

from ncodec.codec.colour import effective_matrix, frame_colour, frame_to_rgb
from ncodec.codec.container import Colour
from ncodec.codec.errors import InputError

AudioSink = Callable[[av.Packet], None]
_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif", "jpegls_pipe"}
_DEFAULT_FPS = Fraction(25)


@dataclass(frozen=True)
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration: float | None


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds; sizes are display sizes (after rotation)."""

    path: str
    format: str  # container format as PyAV names it
    codec: str  # video codec
    width: int
    height: int
    fps: Fraction
    frame_count: int
    frame_count_exact: bool  # False when estimated from the duration
    duration: float | None  # seconds
    start_time: float  # seconds; output video is re-timed to start at 0, audio shifted with it
    pix_fmt: str
    colour: Colour
    rotation: int  # degrees the stored picture is turned to display upright (0, 90, 180, 270)
    is_image: bool
    audio: tuple[AudioInfo, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        d["colour"] = dict(self.colour.__dict__) | {"effective_matrix": effective_matrix(self.colour, self.height)}
        d["audio"] = [dict(a.__dict__) for a in self.audio]
        return d


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a media file")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise InputError(f"{path}: not a media file ncodec can read ({e.strerror or e})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None


def _rotation(frame: av.VideoFrame) -> int:
    """Clockwise degrees to turn the stored picture to display it upright."""
    return int(round(-frame.rotation)) % 360 // 90 * 90


def _upright(img: np.ndarray, rotation: int) -> np.ndarray:
    return img if rotation == 0 else np.ascontiguousarray(np.rot90(img, k=-rotation // 90))


class MediaReader:
    """Reads one media file's video as a stream of frames, passing its audio packets on.

    >>> with MediaReader("in.mp4") as r:
    ...     for rgb in r.frames():  # HxWx3 uint8, constant frame rate, upright
    ...         ...
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._container = _open(self.path)
        self._consumed = False  # frames() was iterated: a second pass reopens the file
        try:
            self.info = self._probe()
        except BaseException:
            self._container.close()
            raise

    def _probe(self) -> MediaInfo:
        c = self._container
        if not c.streams.video:
            raise InputError(f"{self.path}: has no video stream")
        vs = c.streams.video[0]
        first = self._first_frame()
        is_image = c.format.name in _IMAGE_FORMATS or (vs.codec_context.name in ("png", "mjpeg") and vs.frames <= 1)
        fps = _DEFAULT_FPS
        for rate in (vs.average_rate, vs.guessed_rate, vs.base_rate):
            if rate and 0 < rate <= 1000:
                fps = Fraction(rate)
                break
        duration = None
        if vs.duration and vs.time_base:
            duration = float(vs.duration * vs.time_base)
        elif c.duration:
            duration = c.duration / av.time_base
        if is_image:
            frame_count, exact = 1, True
        elif vs.frames > 0:
            frame_count, exact = vs.frames, True
        elif duration:
            frame_count, exact = max(1, round(duration * fps)), False
        else:
            frame_count, exact = self._count_packets(), True
        start_time = float(vs.start_time * vs.time_base) if vs.start_time is not None and vs.time_base else 0.0
        rotation = _rotation(first)
        w, h = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        audio = tuple(
            AudioInfo(
                index=a.index,
                codec=a.codec_context.name,
                sample_rate=a.codec_context.sample_rate or 0,
                channels=a.codec_context.channels or 0,
                layout=a.codec_context.layout.name,
                duration=float(a.duration * a.time_base) if a.duration and a.time_base else None,
            )
            for a in c.streams.audio
        )
        return MediaInfo(
            path=str(self.path),
            format=c.format.name,
            codec=vs.codec_context.name,
            width=w,
            height=h,
            fps=fps,
            frame_count=frame_count,
            frame_count_exact=exact,
            duration=duration,
            start_time=start_time,
            pix_fmt=first.format.name,
            colour=frame_colour(first),
            rotation=rotation,
            is_image=is_image,
            audio=audio,
        )

    def _first_frame(self) -> av.VideoFrame:
        """Decode one frame from a separate handle (rotation and colour live on frames)."""
        try:
            with _open(self.path) as c:
                for frame in c.decode(c.streams.video[0]):
                    return frame
        except av.error.FFmpegError as e:
            raise InputError(f"{self.path}: video stream cannot be decoded ({e.strerror or e})") from None
        raise InputError(f"{self.path}: no video frame could be decoded (truncated or corrupt file?)")

    def _count_packets(self) -> int:
        """Exact frame count by demuxing (no decoding), for streams that do not say, e.g. raw .h264."""
        with av.open(str(self.path)) as c:
            return sum(1 for p in c.demux(c.streams.video[0]) if p.size)

    @property
    def audio_streams(self) -> list:
        """The PyAV audio streams (templates for copying them into an output)."""
        return list(self._container.streams.audio)

    def _frames_cfr(self, audio_sink: AudioSink | None) -> Iterator[av.VideoFrame]:
        """Decoded frames at the constant rate ``info.fps`` (see the module's policy)."""
        if self._consumed:
            self._container.close()
            self._container = _open(self.path)
        self._consumed = True
        c = self._container
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        streams = [vs] + (list(c.streams.audio) if audio_sink else [])
        fps, slot, last, t0 = self.info.fps, 0, None, None
        try:
            for packet in c.demux(streams):
                if packet.stream.type == "audio":
                    if packet.size:
                        audio_sink(packet)
                    continue
                for frame in packet.decode():
                    if frame.pts is None or frame.time_base is None or self.info.is_image:
                        yield frame
                        slot += 1
                        continue
                    t = Fraction(frame.pts) * frame.time_base
                    t0 = t if t0 is None else t0
                    target = round((t - t0) * fps)
                    if target < slot:
                        continue  # arrived before its slot: dropped
                    while last is not None and slot < target:
                        yield last  # a gap: repeat the previous frame
                        slot += 1
                    yield frame
                    slot += 1
                    last = frame
        except av.error.FFmpegError as e:
            raise InputError(f"{self.path}: decoding failed at frame {slot} ({e.strerror or e})") from None

    def frames(self, audio_sink: AudioSink | None = None) -> Iterator[np.ndarray]:
        """HxWx3 uint8 RGB frames, upright, at ``info.fps``. Audio packets go to ``audio_sink``."""
        colour = self.info.colour
        for frame in self._frames_cfr(audio_sink):
            yield _upright(frame_to_rgb(frame, colour), self.info.rotation)

    def yuv_frames(self, pix_fmt: str = "yuv420p", audio_sink: AudioSink | None = None) -> Iterator[list[np.ndarray]]:
        """Frames as a list of uint8 planes (Y, U, V) in ``pix_fmt``, for work done in YUV."""
        for frame in self._frames_cfr(audio_sink):
            if frame.format.name != pix_fmt:
                frame = frame.reformat(format=pix_fmt)
            yield [
                _upright(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width], self.info.rotation)
                for p in frame.planes
            ]

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "MediaReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe(path: str | os.PathLike) -> MediaInfo:
    """Metadata of a media file without reading its frames."""
    with MediaReader(path) as r:
        return r.info
