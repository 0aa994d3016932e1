"""ESPCN (Shi et al., CVPR 2016): real-time sub-pixel convolutional upscaling.

The network is the paper's: 5x5 conv 64 -> tanh -> 3x3 conv 32 -> tanh -> 3x3 conv r^2
-> pixel shuffle, on luma (Y); chroma is upscaled bicubically by the caller. The picture
is extended once by edge replication, by the receptive radius, and the convolutions are
unpadded: every output, at the edges too, is then a function of one window of (real or
replicated) input pixels, which training reproduces exactly by cropping windows that
reach past the picture's edges (models/train_espcn.PatchSampler) and which independent
windows (tiles, STDO's patches) reproduce by padding the same way.

Training starts from a *bicubic initialisation* (see ``init_bicubic``): four of the
first layer's filters pass the LR picture on, shifted diagonally by one pixel, the tanh
layers keep them in their near-linear range, and the last layer's 3x3 kernels, which
together see the whole 5x5 neighbourhood of each LR pixel through those four copies,
hold the bicubic phase filters. The untrained network already equals bicubic upscaling
and training only has to learn the improvement; the other 60 and 28 channels of the
first two layers are free to learn it. The architecture and the inference cost stay
exactly the paper's.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

SCALES = (2, 3, 4)
# 5x5, 3x3, 3x3 convolutions: an output pixel sees 2 + 1 + 1 LR pixels on each side
RECEPTIVE_RADIUS = 4
# BT.601 studio-range luma of RGB in [0, 1] (MATLAB rgb2ycbcr), the SR evaluation standard
_Y = (65.481 / 255, 128.553 / 255, 24.966 / 255)
_CB = (-37.797 / 255, -74.203 / 255, 112.0 / 255)
_CR = (112.0 / 255, -93.786 / 255, -18.214 / 255)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """N,3,H,W RGB in [0, 1] -> N,3,H,W YCbCr (BT.601 studio range) in [0, 1]."""
    m = rgb.new_tensor([_Y, _CB, _CR])
    offset = rgb.new_tensor([16 / 255, 128 / 255, 128 / 255]).view(1, 3, 1, 1)
    return torch.einsum("ij,njhw->nihw", m, rgb) + offset


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`."""
    m = torch.linalg.inv(ycc.new_tensor([_Y, _CB, _CR]).double()).to(ycc.dtype)
    offset = ycc.new_tensor([16 / 255, 128 / 255, 128 / 255]).view(1, 3, 1, 1)
    return torch.einsum("ij,njhw->nihw", m, ycc - offset)


def bicubic_resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bicubic resize (Keys a = -0.5, antialiased when shrinking: MATLAB ``imresize`` /
    PIL behaviour). The one kernel used everywhere: making LR training data, the
    evaluation's LR inputs, the bicubic baseline and the chroma upscale."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)


def pad_edges(x: torch.Tensor) -> torch.Tensor:
    """N,C,h,w float -> N,C,h+2R,w+2R: the picture extended by edge replication by the
    receptive radius R, the way ESPCN sees what lies beyond a picture's edges."""
    r = RECEPTIVE_RADIUS
    return F.pad(x, (r, r, r, r), mode="replicate")


def _cubic(t: float, a: float = -0.5) -> float:
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def bicubic_phase_filters(scale: int) -> torch.Tensor:
    """scale^2 x 5 x 5 filters: filter (py, px) computes the output sub-pixel (py, px) of
    bicubic upscaling from the 5x5 LR neighbourhood centred on its LR pixel."""
    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for p in range(scale):
        d = (p + 0.5) / scale - 0.5  # sub-pixel centre relative to the LR pixel centre
        for j in range(-2, 3):
            taps[p, j + 2] = _cubic(d - j)
        taps[p] /= taps[p].sum()
    return torch.einsum("ai,bj->abij", taps, taps).reshape(scale * scale, 5, 5)


