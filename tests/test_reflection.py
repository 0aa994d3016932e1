"""Classical reflection suppression (DCT-domain closed form)."""

from __future__ import annotations

import cv2
import numpy as np

from conftest import SAMPLES
from ncodec.models.reflection_classic import suppress_reflection
from ncodec.video.images import read_image


def test_keeping_every_gradient_returns_the_input():
    rgb = read_image(SAMPLES / "coffee.png")[0][:120, :160]
    out = suppress_reflection(rgb, threshold=-1.0)
    assert np.abs(out.astype(int) - rgb).max() <= 1


def test_weak_gradients_go_strong_edges_stay():
    h, w = 96, 128
    edge = np.zeros((h, w), np.float32)
    edge[:, w // 2 :] = 160.0  # a sharp, strong edge: the transmission
    rng = np.random.default_rng(0)
    blob = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 6)
    blob *= 25 / np.abs(blob).max()  # a defocused, weak layer: the reflection
    blend = np.clip(40 + edge + blob, 0, 255).astype(np.uint8)
    out = suppress_reflection(np.dstack([blend] * 3), threshold=0.05)[..., 0].astype(np.float32)
    truth = 40 + edge + blob.mean()
    assert np.abs(out - truth).mean() < 0.5 * np.abs(blend - truth).mean()
    assert out[:, w // 2 + 2 :].mean() - out[:, : w // 2 - 2].mean() > 150  # the edge keeps its height


def test_grayscale_and_shape():
    gray = np.tile(np.linspace(0, 255, 50, dtype=np.float32), (30, 1)).astype(np.uint8)
    out = suppress_reflection(gray)
    assert out.shape == gray.shape and out.dtype == np.uint8
