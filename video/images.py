"""Still images: reading any common format to uint8 RGB, and folders of them for training."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import cv2
import numpy as np

from ncodec.codec.atomic import AtomicPath
from ncodec.codec.errors import BitstreamError, InputError, UsageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
# largest side each image format can store
_IMAGE_LIMITS = {
    ".png": 2**31 - 1,
    ".jpg": 65535,
    ".jpeg": 65535,
    ".webp": 16383,
    ".bmp": 2**31 - 1,
    ".tif": 2**31 - 1,
    ".tiff": 2**31 - 1,
}
_ALPHA_SUFFIXES = {".png", ".webp", ".tif", ".tiff"}


def read_image(path: str | os.PathLike, *, allow_16bit: bool = True) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(HxWx3 uint8 RGB, HxW alpha or None, was grayscale). Grayscale becomes RGB; 16-bit
    is scaled to 8 (or refused, for a caller that would silently lose the depth); EXIF
    orientation is applied (OpenCV's default)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    data = np.fromfile(p, np.uint8)
    if data.size == 0:
        raise InputError(f"{p}: empty file")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise InputError(f"{p}: not an image OpenCV can read")
    if img.dtype == np.uint16 and not allow_16bit:
        raise InputError(f"{p}: 16-bit images are not supported here; convert it to 8 bits first")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"{p}: unsupported sample type {img.dtype}")
    alpha, gray = None, img.ndim == 2
    if gray:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        alpha = np.ascontiguousarray(img[:, :, 3])
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise InputError(f"{p}: image has no pixels")
    return img, alpha, gray


def check_image_size(dst: str | os.PathLike, width: int, height: int) -> None:
    """Refuse, before any work, a picture that ``dst``'s format cannot store."""
    suffix = Path(dst).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UsageError(f"cannot write {Path(dst).name}: use an image extension ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if max(width, height) > _IMAGE_LIMITS[suffix]:
        raise UsageError(
            f"{width}x{height} is too large for {suffix} (at most {_IMAGE_LIMITS[suffix]} px per side); write .png"
        )


def check_alpha(dst: str | os.PathLike, src: str | os.PathLike) -> None:
    if Path(dst).suffix.lower() not in _ALPHA_SUFFIXES:
        raise UsageError(
            f"{Path(src).name} has transparency, which {Path(dst).suffix} cannot hold; write .png or .webp"
        )


def write_image(
    dst: str | os.PathLike, rgb: np.ndarray, *, alpha: np.ndarray | None = None, gray: bool = False
) -> None:
    """Write uint8 RGB (plus an optional alpha plane, or as grayscale) atomically; the
    format follows ``dst``'s extension."""
    dst = Path(dst)
    check_image_size(dst, rgb.shape[1], rgb.shape[0])
    if gray:
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    else:
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if alpha is not None:
            check_alpha(dst, dst)
            out = np.dstack([out, alpha])
    ok, buf = cv2.imencode(dst.suffix.lower(), out)
    if not ok:
        raise UsageError(f"OpenCV cannot write {dst.suffix} files")
    with AtomicPath(dst) as tmp:
        tmp.path.write_bytes(buf.tobytes())


# Planes an ncodec bitstream of a still image keeps beside the codec's RGB: any codec's
# picture keeps its transparency and its grayscale-ness (docs/FORMAT.md).
ALPHA_SECTION = "ALPH"  # the alpha plane, lossless (zlib), row-major HxW uint8
GRAY_SECTION = "GRAY"  # empty: the source was grayscale, decode to one channel


def pack_alpha(alpha: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(alpha, np.uint8).tobytes(), 9)


def unpack_alpha(payload: bytes, width: int, height: int) -> np.ndarray:
    """The alpha plane of a ``width`` x ``height`` picture; never inflates past its size."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, width * height + 1)
    except zlib.error:
        raise BitstreamError("alpha plane is corrupted") from None
    if len(raw) != width * height or inflater.unconsumed_tail or not inflater.eof:
        raise BitstreamError("alpha plane does not match the picture size")
    return np.frombuffer(raw, np.uint8).reshape(height, width)