class ESPCN(nn.Module):
    """ESPCN on one channel in [0, 1]; ``forward`` maps N,1,h,w to N,1,h*r,w*r."""

    def __init__(self, scale: int, channels: int = 1, features: tuple[int, int] = (64, 32)):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale}")
        self.scale, self.channels = scale, channels
        f1, f2 = features
        self.conv1 = nn.Conv2d(channels, f1, 5)
        self.conv2 = nn.Conv2d(f1, f2, 3)
        self.conv3 = nn.Conv2d(f2, channels * scale * scale, 3)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.interior(pad_edges(x))

    def interior(self, x: torch.Tensor) -> torch.Tensor:
        """The network without the edge padding: N,C,h,w -> N,C,(h-2R)*r,(w-2R)*r for the
        receptive radius R, the outputs of the window's inner pixels."""
        h = torch.tanh(self.conv1(x - 0.5))
        h = torch.tanh(self.conv2(h))
        return self.shuffle(self.conv3(h)) + 0.5

    # the four pass-through copies of the LR picture are shifted by these (dy, dx); with
    # the 3x3 reach of the last layer on each they cover offsets -2..2 in both directions
    PASSTHROUGH_SHIFTS = ((-1, -1), (-1, 1), (1, -1), (1, 1))

    @torch.no_grad()
    def init_bicubic(self, seed: int = 0, gain: float = 0.1, noise: float = 1e-3, compact: bool = True) -> "ESPCN":
        """Make the untrained network compute bicubic upscaling (see the module docstring).

        ``compact``: carry the picture through four shifted copies (above); False: one
        channel per sub-pixel phase, each holding that phase's filter, the initialisation
        used until 2026-12-04. That one dedicates r^2 of the second layer's 32 channels to
        the pass-through for good (training leaves them as they are: measured on the ×3/×4
        weights it produced), half of them at ×4. ``gain`` keeps the signals in tanh's
        near-linear range (|x| <= 0.05, where tanh deviates from linear by < 0.1 %); the
        remaining filters start small and random so they can learn the detail bicubic misses."""
        if self.channels != 1:
            raise ValueError("bicubic initialisation is defined for the single-channel (Y) model")
        r2 = self.scale**2
        phases = bicubic_phase_filters(self.scale).float()  # r2 x 5 x 5, offsets -2..2
        gen = torch.Generator().manual_seed(seed)
        for conv in (self.conv1, self.conv2, self.conv3):
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(1.0 / fan_in))
            conv.bias.zero_()
        self.conv3.weight.mul_(noise)  # the new detail starts near zero
        k = len(self.PASSTHROUGH_SHIFTS) if compact else r2
        self.conv2.weight[:, :k] *= noise  # learned paths ignore the pass-through at first
        self.conv2.weight[:k] = 0
        for c in range(k):
            self.conv2.weight[c, c, 1, 1] = 1.0  # tanh(gain*x) -> tanh(tanh(gain*x)), nearly gain*x
        # the last layer undoes the two tanh-scaled gains: tanh(tanh(g*x)) ~ g*x
        self.conv1.weight[:k] = 0
        self.conv3.weight[:, :k] = 0
        if not compact:
            self.conv1.weight[:k, 0] = phases * gain
            for p in range(r2):
                self.conv3.weight[p, p, 1, 1] = 1.0 / gain
            return self
        for c, (dy, dx) in enumerate(self.PASSTHROUGH_SHIFTS):
            self.conv1.weight[c, 0, 2 + dy, 2 + dx] = gain
            # tap (a, b) of the last layer on copy c reads offset (a - 1 + dy, b - 1 + dx);
            # offset 0 is reachable from two copies: the ones shifted by -1 take it
            rows = [a for a in range(3) if dy < 0 or a - 1 + dy > 0]
            cols = [b for b in range(3) if dx < 0 or b - 1 + dx > 0]
            for a in rows:
                for b in cols:
                    self.conv3.weight[:, c, a, b] = phases[:, 2 + a - 1 + dy, 2 + b - 1 + dx] / gain
        return self


