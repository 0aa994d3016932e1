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


def dereflect_network(
    rgb: np.ndarray, model, *, tile: int = 512, overlap: int = TILE_OVERLAP, on_tile: Callable[[], None] | None = None
) -> np.ndarray:
    """H,W,3 uint8 -> the transmission layer, uint8, tile by tile (see the module docstring)."""
    h, w = rgb.shape[:2]
    factor = min(1.0, GLOBAL_SIDE / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255

    with torch.inference_mode():
        context = model.context(tensor(small))

        def transmission(pixels: np.ndarray, t: Tile) -> np.ndarray:
            region = (t.top / h, t.left / w, t.height / h, t.width / w)
            return model(tensor(pixels), context, region)[0][0].clamp(0, 1).permute(1, 2, 0).numpy()

        out = run_tiled(rgb, transmission, tile, overlap=overlap, on_tile=on_tile)
    return (out * 255).round().clip(0, 255).astype(np.uint8)


def dereflect_tiles(height: int, width: int, tile: int) -> int:
    """How many tiles :func:`dereflect_network` runs (the progress bar's total)."""
    return tile_count(height, width, tile, TILE_OVERLAP)
