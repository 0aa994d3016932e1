"""Still images: reading any common format to uint8 RGB, and folders of them for training."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ncodec.codec.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(HxWx3 uint8 RGB, HxW alpha or None, was grayscale). Grayscale becomes RGB; 16-bit
    is scaled to 8; EXIF orientation is applied (OpenCV's default)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    data = np.fromfile(p, np.uint8)
    if data.size == 0:
        raise InputError(f"{p}: empty file")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise InputError(f"{p}: not an image OpenCV can read")
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


def image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted for reproducibility."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files
