"""Quality and rate metrics: PSNR (RGB and Y), MS-SSIM, bpp, kbit/s and BD-rate.

Conventions (stated because papers differ):
- PSNR of a video is the mean of per-frame PSNRs, each capped at 100 dB (identical frames).
- PSNR-Y uses the studio-range luma of BT.601 or BT.709 (MATLAB ``rgb2ycbcr`` for BT.601,
  the super-resolution convention): Y = 16 + 219 * (Kr R + Kg G + Kb B) / 255.
- MS-SSIM is pytorch-msssim's on RGB with data range 255; for pictures under 161 px
  on a side the Gaussian window shrinks so the five scales still fit.
- BD-rate integrates PCHIP interpolants of log10(rate) over the common PSNR range.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ncodec.models.measure import PSNR_CAP, psnr_from_mse  # noqa: F401  (the one definition, shared with training)

_LUMA = {"601": (0.299, 0.587, 0.114), "709": (0.2126, 0.7152, 0.0722)}


def mse(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over all pixels and channels."""
    return psnr_from_mse(mse(a, b), peak)


def rgb_to_y(rgb: np.ndarray, matrix: str = "601") -> np.ndarray:
    """Studio-range luma (16..235) of uint8 RGB, as float64."""
    kr, kg, kb = _LUMA[matrix]
    x = rgb.astype(np.float64)
    return 16.0 + (219.0 / 255.0) * (kr * x[..., 0] + kg * x[..., 1] + kb * x[..., 2])


def psnr_y(a: np.ndarray, b: np.ndarray, matrix: str = "601", border: int = 0) -> float:
    """PSNR on luma; ``border`` pixels are cropped from each edge (the SR convention)."""
    ya, yb = rgb_to_y(a, matrix), rgb_to_y(b, matrix)
    if border:
        ya, yb = ya[border:-border, border:-border], yb[border:-border, border:-border]
    return psnr_from_mse(mse(ya, yb))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two HxWx3 uint8 RGB pictures (1.0 = identical)."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    side = min(a.shape[0], a.shape[1])
    win = 11
    while win > 3 and (win - 1) * 16 >= side:
        win -= 2
    if (win - 1) * 16 >= side:
        raise ValueError(f"picture of {side} px on its short side is too small for MS-SSIM (needs 49)")
    ta = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
    tb = torch.from_numpy(np.ascontiguousarray(b)).permute(2, 0, 1)[None].float()
    return float(_ms_ssim(ta, tb, data_range=255, win_size=win))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (11-px Gaussian window, on RGB, averaged) of two HxWx3 uint8 pictures."""
    import torch
    from pytorch_msssim import ssim as _ssim

    ta = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
    tb = torch.from_numpy(np.ascontiguousarray(b)).permute(2, 0, 1)[None].float()
    return float(_ssim(ta, tb, data_range=255))


def bpp(num_bytes: int, width: int, height: int, frames: int = 1) -> float:
    return num_bytes * 8.0 / (width * height * frames)


def kbps(num_bytes: int, frames: int, fps: float) -> float:
    return num_bytes * 8.0 / (frames / float(fps)) / 1000.0


def _pchip_mean(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    from scipy.interpolate import PchipInterpolator

    order = np.argsort(x)
    return float(PchipInterpolator(x[order], y[order]).integrate(lo, hi)) / (hi - lo)


def bd_rate(
    anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float], test_psnr: Sequence[float]
) -> float:
    """Bjøntegaard delta rate in percent: average bitrate change of ``test`` at equal PSNR
    (negative = test needs fewer bits). Needs at least two points per curve and
    overlapping PSNR ranges."""
    ar, ap, tr, tp = (np.asarray(v, np.float64) for v in (anchor_rate, anchor_psnr, test_rate, test_psnr))
    if min(len(ar), len(tr)) < 2 or len(ar) != len(ap) or len(tr) != len(tp):
        raise ValueError("BD-rate needs at least two (rate, PSNR) points per curve")
    lo, hi = max(ap.min(), tp.min()), min(ap.max(), tp.max())
    if hi <= lo:
        raise ValueError("BD-rate needs curves whose PSNR ranges overlap")
    diff = _pchip_mean(tp, np.log10(tr), lo, hi) - _pchip_mean(ap, np.log10(ar), lo, hi)
    return (10.0**diff - 1.0) * 100.0


def bd_psnr(
    anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float], test_psnr: Sequence[float]
) -> float:
    """Bjøntegaard delta PSNR in dB: average quality change of ``test`` at equal rate."""
    ar, ap, tr, tp = (np.asarray(v, np.float64) for v in (anchor_rate, anchor_psnr, test_rate, test_psnr))
    la, lt = np.log10(ar), np.log10(tr)
    lo, hi = max(la.min(), lt.min()), min(la.max(), lt.max())
    if hi <= lo:
        raise ValueError("BD-PSNR needs curves whose rate ranges overlap")
    return _pchip_mean(lt, tp, lo, hi) - _pchip_mean(la, ap, lo, hi)


class QualityMeter:
    """Accumulates per-frame quality of a video against its reference, frame by frame."""

    def __init__(self, with_ms_ssim: bool = True):
        self.with_ms_ssim = with_ms_ssim
        self.psnr: list[float] = []
        self.psnr_y: list[float] = []
        self.ms_ssim: list[float] = []

    def add(self, reference: np.ndarray, distorted: np.ndarray) -> None:
        self.psnr.append(psnr(reference, distorted))
        self.psnr_y.append(psnr_y(reference, distorted))
        if self.with_ms_ssim and min(reference.shape[:2]) > 48:
            self.ms_ssim.append(ms_ssim(reference, distorted))

    def result(self) -> dict:
        return {
            "frames": len(self.psnr),
            "psnr": float(np.mean(self.psnr)) if self.psnr else None,
            "psnr_y": float(np.mean(self.psnr_y)) if self.psnr_y else None,
            "ms_ssim": float(np.mean(self.ms_ssim)) if self.ms_ssim else None,
        }
