"""`ncodec dereflect`: remove reflections from photos taken through glass, up to 8K and
beyond, in bounded memory.

``net`` runs the RRFormer-style network (models/rrformer.py) in overlapping tiles whose
outputs are blended with linear ramps across the overlap, so no seam shows; a global pass
over a downscaled copy of the whole photo gives every tile the picture's layout through
the pyramid-pooling stage. Memory: the photo, one float accumulator and one tile's
activations. ``classic`` is the closed-form DCT method of Yang et al. 2019
(models/reflection_classic.py): seconds instead of minutes, weaker.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from ncodec.codec.atomic import check_output_path
from ncodec.codec.errors import InputError, UsageError

from .images import check_alpha, check_image_size, read_image, write_image
from .pipeline import progress_bar

METHODS = ("auto", "net", "classic")
DEFAULT_MAX_PIXELS = 7680 * 4320 * 2  # 8K with room; --max-pixels raises it
GLOBAL_SIDE = 768  # long side of the global-context pass
TILE_OVERLAP = 64


@dataclass
class DereflectResult:
    path: str
    method: str
    width: int
    height: int
    seconds: float

    def summary(self) -> str:
        return f"{self.path}: {self.width}x{self.height}, reflections removed ({self.method}) in {self.seconds:.1f} s"


def network_available() -> bool:
    from ncodec.models.rrformer import shipped_weights

    return shipped_weights().is_file()


def _ramp(n: int, overlap: int, start_edge: bool, end_edge: bool) -> np.ndarray:
    """Blend weights along one side of a tile: rising over the overlap, except at the picture's edges."""
    w = np.ones(n, np.float32)
    k = min(overlap, n // 2)
    if k and not start_edge:
        w[:k] = (np.arange(k, dtype=np.float32) + 0.5) / k
    if k and not end_edge:
        w[n - k :] = np.minimum(w[n - k :], ((np.arange(k, dtype=np.float32) + 0.5) / k)[::-1])
    return w


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def dereflect_network(rgb: np.ndarray, model, *, tile: int = 512, overlap: int = TILE_OVERLAP,
                      on_tile: Callable[[], None] | None = None) -> np.ndarray:  # fmt: skip
    """H,W,3 uint8 -> the transmission layer, uint8, tile by tile (see the module docstring)."""
    import torch

    h, w = rgb.shape[:2]
    factor = min(1.0, GLOBAL_SIDE / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)

    def tensor(a: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255

    acc = np.zeros((h, w, 3), np.float32)
    weight = np.zeros((h, w, 1), np.float32)
    with torch.inference_mode():
        context = model.context(tensor(small))
        for top in _starts(h, tile, overlap):
            for left in _starts(w, tile, overlap):
                th, tw = min(tile, h - top), min(tile, w - left)
                region = (top / h, left / w, th / h, tw / w)
                out = model(tensor(rgb[top : top + th, left : left + tw]), context, region)[0]
                piece = out[0].clamp(0, 1).permute(1, 2, 0).numpy()
                wy = _ramp(th, overlap, top == 0, top + th == h)
                wx = _ramp(tw, overlap, left == 0, left + tw == w)
                wt = (wy[:, None] * wx[None, :])[:, :, None]
                acc[top : top + th, left : left + tw] += piece * wt
                weight[top : top + th, left : left + tw] += wt
                if on_tile:
                    on_tile()
    return (acc / weight * 255).round().clip(0, 255).astype(np.uint8)


def _tile_count(h: int, w: int, tile: int) -> int:
    return len(_starts(h, tile, TILE_OVERLAP)) * len(_starts(w, tile, TILE_OVERLAP))


def _check_size(src, max_pixels: int) -> None:
    """Refuse a picture over the pixel limit from its header, before decoding it."""
    from .reader import probe

    try:
        info = probe(src)
    except InputError:
        return  # read_image gives the precise error
    if info.width * info.height > max_pixels:
        raise InputError(f"{src}: {info.width}x{info.height} is over the limit of {max_pixels:,} pixels "
                         "(raise it with --max-pixels)")  # fmt: skip


def dereflect_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    method: str = "auto",
    tile: int = 512,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threshold: float = 0.05,
    progress: bool = False,
) -> DereflectResult:
    """Remove reflections from the photo ``src`` and write ``dst`` (alpha and grayscale kept)."""
    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}")
    if not 128 <= tile <= 4096:
        raise UsageError("--tile must be between 128 and 4096 pixels")
    if method == "auto":
        method = "net" if network_available() else "classic"
    if method == "net" and not network_available():
        raise UsageError("this ncodec ships no reflection-removal weights yet; use --method classic")
    start = time.perf_counter()
    check_output_path(dst, src)
    _check_size(src, max_pixels)
    rgb, alpha, gray = read_image(src, allow_16bit=False)
    h, w = rgb.shape[:2]
    check_image_size(dst, w, h)
    if alpha is not None:
        check_alpha(dst, src)
    if method == "classic":
        from ncodec.models.reflection_classic import suppress_reflection

        out = suppress_reflection(rgb, threshold=threshold)
    else:
        from ncodec.models.rrformer import load_weights

        model = load_weights()
        with progress_bar(_tile_count(h, w, tile), "dereflect", progress, unit="tile") as bar:
            out = dereflect_network(rgb, model, tile=tile, on_tile=lambda: bar.update(1))
    write_image(dst, out, alpha=alpha, gray=gray)
    return DereflectResult(str(dst), method, w, h, time.perf_counter() - start)
