"""File-to-file pipelines: encode a media file to an ncodec bitstream, decode it back,
describe either kind of file, and compare two videos.

Everything streams: one frame at a time from the reader, sections straight to disk,
audio packets into a scratch Matroska file and from there into the bitstream.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np
from tqdm import tqdm

from ncodec.codec import registry
from ncodec.codec.atomic import check_output_path
from ncodec.codec.container import DEFAULT_MAX_OUTPUT_PIXELS, MAGIC, ContainerReader, ContainerWriter, StreamHeader
from ncodec.codec.errors import BitstreamError, InputError, UsageError

from . import metrics
from .audio import AUDIO_SECTION, AudioCopier, check_audio_file, packet_time, packets_in_time_order, split_file
from .images import (
    ALPHA_SECTION,
    GRAY_SECTION,
    IMAGE_SUFFIXES,
    check_alpha,
    check_image_size,
    pack_alpha,
    read_image,
    unpack_alpha,
    write_image,
)
from .parallel import Runner
from .reader import MediaReader
from .writer import VideoWriter


@dataclass
class EncodeResult:
    path: str
    codec: str
    bytes: int
    frames: int
    width: int
    height: int
    fps: float
    seconds: float
    kbps: float
    bpp: float
    audio_bytes: int

    def summary(self) -> str:
        return (
            f"{self.path}: {self.bytes:,} bytes ({self.codec}, {self.frames} frames {self.width}x{self.height}, "
            f"{self.kbps:.1f} kbit/s, {self.bpp:.4f} bpp); encoded in {self.seconds:.1f} s "
            f"({self.frames / max(self.seconds, 1e-9):.1f} fps)"
        )


@dataclass
class DecodeResult:
    path: str
    frames: int
    seconds: float
    quality: dict | None = None  # compare() against a reference, when asked
    base: dict | None = None  # the same for the codec's classical base layer alone, if it has one

    def summary(self) -> str:
        text = f"{self.path}: {self.frames} frames decoded in {self.seconds:.1f} s ({self.frames / max(self.seconds, 1e-9):.1f} fps)"
        if self.quality:
            text += f"; vs reference: {_quality_text(self.quality)}"
        if self.base:
            b = self.base
            text += (
                f"\n  its {b['codec']} base layer alone ({b['bytes']:,} of the file's {b['file_bytes']:,} bytes): "
                f"{_quality_text(b)}"
            )
        return text


def _quality_text(q: dict) -> str:
    text = f"PSNR {q['psnr']:.2f} dB, PSNR-Y {q['psnr_y']:.2f} dB"
    return text + (f", MS-SSIM {q['ms_ssim']:.4f}" if q.get("ms_ssim") is not None else "")


def progress_bar(total: int | None, desc: str, enabled: bool, unit: str = "frame") -> tqdm:
    """A stderr progress bar (rate and ETA) that appears only for work longer than a second
    and is cleared when done, so an error or the final summary stands alone."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        delay=1.0,
        leave=False,
    )


def _counted(frames: Iterable[np.ndarray], bar: tqdm, counter: list[int]) -> Iterator[np.ndarray]:
    for frame in frames:
        counter[0] += 1
        bar.update(1)
        yield frame


def segmented_codecs() -> list[str]:
    """The codecs whose segments can run in parallel (--workers, --ray)."""
    return [n for n in registry.names() if isinstance(registry.get(n), registry.SegmentedCodec)]


DEFAULT_VIDEO_CODEC = "stdo"  # the better neural video codec on the README's budget (docs/BENCHMARKS.md)
DEFAULT_IMAGE_CODEC = "mlic"


