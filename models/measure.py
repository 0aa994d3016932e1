"""PSNR, the one definition: ``ncodec.video.metrics`` measures frames with it and the
training recipes measure tensors with it (this module sits below both)."""

from __future__ import annotations

import math

PSNR_CAP = 100.0  # dB, for identical pictures


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    """PSNR in dB of a mean squared error at signal peak ``peak``, capped at PSNR_CAP."""
    return PSNR_CAP if mse <= 0 else min(PSNR_CAP, 10.0 * math.log10(peak * peak / mse))


def psnr(a, b, peak: float = 1.0) -> float:
    """PSNR of two tensors of the same shape, over every value."""
    return psnr_from_mse(float(((a - b) ** 2).mean().detach()), peak)