STUDIO_GAIN, STUDIO_OFFSET = 219.0 / 255.0, 16.0 / 255.0  # studio Y = offset + gain * full-range Y
# the network's input x (studio Y in 0..1) = offset + gain * u / 255 for luma u of each range
LUMA_RANGES = {"full": (STUDIO_GAIN, STUDIO_OFFSET), "studio": (1.0, 0.0)}


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Luma in 0..255 (float) to uint8, rounded."""
    return x.clamp(0, 255).add(0.5).to(torch.uint8)


# fp64 is for decoders that must give the same pixels on every machine: two kernel paths'
# sums differ by ~1e-13 of a value, which moves a rounded pixel only if it lies that close
# to a half-integer (see docs/FORMAT.md, "Arithmetic")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}


class FastESPCN(nn.Module):
    """Inference form of a trained ESPCN, computing the same function with less work.

    Input and output are luma in 0..255: full range (what OpenCV's YCrCb gives) or, with
    ``luma_range="studio"``, the 16..235 of a video's Y plane, which is what the network
    was trained on. The range conversion and the +-0.5 centring are folded into the first
    and last convolutions (exact: replicate padding commutes with affine maps), and the
    layers see luma centred on 128: with ``bf16`` every layer runs in bfloat16, whose 8-bit
    mantissa then rounds the input and output values at most to half a level (a
    quarter below 64 levels from mid-grey) instead of a whole level near white.
    """

    CENTRE = 128.0

    def __init__(self, model: ESPCN, precision: str = "fp32", luma_range: str = "full"):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}")
        if luma_range not in LUMA_RANGES:
            raise ValueError(f"luma_range must be one of {tuple(LUMA_RANGES)}")
        gain, offset = LUMA_RANGES[luma_range]
        self.scale = model.scale
        self.dtype = PRECISIONS[precision]
        self.conv1 = nn.Conv2d(1, model.conv1.out_channels, 5)
        self.conv2 = copy.deepcopy(model.conv2)  # converted below; the trained model stays as it is
        self.conv3 = nn.Conv2d(model.conv3.in_channels, model.conv3.out_channels, 3)
        self.shuffle = nn.PixelShuffle(model.scale)
        with torch.no_grad():
            # conv1(x - 0.5) with x = offset + gain * (v + CENTRE) / 255, v the centred input
            w1 = model.conv1.weight.double()
            self.conv1.weight.copy_(w1 * gain / 255.0)
            shift = offset + gain * self.CENTRE / 255.0 - 0.5
            self.conv1.bias.copy_(model.conv1.bias.double() + shift * w1.sum(dim=(1, 2, 3)))
            # the centred output: 255 * (conv3(h) + 0.5 - offset) / gain - CENTRE
            k = 255.0 / gain
            self.conv3.weight.copy_(model.conv3.weight.double() * k)
            self.conv3.bias.copy_((model.conv3.bias.double() + 0.5 - offset) * k - self.CENTRE)
        self.to(self.dtype)
        self.eval()

    def subpixels(self, u: torch.Tensor) -> torch.Tensor:
        """N,1,h,w -> N,r^2,h,w (float32, float64 at fp64): the output before the pixel
        shuffle, which callers can do more cheaply on the final uint8 values."""
        h = torch.tanh(self.conv2(torch.tanh(self.conv1((pad_edges(u) - self.CENTRE).to(self.dtype)))))
        return self.conv3(h).to(torch.promote_types(self.dtype, torch.float32)) + self.CENTRE

    def subpixels_u8(self, y: torch.Tensor) -> torch.Tensor:
        """uint8 luma N,1,h,w -> N,r^2,h,w uint8, rounded (one compiled graph: no float
        copies of the output)."""
        return to_uint8(self.subpixels(y.float()))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.subpixels(u))
