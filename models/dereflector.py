"""Picture-level reflection removal with the RRFormer-style network: no files.

The network runs in overlapping tiles blended across the overlap (models/tiling.py), so
no seam shows; a global pass over a downscaled copy of the whole photo gives every tile
the picture's layout through the pyramid-pooling stage. Memory: the photo, one float
accumulator and one tile's activations, for photos of 8K and beyond.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch

from .tiling import Tile, run_tiled, tile_count

GLOBAL_SIDE = 768  # long side of the global-context pass
TILE_OVERLAP = 64
# an 8K photo, bf16, 2 threads: 512-px tiles 60.1 s, 576 px 56.3 s, 640 px 57.3 s, 768 px
# slower still (larger tiles overlap less but leave the caches: 1.7 us a pixel at 768 px)
DEFAULT_TILE = 576


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str) -> str:
    """ "auto": bf16 where the CPU computes it natively (AVX-512 BF16, AMX), else fp32. The
    quality cost is measured in docs/BENCHMARKS.md (reflection removal); the output is a
    picture, not a bitstream, so it may differ from machine to machine."""
    from .nets.precision import native_bf16

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def dereflect_network(
    rgb: np.ndarray,
    model,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = TILE_OVERLAP,
    precision: str = "auto",
    on_tile: Callable[[], None] | None = None,
) -> np.ndarray:
    """H,W,3 uint8 -> the transmission layer, uint8, tile by tile (see the module docstring).
    Channels-last throughout (oneDNN's fast layout: 1.4x at fp32 here), bf16 by ``precision``."""
    h, w = rgb.shape[:2]
    factor = min(1.0, GLOBAL_SIDE / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    model = model.to(memory_format=torch.channels_last)
    bf16 = resolve_precision(precision) == "bf16"

    def tensor(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255
        return t.contiguous(memory_format=torch.channels_last)

    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        context = model.context(tensor(small))

        def transmission(pixels: np.ndarray, t: Tile) -> np.ndarray:
            region = (t.top / h, t.left / w, t.height / h, t.width / w)
            return model(tensor(pixels), context, region)[0][0].float().clamp(0, 1).permute(1, 2, 0).numpy()

        out = run_tiled(rgb, transmission, tile, overlap=overlap, on_tile=on_tile)
    out *= 255  # in place: an 8K picture's float copy is 400 MB
    return np.rint(out, out=out).clip(0, 255, out=out).astype(np.uint8)


def dereflect_tiles(height: int, width: int, tile: int) -> int:
    """How many tiles :func:`dereflect_network` runs (the progress bar's total)."""
    return tile_count(height, width, tile, TILE_OVERLAP)
