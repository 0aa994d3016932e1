"""`ncodec upscale`: images and videos, file to file, with the frame-level Upscaler.

Videos stream one frame at a time (audio packets copied into the output as they are
demuxed); images of any size are tiled by the Upscaler. An 8-bit 4:2:0 video (nearly
every video) is upscaled in its own planes: luma through the network, chroma bicubically,
written with the source's matrix. Anything else is read as 8-bit RGB: a 10-bit or 4:4:4
video is upscaled from its 8-bit RGB rendering and written as an 8-bit 4:2:0 (4:4:4 for
odd sizes) video, which the README states.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import av
import cv2

from ncodec.codec.atomic import check_output_path
from ncodec.codec.colour import FULL, LIMITED, effective_matrix
from ncodec.codec.container import Colour
from ncodec.codec.errors import InputError, UsageError
from ncodec.models.nets.espcn import SCALES

from .images import IMAGE_SUFFIXES, check_alpha, check_image_size, read_image, write_image
from .pipeline import progress_bar
from .reader import MediaReader
from .writer import SUPPORTED_SUFFIXES, VideoWriter


@dataclass
class UpscaleResult:
    path: str
    frames: int
    width: int
    height: int
    seconds: float

    def summary(self) -> str:
        fps = self.frames / max(self.seconds, 1e-9)
        return (
            f"{self.path}: {self.frames} frame(s) at {self.width}x{self.height} in {self.seconds:.1f} s ({fps:.1f} fps)"
        )


def _check_scale(scale: int) -> None:
    if scale not in SCALES:
        raise UsageError(f"--scale must be one of {', '.join(map(str, SCALES))}, not {scale}")


def upscale_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    scale: int,
    *,
    precision: str = "auto",
    device: str = "cpu",
    tile: int = 720,
    video_codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    lossless: bool = False,
    progress: bool = False,
) -> UpscaleResult:
    """Upscale an image or a video file by ``scale`` into ``dst`` (format from its extension)."""
    from ncodec.models.upscaler import Upscaler

    _check_scale(scale)
    src, dst = Path(src), Path(dst)
    check_output_path(dst, src)
    out_suffix = dst.suffix.lower()
    if out_suffix not in IMAGE_SUFFIXES and out_suffix not in SUPPORTED_SUFFIXES:
        raise UsageError(
            f"cannot write {dst.name}: use an image ({', '.join(sorted(IMAGE_SUFFIXES))}) "
            f"or video ({', '.join(SUPPORTED_SUFFIXES)}) extension"
        )
    is_image = src.suffix.lower() in IMAGE_SUFFIXES
    try:  # a video's many same-size frames repay compiling the network; one image does not
        upscaler = Upscaler(scale, device=device, precision=precision, tile=tile, compile=not is_image)
    except FileNotFoundError as e:
        raise InputError(str(e)) from None
    start = time.perf_counter()
    if is_image:
        if out_suffix not in IMAGE_SUFFIXES:
            raise UsageError(f"{src.name} is an image; write the result to an image file, not {out_suffix}")
        return _upscale_image(upscaler, src, dst, start)
    with MediaReader(src) as reader:
        info = reader.info
        w, h = info.width * scale, info.height * scale
        if out_suffix in IMAGE_SUFFIXES:
            if info.frame_count > 1:
                raise UsageError(f"{src.name} is a video; write the result to a video file, not {out_suffix}")
        # A 4:2:0 source keeps its planes and its matrix: no RGB round trip (which would cost
        # two colour conversions at the output size), tagged with the source's matrix.
        planar = (
            info.pix_fmt == "yuv420p" and info.colour.range != FULL and info.width % 2 == 0 and info.height % 2 == 0
        )
        colour = info.colour
        if planar:
            colour = Colour(colour.primaries, colour.transfer, effective_matrix(colour, info.height), LIMITED)
        with VideoWriter(
            dst,
            w,
            h,
            info.fps,
            codec=video_codec,
            crf=crf,
            preset=preset,
            lossless=lossless,
            colour=colour,
            audio_streams=reader.audio_streams,
            audio_offset=info.start_time,
        ) as writer:
            planar = planar and writer.pix_fmt == "yuv420p"
            pictures = reader.yuv_frames if planar else reader.frames
            upscale = upscaler.upscale_yuv420 if planar else upscaler.upscale
            write = writer.write_yuv420 if planar else writer.write
            with progress_bar(info.frame_count, f"upscale x{scale}", progress) as bar:

                def write_item(item) -> None:
                    if isinstance(item, av.Packet):
                        writer.audio.mux(item)
                    else:
                        write(item)
                        bar.update(1)

                with _ConsumedInThread(write_item) as encode:  # encoding overlaps the network
                    for item in _overlapped(pictures, upscale, with_audio=writer.audio is not None):
                        encode.put(item)
            frames = writer.frames_written
    return UpscaleResult(str(dst), frames, w, h, time.perf_counter() - start)


_DONE = object()


def _overlapped(pictures: Callable[..., Iterator], upscale: Callable, with_audio: bool, depth: int = 4) -> Iterator:
    """Upscaled pictures and audio packets, in demux order, with decoding (``pictures``,
    a reader's frame iterator) running in a thread of its own so that it overlaps the
    network (PyAV and torch release the GIL). Everything is consumed on the caller's
    thread, so muxing stays single-threaded."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            for picture in pictures(audio_sink=items.put if with_audio else None):
                if stop.is_set():
                    return
                items.put(picture)
        except BaseException as e:  # handed to the consumer, raised there
            failure.append(e)
        finally:
            items.put(_DONE)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not _DONE:
            yield item if isinstance(item, av.Packet) else upscale(item)
        if failure:
            raise failure[0]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(0.01)


class _ConsumedInThread:
    """Hands items, in order, to ``consume`` on a thread of its own (here: encoding and
    muxing, which then all happen on that one thread). An error there is raised on the
    caller's next ``put`` or at exit; leaving the block waits for the thread to finish."""

    def __init__(self, consume: Callable, depth: int = 4):
        self._items: queue.Queue = queue.Queue(maxsize=depth)
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(consume,), daemon=True)

    def _run(self, consume: Callable) -> None:
        while (item := self._items.get()) is not _DONE:
            if not self._failure:  # after a failure, only drain
                try:
                    consume(item)
                except BaseException as e:  # raised on the caller's thread
                    self._failure.append(e)

    def put(self, item) -> None:
        while True:
            if self._failure:
                raise self._failure[0]
            try:
                return self._items.put(item, timeout=0.1)
            except queue.Full:
                continue

    def __enter__(self) -> "_ConsumedInThread":
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._failure.append(exc)  # stop consuming; what is queued is only drained
        while self._thread.is_alive():
            try:
                self._items.put(_DONE, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()
        if exc_type is None and self._failure:
            raise self._failure[0]


def _upscale_image(upscaler, src: Path, dst: Path, start: float) -> UpscaleResult:
    rgb, alpha, gray = read_image(src)
    r = upscaler.scale
    h, w = rgb.shape[0] * r, rgb.shape[1] * r
    check_image_size(dst, w, h)
    if alpha is not None:
        check_alpha(dst, src)
        alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_CUBIC)
    write_image(dst, upscaler.upscale(rgb), alpha=alpha, gray=gray)
    return UpscaleResult(str(dst), 1, w, h, time.perf_counter() - start)
