"""The codec interface and the one registry every codec joins.

A codec turns a stream of uint8 RGB frames into container sections and back. It
never touches files or PyAV streams (``ncodec.video`` does); it sees frames, a
:class:`StreamHeader` and its own sections. Adding a codec is one ``register`` call.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Iterable, Iterator

import numpy as np

from .container import StreamHeader
from .errors import BitstreamError, UsageError
from .options import Option, check_options

Section = tuple[str, bytes]  # (4-character tag, payload)


class Codec(ABC):
    """A video or image codec that lives inside the ncodec container."""

    name: str  # what the user types after --codec
    tag: str  # 4-character id written into the header
    description: str = ""
    media: str = "video"  # "video" or "image": the front ends list a codec under its kind
    options: tuple[Option, ...] = ()  # everything `ncodec encode` and the web app offer for it
    quality_levels: dict[str, dict] = {}  # --quality preset name -> options
    uses_torch: bool = False  # neural codecs: --device auto|cpu|cuda applies

    def settings(self, options: dict, quality: str | None = None) -> dict:
        """Every declared option's checked value: the --quality preset's, then the given
        ones on top, then the defaults; UsageError naming the flag for anything wrong."""
        resolved = {}
        if quality is not None:
            if quality not in self.quality_levels:
                raise UsageError(f"--quality for {self.name} must be one of: {', '.join(self.quality_levels)}")
            resolved.update(self.quality_levels[quality])
        resolved.update({k: v for k, v in options.items() if v is not None})
        return check_options(self.name, self.options, resolved)

    def encoder_settings(self, options: dict, quality: str | None = None) -> dict:
        """The checked settings that steer only the encoder (they never enter the header)."""
        values = self.settings(options, quality)
        return {o.name: values[o.name] for o in self.options if o.encoder_only}

    @abstractmethod
    def params(self, width: int, height: int, fps, options: dict) -> dict:
        """The JSON parameters stored in the header, from the options (checked by
        :meth:`settings`); encoder-only options stay out."""

    @abstractmethod
    def encode(
        self, frames: Iterable[np.ndarray], header: StreamHeader, runtime: dict | None = None
    ) -> Iterator[Section]:
        """Consume HxWx3 uint8 RGB frames, yield sections as soon as they are ready.
        ``runtime`` holds what does not go into the bitstream: device, progress, and
        ``runtime["settings"]``, the encoder-only options (:meth:`encoder_settings`)."""

    @abstractmethod
    def decode(self, sections: Iterable[Section], header: StreamHeader) -> Iterator[np.ndarray]:
        """Turn this codec's sections back into HxWx3 uint8 RGB frames, in order."""

    def frame_at(self, sections: Iterable[Section], header: StreamHeader, index: int) -> np.ndarray:
        """Frame ``index`` (0-based; the caller checks the range). This default decodes up
        to it; codecs with random access override it."""
        for i, rgb in enumerate(self.decode(sections, header)):
            if i == index:
                return rgb
        raise BitstreamError(f"bitstream ends before frame {index}")

    def section_tags(self) -> tuple[str, ...]:
        """The section tags this codec writes (the container hands it only these)."""
        return ()

    def base_layer(
        self, sections: Iterable[Section], header: StreamHeader
    ) -> tuple[str, Iterator[tuple[np.ndarray, int, bool]]] | None:
        """For a codec built on a classical base layer: that codec's name and the layer's own
        decoded frames, each with the bytes of base stream it starts (0 for all but a
        stream's first frame) and whether it was coded at reduced size (and is shown
        upscaled), so that a comparison can show what the classical codec alone gives at
        nearly the same size; None for other codecs."""
        return None


def segments(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    """Consecutive runs of at most ``size`` frames: the unit of the codecs that must see
    several frames at once (HNeRV, STDO) while memory stays bounded."""
    batch: list[np.ndarray] = []
    for rgb in frames:
        batch.append(rgb)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class SegmentedCodec(Codec):
    """A codec that cuts the clip into independent segments of at most
    ``params["segment_frames"]`` frames, each coded on its own into one ``segment_tag``
    section (HNeRV, STDO). A segment is a pure function of its frames and the header, so
    segments can run anywhere: here one after another, or spread over worker processes or
    a cluster by a ``runtime["map"]`` that ``ncodec.video.parallel`` provides; the sections
    come back in order either way."""

    segment_tag: str

    def section_tags(self) -> tuple[str, ...]:
        return (self.segment_tag,)

    @abstractmethod
    def encode_segment(self, frames: list[np.ndarray], header: StreamHeader, runtime: dict) -> bytes:
        """The payload of one segment's section."""

    def encode(
        self, frames: Iterable[np.ndarray], header: StreamHeader, runtime: dict | None = None
    ) -> Iterator[Section]:
        runtime = dict(runtime or {})
        run = runtime.pop("map", None) or map  # (function, iterable) -> results in order
        job = functools.partial(encode_segment_of, self.name, header, runtime)
        for payload in run(job, segments(frames, int(header.params["segment_frames"]))):
            yield self.segment_tag, payload


def encode_segment_of(codec: str, header: StreamHeader, runtime: dict, frames: list[np.ndarray]) -> bytes:
    """One segment of a :class:`SegmentedCodec`, named so that a worker process can run it."""
    return get(codec).encode_segment(frames, header, runtime)


_BY_NAME: dict[str, Codec] = {}
_BY_TAG: dict[str, Codec] = {}


def register(codec: Codec) -> Codec:
    if len(codec.tag) != 4:
        raise ValueError(f"codec tag must be 4 characters: {codec.tag!r}")
    for table, key in ((_BY_NAME, codec.name), (_BY_TAG, codec.tag)):
        if key in table and table[key] is not codec:
            raise ValueError(f"codec {key!r} registered twice")
        table[key] = codec
    return codec


def names() -> list[str]:
    return sorted(_BY_NAME)


def get(name: str) -> Codec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown codec {name!r}; choose one of: {', '.join(names())}") from None


def by_tag(tag: str) -> Codec:
    try:
        return _BY_TAG[tag]
    except KeyError:
        raise BitstreamError(
            f"the bitstream uses codec {tag!r}, which this ncodec does not know; upgrade ncodec"
        ) from None
