"""Random training crops from a set of photos (shared by the recipes that train on crops)."""

from __future__ import annotations

import numpy as np
import torch


class CropSampler:
    def __init__(self, images: list[np.ndarray], crop: int, seed: int):
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop} px on its short side")
        area = np.array([im.shape[0] * im.shape[1] for im in self.images], np.float64)
        self.weights, self.crop = area / area.sum(), crop
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> torch.Tensor:
        c, out = self.crop, []
        for i in self.rng.choice(len(self.images), size=n, p=self.weights):
            im = self.images[i]
            y, x = int(self.rng.integers(0, im.shape[0] - c + 1)), int(self.rng.integers(0, im.shape[1] - c + 1))
            patch = im[y : y + c, x : x + c]
            if self.rng.integers(0, 2):
                patch = patch[:, ::-1]
            out.append(np.ascontiguousarray(patch))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255