def is_image(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def default_codec(src: str | os.PathLike) -> str:
    """The codec `ncodec encode` uses when none is named: by the input's kind."""
    return DEFAULT_IMAGE_CODEC if is_image(src) else DEFAULT_VIDEO_CODEC


def encode_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    codec: str = "x264",
    *,
    quality: str | None = None,
    options: dict | None = None,
    device: str = "cpu",
    runner: Runner | None = None,
    progress: bool = False,
) -> EncodeResult:
    """Encode ``src`` (any video or image PyAV reads) into the ncodec bitstream ``dst``.
    ``device`` is where a neural codec runs ("cpu" or "cuda"). ``runner`` (from
    :func:`ncodec.video.parallel.make_runner`, entered) spreads the segments of HNeRV and
    STDO over worker processes or a Ray cluster; the bytes equal a single-process encode
    with the runner's threads per task."""
    the_codec = registry.get(codec)
    options = options or {}
    # every option is checked before any file is opened
    runtime = {"device": device, "progress": progress, "settings": the_codec.encoder_settings(options, quality)}
    if runner is not None:
        if not isinstance(the_codec, registry.SegmentedCodec):
            raise UsageError(
                f"--workers and --ray spread the segments of {', '.join(segmented_codecs())}; "
                f"{codec} does not encode in segments"
            )
        runtime.update(map=runner, progress=progress and type(runner) is Runner)  # no bars from workers
    start = time.perf_counter()
    with MediaReader(src) as reader, tempfile.TemporaryDirectory(prefix="ncodec-") as scratch:
        check_output_path(dst, src)
        info = reader.info
        params = the_codec.params(info.width, info.height, info.fps, the_codec.settings(options, quality))
        header = StreamHeader(
            codec=the_codec.tag,
            width=info.width,
            height=info.height,
            fps=info.fps,
            frame_count=info.frame_count,
            colour=info.colour,
            has_audio=bool(info.audio),
            params=params,
        )
        audio_path = Path(scratch) / "audio.mka"
        # bitexact: no random segment UID or muxing date, so the same input gives the same bytes
        audio_out = (
            av.open(str(audio_path), "w", format="matroska", options={"fflags": "+bitexact"}) if info.audio else None
        )
        sink = AudioCopier(reader.audio_streams, audio_out, info.start_time).mux if audio_out else None
        count = [0]
        with ContainerWriter(dst, header) as writer, progress_bar(info.frame_count, f"encode {codec}", progress) as bar:
            frames = _counted(reader.frames(audio_sink=sink), bar, count)
            for tag, payload in the_codec.encode(frames, header, runtime):
                writer.write(tag, payload)
            audio_bytes = 0
            if is_image(src):
                _, alpha, gray = read_image(src)
                if alpha is not None:
                    writer.write(ALPHA_SECTION, pack_alpha(alpha))
                if gray:
                    writer.write(GRAY_SECTION, b"")
            if audio_out:
                audio_out.close()
                for chunk in split_file(audio_path):
                    writer.write(AUDIO_SECTION, chunk)
                    audio_bytes += len(chunk)
            if count[0] == 0:
                raise InputError(f"{src}: no video frame could be decoded")
            size = writer.close(frame_count=count[0])
    seconds = time.perf_counter() - start
    return EncodeResult(
        path=str(dst),
        codec=the_codec.name,
        bytes=size,
        frames=count[0],
        width=info.width,
        height=info.height,
        fps=float(info.fps),
        seconds=seconds,
        kbps=metrics.kbps(size, count[0], info.fps),
        bpp=metrics.bpp(size, info.width, info.height, count[0]),
        audio_bytes=audio_bytes,
    )


