"""Metrics checked against values computed independently of video/metrics.py."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy.ndimage import convolve1d

from ncodec.video import metrics


def pair(seed=0, shape=(192, 200, 3), noise=8):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = np.stack([(x * 1.2) % 256, (y * 1.3) % 256, ((x + y) * 0.7) % 256], -1).astype(np.float64)
    a = np.clip(base, 0, 255).astype(np.uint8)
    b = np.clip(base + rng.normal(0, noise, shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_matches_opencv():
    a, b = pair()
    assert metrics.psnr(a, b) == pytest.approx(cv2.PSNR(a, b), abs=1e-9)
    assert metrics.psnr(a, a) == metrics.PSNR_CAP


def test_psnr_hand_value():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 16  # MSE = 256 / 48
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (256 / 48)))


def test_luma_against_matlab_rgb2ycbcr_values():
    # MATLAB rgb2ycbcr (BT.601, studio range) of pure colours: black 16, white 235, red 81.481
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(metrics.rgb_to_y(rgb, "601")[0], [16, 235, 81.481, 144.553, 40.966], atol=1e-3)
    # BT.709: red 16 + 219 * 0.2126
    assert metrics.rgb_to_y(rgb, "709")[0, 2] == pytest.approx(16 + 219 * 0.2126)


def test_psnr_y_border_crop():
    a, b = pair()
    b2 = b.copy()
    b2[:3] = 0  # damage only inside the 3-pixel border
    assert metrics.psnr_y(a, b2, border=3) == pytest.approx(metrics.psnr_y(a, b, border=3))
    assert metrics.psnr_y(a, b2) < metrics.psnr_y(a, b)


def _ssim_parts(x, y, win):
    """Independent SSIM: separable Gaussian (sigma 1.5), 'valid' filtering, per channel."""
    k = np.exp(-((np.arange(win) - win // 2) ** 2) / (2 * 1.5**2))
    k /= k.sum()

    def blur(img):
        out = convolve1d(convolve1d(img, k, axis=0, mode="constant"), k, axis=1, mode="constant")
        h = win // 2
        return out[h : img.shape[0] - h, h : img.shape[1] - h]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = (2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs
    return ssim.mean(), cs.mean()


def independent_ms_ssim(a, b, win=11):
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    per_channel = []
    for c in range(3):
        x, y = a[..., c].astype(np.float64), b[..., c].astype(np.float64)
        values = []
        for level in range(5):
            ssim, cs = _ssim_parts(x, y, win)
            values.append(max(ssim if level == 4 else cs, 0))
            if level < 4:  # 2x2 average pooling (odd sizes padded like pytorch-msssim)
                pad = ((0, x.shape[0] % 2), (0, x.shape[1] % 2))
                x = np.pad(x, pad, mode="constant")
                y = np.pad(y, pad, mode="constant")
                x = x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2).mean((1, 3))
                y = y.reshape(y.shape[0] // 2, 2, y.shape[1] // 2, 2).mean((1, 3))
        per_channel.append(np.prod([v**w for v, w in zip(values, weights)]))
    return float(np.mean(per_channel))


def test_ms_ssim_matches_independent_implementation():
    a, b = pair(shape=(192, 192, 3), noise=12)
    assert metrics.ms_ssim(a, b) == pytest.approx(independent_ms_ssim(a, b), abs=2e-3)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)


def test_rates():
    assert metrics.bpp(1000, 100, 80, 1) == pytest.approx(1.0)
    assert metrics.kbps(25_000, 25, 25) == pytest.approx(200.0)


def test_bd_rate_exact_for_scaled_rates():
    rates, psnrs = [100, 200, 400, 800], [30.0, 33.1, 35.9, 38.2]
    assert metrics.bd_rate(rates, psnrs, [r * 0.9 for r in rates], psnrs) == pytest.approx(-10.0, abs=1e-9)
    assert metrics.bd_rate(rates, psnrs, rates, psnrs) == pytest.approx(0.0, abs=1e-12)


def test_bd_rate_close_to_bjontegaard_cubic_fit():
    """The original VCEG-M33 method (cubic polyfit) agrees with PCHIP on smooth curves."""
    ra, pa = np.array([100, 180, 330, 600.0]), np.array([30.1, 32.8, 35.2, 37.4])
    rt, pt = np.array([90, 150, 290, 520.0]), np.array([30.4, 32.6, 35.5, 37.6])

    def cubic_bd(ra, pa, rt, pt):
        fa, ft = np.polyfit(pa, np.log10(ra), 3), np.polyfit(pt, np.log10(rt), 3)
        lo, hi = max(pa.min(), pt.min()), min(pa.max(), pt.max())
        ia, it = np.polyint(fa), np.polyint(ft)
        diff = ((np.polyval(it, hi) - np.polyval(it, lo)) - (np.polyval(ia, hi) - np.polyval(ia, lo))) / (hi - lo)
        return (10**diff - 1) * 100

    assert metrics.bd_rate(ra, pa, rt, pt) == pytest.approx(cubic_bd(ra, pa, rt, pt), abs=1.0)
    assert metrics.bd_psnr(ra, pa, ra * 0.8, pa) > 0


def test_bd_rate_needs_overlap():
    with pytest.raises(ValueError):
        metrics.bd_rate([1, 2], [30, 31], [1, 2], [40, 41])
