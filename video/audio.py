"""Audio passthrough: compressed audio packets are copied, never re-encoded.

Inside an ncodec bitstream the audio travels as an audio-only Matroska file (codec
parameters, packets and timestamps exactly as demuxed), split over "AUDM" sections.
Matroska is used because it stores every codec FFmpeg knows with its parameters, so
copying needs no per-codec code.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from typing import Iterable, Iterator

import av

from ncodec.codec.errors import BitstreamError, InputError

AUDIO_SECTION = "AUDM"
AUDIO_CHUNK = 8 * 1024 * 1024  # bytes of the Matroska file per section


class AudioCopier:
    """Maps input audio streams onto new streams of ``output`` and muxes their packets.

    ``offset`` (seconds) is subtracted from every timestamp, so audio stays in sync
    with video that is re-timed to start at zero.
    """

    def __init__(self, streams: Iterable, output: av.container.OutputContainer, offset: float = 0.0):
        self._map = {}
        self.output = output
        for s in streams:
            try:
                out = output.add_stream_from_template(s)
            except (av.error.FFmpegError, ValueError) as e:
                raise InputError(f"audio codec {s.codec_context.name} cannot be copied into {output.format.name}: {e}")
            self._map[s.index] = (out, round(Fraction(offset) / s.time_base) if s.time_base else 0)

    def __bool__(self) -> bool:
        return bool(self._map)

    def mux(self, packet: av.Packet) -> None:
        out, shift = self._map[packet.stream.index]
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = out
        try:
            self.output.mux(packet)
        except av.error.FFmpegError as e:
            raise InputError(
                f"cannot store {out.codec_context.name} audio in a {self.output.format.name} file "
                f"({e.strerror or e}); use an .mkv output"
            ) from None


def check_audio_file(path: str | os.PathLike, scratch: str | os.PathLike) -> None:
    """Raise BitstreamError unless the audio file carried in a bitstream opens, demuxes and
    remuxes into Matroska (which stores every codec) from start to end. Run before the
    real output is written, so that a corrupted audio section is reported as such and
    not as a failure of the user's output file (the fuzzer found both: metadata that is
    not UTF-8, streams without a codec, parameters the muxer rejects, a stream with no
    sample rate and no packet)."""
    try:
        with av.open(str(path)) as src, av.open(str(scratch), "w", format="matroska") as out:
            copier = AudioCopier(src.streams.audio, out)
            out.start_encoding()  # the header even without packets: the real output writes it
            for packet in packets_in_time_order(src):
                copier.mux(packet)
    except (av.error.FFmpegError, InputError, UnicodeDecodeError, ValueError, AttributeError) as e:
        raise BitstreamError(f"audio section is corrupted ({e})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(scratch)


def packets_in_time_order(container: av.container.InputContainer) -> Iterator[av.Packet]:
    for packet in container.demux(container.streams.audio):
        if packet.size:
            yield packet


def packet_time(packet: av.Packet) -> float:
    ts = packet.pts if packet.pts is not None else packet.dts
    return float(ts * packet.time_base) if ts is not None and packet.time_base else 0.0


def split_file(path: str | os.PathLike) -> Iterator[bytes]:
    """A file's bytes in AUDIO_CHUNK pieces (one section each)."""
    with open(path, "rb") as f:
        while chunk := f.read(AUDIO_CHUNK):
            yield chunk