def decode_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    video_codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    lossless: bool = False,
    reference: str | os.PathLike | None = None,
    max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
    progress: bool = False,
) -> DecodeResult:
    """Decode the ncodec bitstream ``src`` to a video or image file ``dst`` (audio copied back in).

    ``video_codec``, ``crf``, ``preset`` and ``lossless`` choose how ``dst`` itself is encoded.

    With ``reference`` the decoded frames are measured against it as they come out of
    the codec (PSNR, PSNR-Y, MS-SSIM), before the output file's own encoding adds loss.
    Bitstreams that declare more than ``max_pixels`` decoded pixels are refused first.
    """
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        bits = stack.enter_context(ContainerReader(src))
        header = bits.header
        header.check_output_pixels(max_pixels)
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="ncodec-"))
        meter = metrics.QualityMeter() if reference is not None else None
        ref_frames = iter(())
        if reference is not None:
            ref = stack.enter_context(MediaReader(reference))
            _same_size(ref, header.width, header.height)
            ref_frames = ref.frames()
        the_codec = registry.by_tag(header.codec)
        check_output_path(dst, src)
        if is_image(dst):
            rgb = _decode_picture(bits, the_codec, dst)
            if meter is not None and (ref_rgb := next(ref_frames, None)) is not None:
                meter.add(ref_rgb, rgb)
            return DecodeResult(
                path=str(dst), frames=1, seconds=time.perf_counter() - start, quality=meter.result() if meter else None
            )
        audio_in = None
        if bits.has(AUDIO_SECTION):
            audio_path = Path(scratch) / "audio.mka"
            with open(audio_path, "wb") as f:
                for _, chunk in bits.sections(AUDIO_SECTION):
                    f.write(chunk)
            check_audio_file(audio_path, Path(scratch) / "audio-check.mka")
            audio_in = stack.enter_context(av.open(str(audio_path)))
        writer = VideoWriter(
            dst,
            header.width,
            header.height,
            header.fps,
            codec=video_codec,
            crf=crf,
            preset=preset,
            lossless=lossless,
            colour=header.colour,
            audio_streams=audio_in.streams.audio if audio_in else (),
        )
        with writer, progress_bar(header.frame_count, f"decode {the_codec.name}", progress) as bar:
            audio = packets_in_time_order(audio_in) if writer.audio else iter(())
            pending = next(audio, None)
            for rgb in the_codec.decode(bits.sections(*the_codec.section_tags()), header):
                if writer.frames_written >= header.frame_count:
                    raise BitstreamError(f"more frames than the {header.frame_count} the header declares")
                writer.write(rgb)
                bar.update(1)
                if meter is not None and (ref_rgb := next(ref_frames, None)) is not None:
                    meter.add(ref_rgb, rgb)
                while pending is not None and packet_time(pending) < writer.time:  # keep audio interleaved
                    writer.audio.mux(pending)
                    pending = next(audio, None)
            if writer.frames_written != header.frame_count:
                raise BitstreamError(
                    f"bitstream holds {writer.frames_written} frames, its header declares {header.frame_count}"
                )
            while pending is not None:
                writer.audio.mux(pending)
                pending = next(audio, None)
        seconds = time.perf_counter() - start
        base = _base_layer_quality(bits, the_codec, reference) if reference is not None else None
    return DecodeResult(
        path=str(dst),
        frames=writer.frames_written,
        seconds=seconds,
        quality=meter.result() if meter else None,
        base=base,
    )


def _base_layer_quality(bits: ContainerReader, codec: registry.Codec, reference) -> dict | None:
    """The quality of a layered codec's classical base layer alone against ``reference``,
    and its bytes: what that classical codec gives at nearly the file's size."""
    layer = codec.base_layer(bits.sections(*codec.section_tags()), bits.header)
    if layer is None:
        return None
    name, frames = layer
    meter, size = metrics.QualityMeter(), 0
    with MediaReader(reference) as ref:
        reduced = False
        for (rgb, nbytes, upscaled), ref_rgb in zip(frames, ref.frames()):
            meter.add(ref_rgb, rgb)
            size += nbytes
            reduced |= upscaled
    if reduced:  # the layer alone is then not what its codec gives at the picture's size
        name += " (reduced-size segments upscaled bilinearly)"
    return meter.result() | {"codec": name, "bytes": size, "file_bytes": bits.path.stat().st_size}


def _decode_picture(bits: ContainerReader, codec: registry.Codec, dst) -> np.ndarray:
    """Decode a one-picture bitstream into the image file ``dst`` (any image format), with
    its alpha plane and grayscale-ness; returns the RGB picture."""
    header = bits.header
    if header.frame_count != 1:
        raise UsageError(
            f"the bitstream holds {header.frame_count} frames; decode it to a video file (or one frame with --frame N)"
        )
    check_image_size(dst, header.width, header.height)
    alpha = None
    if bits.has(ALPHA_SECTION):
        check_alpha(dst, bits.path)
        alpha = unpack_alpha(next(bits.sections(ALPHA_SECTION))[1], header.width, header.height)
    frames = codec.decode(bits.sections(*codec.section_tags()), header)
    rgb = next(frames, None)
    if rgb is None or next(frames, None) is not None:
        raise BitstreamError("the bitstream does not hold exactly the one picture its header declares")
    write_image(dst, rgb, alpha=alpha, gray=bits.has(GRAY_SECTION))
    return rgb


