"""Random training crops from a set of photos (shared by the recipes that train on crops)."""

from __future__ import annotations

import cv2
import numpy as np
import torch


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
        area = np.array([im.shape[0] * im.shape[1] for im in self.images], np.float64)
        self.weights, self.crop, self.zoom = area / area.sum(), crop, zoom
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
