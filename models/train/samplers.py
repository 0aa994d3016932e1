"""The training samplers: random crops of a set of photos, each photo drawn in
proportion to its area (CropSampler for the codecs and the reflection network,
PatchSampler for ESPCN's aligned LR/HR windows)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..nets.espcn import RECEPTIVE_RADIUS, pad_edges


def area_weights(shapes: list[tuple[int, ...]]) -> np.ndarray:
    """Drawing probabilities proportional to each picture's area (H, W the last two of a shape)."""
    area = np.array([s[-1] * s[-2] for s in shapes], np.float64)
    return area / area.sum()


class CropSampler:
    """Crops drawn in proportion to each photo's area, flipped at random. ``zoom`` < 1:
    half the crops are cut from a region up to 1/zoom times larger (log-uniform) and
    shrunk to ``crop`` px (area interpolation), so that the large photos, which dominate
    by area, also show the denser detail per pixel of smaller pictures."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int, zoom: float = 1.0):
        if not 0 < zoom <= 1:
            raise ValueError(f"zoom must be in (0, 1], not {zoom}")
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop} px on its short side")
        self.weights, self.crop, self.zoom = area_weights([im.shape[:2] for im in self.images]), crop, zoom
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> torch.Tensor:
        out = []
        for i in self.rng.choice(len(self.images), size=n, p=self.weights):
            im = self.images[i]
            c = self.crop
            if self.zoom < 1 and self.rng.integers(0, 2):
                c = min(int(self.crop / self.zoom ** self.rng.random()), *im.shape[:2])
            y, x = int(self.rng.integers(0, im.shape[0] - c + 1)), int(self.rng.integers(0, im.shape[1] - c + 1))
            patch = im[y : y + c, x : x + c]
            if c != self.crop:
                patch = cv2.resize(patch, (self.crop, self.crop), interpolation=cv2.INTER_AREA)
            if self.rng.integers(0, 2):
                patch = patch[:, ::-1]
            out.append(np.ascontiguousarray(patch))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


@dataclass
class Pair:
    hr: torch.Tensor  # 1,H,W float Y in [0, 1]
    lr: torch.Tensor  # 1,h,w


class PatchSampler:
    """Random aligned LR/HR crops with the 8 dihedral augmentations, images drawn by area.

    An LR window of ``patch`` px yields the HR target of its inner ``patch - 2R`` pixels
    (R the receptive radius: ``ESPCN.interior``). Windows are cut from the picture
    extended by edge replication (``pad_edges``) and may reach R px past its edges, so
    the targets cover the whole picture, edges included, computed exactly as ``forward``
    computes them there."""

    def __init__(self, pairs: list[Pair], scale: int, patch: int, seed: int):
        inner = patch - 2 * RECEPTIVE_RADIUS
        self.pairs = [Pair(hr=p.hr, lr=pad_edges(p.lr[None])[0]) for p in pairs if min(p.lr.shape[-2:]) >= inner]
        if not self.pairs:
            raise ValueError(f"no training image is at least {inner * scale} px on its short side")
        self.weights = area_weights([p.hr.shape for p in self.pairs])
        self.scale, self.patch = scale, patch
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, p, q = self.scale, self.patch, (self.patch - 2 * RECEPTIVE_RADIUS) * self.scale
        lrs, hrs = [], []
        for i in self.rng.choice(len(self.pairs), size=n, p=self.weights):
            pair = self.pairs[i]
            h, w = pair.lr.shape[-2:]
            # window row y of the padded picture: its inner outputs start at picture row y
            y, x = int(self.rng.integers(0, h - p + 1)), int(self.rng.integers(0, w - p + 1))
            lr = pair.lr[:, y : y + p, x : x + p]
            hr = pair.hr[:, y * s : y * s + q, x * s : x * s + q]
            k, flip = int(self.rng.integers(0, 4)), bool(self.rng.integers(0, 2))
            lr, hr = torch.rot90(lr, k, (1, 2)), torch.rot90(hr, k, (1, 2))
            if flip:
                lr, hr = lr.flip(2), hr.flip(2)
            lrs.append(lr)
            hrs.append(hr)
        return torch.stack(lrs), torch.stack(hrs)