def decode_frames(src: str | os.PathLike, max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS) -> Iterator[np.ndarray]:
    """The frames of the ncodec bitstream ``src`` in order, as they are decoded (HxWx3
    uint8): the loop of a player or pipeline, with no output file and bounded memory."""
    with ContainerReader(src) as bits:
        bits.header.check_output_pixels(max_pixels)
        the_codec = registry.by_tag(bits.header.codec)
        yield from the_codec.decode(bits.sections(*the_codec.section_tags()), bits.header)


def decode_frame(src: str | os.PathLike, index: int, max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS) -> np.ndarray:
    """Frame ``index`` (0-based) of the ncodec bitstream ``src`` as HxWx3 uint8 RGB, decoded
    without the others where the codec allows it (HNeRV: one segment, one embedding)."""
    with ContainerReader(src) as bits:
        header = bits.header
        if not 0 <= index < header.frame_count:
            raise UsageError(f"--frame must be in 0..{header.frame_count - 1}, not {index}")
        header.check_output_pixels(max_pixels, frames=index + 1)  # decoding may run through the ones before
        the_codec = registry.by_tag(header.codec)
        return the_codec.frame_at(bits.sections(*the_codec.section_tags()), header, index)


def _same_size(a: MediaReader, width: int, height: int) -> None:
    if (a.info.width, a.info.height) != (width, height):
        raise UsageError(f"cannot compare {a.info.width}x{a.info.height} with {width}x{height} pictures")


def compare(reference: str | os.PathLike, distorted: str | os.PathLike, *, with_ms_ssim: bool = True) -> dict:
    """Mean per-frame PSNR (RGB), PSNR-Y (BT.601) and MS-SSIM of ``distorted`` against ``reference``."""
    meter = metrics.QualityMeter(with_ms_ssim)
    with MediaReader(reference) as ra, MediaReader(distorted) as rb:
        _same_size(ra, rb.info.width, rb.info.height)
        for a, b in zip(ra.frames(), rb.frames()):
            meter.add(a, b)
    if not meter.psnr:
        raise InputError("no frames to compare")
    return meter.result()


def bitstream_quality(bitstream: str | os.PathLike, reference: str | os.PathLike) -> dict:
    """Mean PSNR and PSNR-Y of the ncodec bitstream's decoded frames against the media file
    ``reference`` it was encoded from, without writing any file."""
    meter = metrics.QualityMeter(with_ms_ssim=False)
    with MediaReader(reference) as ref:
        for a, b in zip(ref.frames(), decode_frames(bitstream)):
            meter.add(a, b)
    return meter.result()


def is_bitstream(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


MAX_DESCRIBED_TAGS = 32


def describe(path: str | os.PathLike) -> dict:
    """What a file holds: an ncodec bitstream's header and sections, or a media file's streams."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if not is_bitstream(p):
        with MediaReader(p) as r:
            return {"kind": "media"} | r.info.as_dict()
    with ContainerReader(p) as bits:
        h = bits.header
        sections: dict[str, dict] = {}
        for e in bits.entries():  # a forged file may use millions of tags: the table stays small
            tag = e.tag if e.tag in sections or len(sections) < MAX_DESCRIBED_TAGS else "(others)"
            s = sections.setdefault(tag, {"count": 0, "bytes": 0})
            s["count"] += 1
            s["bytes"] += e.length
        try:
            codec_name = registry.by_tag(h.codec).name
        except BitstreamError:
            codec_name = None
        return {
            "kind": "ncodec bitstream",
            "path": str(p),
            "bytes": bits.file_size,
            "codec": codec_name or h.codec,
            "width": h.width,
            "height": h.height,
            "fps": f"{h.fps.numerator}/{h.fps.denominator}",
            "frame_count": h.frame_count,
            "duration": float(h.frame_count / h.fps),
            "kbps": metrics.kbps(bits.file_size, h.frame_count, h.fps) if h.frame_count else None,
            "bpp": metrics.bpp(bits.file_size, h.width, h.height, h.frame_count) if h.frame_count else None,
            "colour": asdict(h.colour),
            "has_audio": h.has_audio,
            "params": h.params,
            "sections": sections,
        }
