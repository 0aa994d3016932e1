"""Colour: which YUV<->RGB matrix and range to use, in one place.

Code points are ITU-T H.273 (what FFmpeg and the container store). When a source
leaves the matrix unspecified we do what players do: BT.709 from 720 lines up,
BT.601 below.
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import Interpolation

from ncodec.codec.container import Colour

BT709, BT601 = 1, 6
LIMITED, FULL = 1, 2
# H.273 matrix code point -> swscale colourspace (the values PyAV's reformat accepts)
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


# YUV -> RGB in swscale's bit-exact C path: its SIMD paths round differently from CPU to
# CPU, and a decoder's pixels must not depend on the machine (chroma is repeated, as the
# default fast path did)
TO_RGB = Interpolation.POINT | Interpolation.ACCURATE_RND | Interpolation.BITEXACT


def effective_matrix(colour: Colour, height: int) -> int:
    """The matrix actually used for conversion: the tagged one, or the size-based default."""
    if colour.matrix in _SWS_MATRIX:
        return colour.matrix
    return BT709 if height >= 720 else BT601


def frame_colour(frame: av.VideoFrame) -> Colour:
    """The colour tags a decoded frame carries (full range implied by yuvj formats)."""
    rng = int(frame.color_range)
    if rng == 0:
        rng = FULL if frame.format.name.startswith("yuvj") or not frame.format.name.startswith("yuv") else 0
    return Colour(int(frame.color_primaries), int(frame.color_trc), int(frame.colorspace), rng)


def frame_to_rgb(frame: av.VideoFrame, colour: Colour | None = None) -> np.ndarray:
    """Decode a frame of any pixel format to HxWx3 uint8 RGB with the right matrix and range."""
    name = frame.format.name
    if not name.startswith("yuv") and not name.startswith("nv"):
        return frame.to_ndarray(format="rgb24")
    colour = colour or frame_colour(frame)
    src_range = colour.range or (FULL if name.startswith("yuvj") else LIMITED)
    return frame.to_ndarray(
        format="rgb24",
        src_colorspace=_SWS_MATRIX[effective_matrix(colour, frame.height)],
        src_color_range=src_range,
        dst_color_range=FULL,
        interpolation=TO_RGB,
    )


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colour: Colour) -> av.VideoFrame:
    """Convert HxWx3 uint8 RGB to a frame of ``pix_fmt``, tagged with the matrix and range used."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    if not pix_fmt.startswith("yuv"):
        return frame.reformat(format=pix_fmt) if pix_fmt != "rgb24" else frame
    matrix = effective_matrix(colour, rgb.shape[0])
    out = frame.reformat(
        format=pix_fmt,
        dst_colorspace=_SWS_MATRIX[matrix],
        src_color_range=FULL,
        dst_color_range=colour.range or LIMITED,
    )
    out.colorspace = matrix
    if colour.primaries != 2:
        out.color_primaries = colour.primaries
    if colour.transfer != 2:
        out.color_trc = colour.transfer
    return out


def output_colour(colour: Colour, height: int) -> Colour:
    """The colour tags an encoder should write: the source's, with the matrix and range made explicit."""
    return Colour(colour.primaries, colour.transfer, effective_matrix(colour, height), colour.range or LIMITED)


def frame_planes(frame: av.VideoFrame) -> tuple[np.ndarray, ...]:
    """The planes of a planar frame (yuv420p: Y, Cb, Cr) as uint8 arrays, without line padding."""
    return tuple(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in frame.planes)


def planes_to_rgb(planes: tuple[np.ndarray, ...], colour: Colour) -> np.ndarray:
    """HxWx3 uint8 RGB of yuv420p planes (Y, Cb, Cr), converted as a decoder's frame of
    that colour would be (``colour`` with its matrix and range explicit)."""
    y = planes[0]
    frame = av.VideoFrame(y.shape[1], y.shape[0], "yuv420p")
    for plane, data in zip(frame.planes, planes):
        rows = np.zeros((plane.height, plane.line_size), np.uint8)
        rows[:, : plane.width] = data
        plane.update(rows.tobytes())
    return frame_to_rgb(frame, colour)
