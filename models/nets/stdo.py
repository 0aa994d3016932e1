"""STDO (spatial-temporal data overfitting) on top of ESPCN: patches of a video scored
by the generic model, grouped into chunks, and one small model overfitted per chunk.

Planes are full-range 8-bit luma (OpenCV's YCrCb, what the Upscaler feeds its network)
held as uint8 tensors N,1,H,W to keep a whole segment in memory; batches become studio-
range floats (what ESPCN is trained on) only when they go through a network. A *window*
is an LR patch plus ``MARGIN`` pixels of real context on every side (the network's
receptive radius), so a patch's output depends on real pixels only and patches can be
upscaled independently, by different models.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .espcn import ESPCN, RECEPTIVE_RADIUS, STUDIO_GAIN, STUDIO_OFFSET

MARGIN = RECEPTIVE_RADIUS
LAYERS = ("last", "all")  # what overfitting trains


def studio(u8: torch.Tensor) -> torch.Tensor:
    """Full-range 8-bit luma -> studio-range Y in [0, 1] (ESPCN's input and target)."""
    return STUDIO_OFFSET + STUDIO_GAIN * (u8.float() / 255)


def patch_grid(height: int, width: int, patch: int) -> tuple[int, int]:
    """Rows and columns of ``patch``-px patches covering an LR plane (the last ones may
    reach past the edge; the plane is padded by replication)."""
    return math.ceil(height / patch), math.ceil(width / patch)


def _pad_edges(plane: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Edge replication for a 1,1,H,W plane of any dtype (torch pads floats only)."""
    return F.pad(plane.float(), (left, right, top, bottom), mode="replicate").to(plane.dtype)


def windows(lr: torch.Tensor, patch: int) -> torch.Tensor:
    """N,1,h,w LR planes -> (N*rows*cols),1,patch+2m,patch+2m windows in frame, row, column
    order (edge-replicated outside the picture)."""
    n, _, h, w = lr.shape
    rows, cols = patch_grid(h, w, patch)
    size = patch + 2 * MARGIN
    out = []
    for i in range(n):  # one frame padded at a time: memory stays that of the windows
        padded = _pad_edges(lr[i : i + 1], MARGIN, cols * patch - w + MARGIN, MARGIN, rows * patch - h + MARGIN)
        win = padded.unfold(2, size, patch).unfold(3, size, patch)  # 1,1,rows,cols,size,size
        out.append(win.reshape(rows * cols, 1, size, size))
    return torch.cat(out)


def hr_patches(hr: torch.Tensor, patch: int, scale: int) -> torch.Tensor:
    """N,1,H,W HR planes (H, W multiples of ``scale``) -> the HR patches matching
    :func:`windows`, edge-replicated past the picture."""
    n, _, h, w = hr.shape
    p = patch * scale
    rows, cols = patch_grid(h // scale, w // scale, patch)
    out = []
    for i in range(n):
        padded = _pad_edges(hr[i : i + 1], 0, cols * p - w, 0, rows * p - h)
        out.append(padded.unfold(2, p, p).unfold(3, p, p).reshape(rows * cols, 1, p, p))
    return torch.cat(out)


def upscale_windows(model: Callable[[torch.Tensor], torch.Tensor], win: torch.Tensor, scale: int) -> torch.Tensor:
    """Windows through ``model``; only the patch's own output (margins cut) is returned."""
    m = MARGIN * scale
    return model(win)[..., m:-m, m:-m]


def assemble(patches: torch.Tensor, frames: int, height: int, width: int, patch: int, scale: int) -> torch.Tensor:
    """Inverse of :func:`hr_patches`: patches back into N,1,H,W planes (cropped)."""
    p = patch * scale
    rows, cols = patch_grid(height // scale, width // scale, patch)
    grid = patches.reshape(frames, rows, cols, 1, p, p).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(frames, 1, rows * p, cols * p)[..., :height, :width]


@torch.inference_mode()
def patch_errors(model: ESPCN, win: torch.Tensor, target: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Mean squared error of ``model`` on each patch (uint8 windows and HR patches): the
    difficulty score used for chunking."""
    out = []
    for w, t in zip(win.split(batch), target.split(batch)):
        sr = model.interior(studio(w)).clamp(0, 1)  # = upscale_windows, unpadded
        out.append(((sr - studio(t)) ** 2).mean(dim=(1, 2, 3)))
    return torch.cat(out)


def chunk_by_difficulty(errors: torch.Tensor, k: int) -> torch.Tensor:
    """Chunk id per patch: patches sorted by error and cut into ``k`` equal groups, chunk 0
    the hardest (the paper's spatial-temporal chunking: alike difficulty, alike content)."""
    order = torch.argsort(errors, descending=True, stable=True)
    ids = torch.empty_like(order)
    ids[order] = torch.arange(len(order)) * k // max(len(order), 1)
    return ids


def joint_sample(chunk_ids: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """Indices for the paper's data-aware joint training: every patch of the hardest chunk,
    and from chunk i a fraction 1 / 2^i of its patches (easier data, fewer samples)."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for i in range(k):
        idx = torch.nonzero(chunk_ids == i).flatten()
        n = max(1, math.ceil(len(idx) / 2**i)) if len(idx) else 0
        keep.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    return torch.cat(keep).sort().values
