"""The enhancement network of the STDO video codec: it restores a frame decoded from a
classical base layer (SVT-AV1, x265, x264), on the decoded 4:2:0 planes themselves.

Layout: luma is pixel-unshuffled by 2 into four planes, which with Cb and Cr gives six
planes at chroma resolution; a seventh, constant plane carries the base layer's rate
(4 x crf), so one network serves every rate. A plain stack of 3x3 convolutions with
ReLU works at that half resolution (a quarter of the cost per output pixel of a
full-resolution network of the same width, and a receptive field twice as wide in
pixels), and its last layer, initialised to zero, predicts a correction added to the six
planes: the untrained network is the identity.

Fixed arithmetic. The decoder must give the same pixels on every machine, so inference
runs in integers carried in float32 (``IntegerEnhancer``): weights are int8 per output
channel, activations uint8 with a per-layer step, and every convolution sum is an
integer below 2^24, which float32 represents exactly whatever order a kernel adds in
(SIMD width, blocking, threads). Scales and biases are applied as separate IEEE
multiplications and additions, never fused. Training ends with a quantisation-aware
phase (``Enhancer.quantised``) so that the float network it optimises is the integer
one the decoder runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

PLANES = 6  # four luma phases, Cb, Cr
RATE_SCALE = 4  # the rate plane holds 4 x crf (0..252 for AV1's 0..63): one uint8 input like the pixels
ACT_LEVELS = 255  # uint8 activations
WEIGHT_LEVELS = 127  # int8 weights, symmetric
EXACT_LIMIT = 1 << 24  # float32 holds every integer below this exactly
# Per-sample weights of the Y, Cb, Cr errors in RGB squared error (BT.601/709 studio range,
# chroma samples cover four pixels): training minimises what RGB PSNR measures.
PLANE_WEIGHTS = (1.0, 1.04, 0.79)
DELTA_STEP = 2.0**-12  # grid of a segment's bias update (a power of two: exact in float32)


@dataclass(frozen=True)
class EnhanceConfig:
    channels: int = 32
    layers: int = 6  # convolutions, the input and output ones included

    def __post_init__(self):
        if self.layers < 2 or self.channels < 1:
            raise ValueError("an enhancer has at least two layers and one channel")
        widest = max(self.channels, PLANES + 1)
        if 9 * widest * WEIGHT_LEVELS * ACT_LEVELS >= EXACT_LIMIT:
            raise ValueError(f"{self.channels} channels overflow exact float32 sums")

    def to_json(self) -> dict:
        return asdict(self)


def pack(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """N,H,W luma and N,H/2,W/2 chroma -> N,6,H/2,W/2 (H and W even)."""
    return torch.cat([F.pixel_unshuffle(y[:, None], 2), u[:, None], v[:, None]], 1)


def unpack(planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pack`."""
    return F.pixel_shuffle(planes[:, :4], 2)[:, 0], planes[:, 4], planes[:, 5]


def rate_plane(planes: torch.Tensor, crf: torch.Tensor | int) -> torch.Tensor:
    """N,1,h,w plane of RATE_SCALE * crf, in the units of ``planes`` (0..255)."""
    crf = torch.as_tensor(crf, dtype=planes.dtype).reshape(-1, 1, 1, 1)
    return (crf * RATE_SCALE).expand(planes.shape[0], 1, *planes.shape[2:])


def _fake_quant(x: torch.Tensor, step: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Round to the grid ``step`` within [low, high] steps, with a straight-through gradient."""
    q = torch.clamp(torch.round(x / step), low, high) * step
    return x + (q - x).detach()


def weight_steps(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel int8 step of a convolution's weights."""
    return weight.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-8) / WEIGHT_LEVELS


class Enhancer(nn.Module):
    """The float network that training optimises; ``quantised`` switches it to the
    integer network's rounding (weights int8, activations uint8 at ``act_step``)."""

    def __init__(self, cfg: EnhanceConfig = EnhanceConfig()):
        super().__init__()
        self.cfg = cfg
        widths = [PLANES + 1] + [cfg.channels] * (cfg.layers - 1) + [PLANES]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths, widths[1:]))
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)
        # activation step after each hidden layer, in input units (pixels / 255); set by calibrate()
        self.register_buffer("act_step", torch.full((cfg.layers - 1,), 4.0 / ACT_LEVELS))
        self.quantised = False

    def forward(self, planes: torch.Tensor, crf: torch.Tensor | int) -> torch.Tensor:
        """N,6,h,w planes in 0..255 (float) -> restored planes, same units (not rounded)."""
        x = torch.cat([planes, rate_plane(planes, crf)], 1) / 255
        for i, conv in enumerate(self.convs):
            w = conv.weight
            if self.quantised:
                w = _fake_quant(w, weight_steps(w).view(-1, 1, 1, 1), -WEIGHT_LEVELS, WEIGHT_LEVELS)
            x = F.conv2d(x, w, conv.bias, padding=1)
            if i < len(self.convs) - 1:
                x = F.relu(x)
                if self.quantised:
                    x = _fake_quant(x, self.act_step[i], 0, ACT_LEVELS)
        return planes + 255 * x

    @torch.no_grad()
    def calibrate(self, planes: torch.Tensor, crf: torch.Tensor, quantile: float = 0.9999) -> None:
        """Set each hidden layer's activation step from a batch: its ``quantile`` maps to 255."""
        x = torch.cat([planes, rate_plane(planes, crf)], 1) / 255
        for i, conv in enumerate(self.convs[:-1]):
            x = F.relu(conv(x))
            sample = x.flatten()[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(i))[: 1 << 20]]
            self.act_step[i] = torch.quantile(sample, quantile).clamp_min(1e-4) / ACT_LEVELS


class IntegerEnhancer:
    """The decoder's network: the Enhancer's quantised form in exact float32 integers.
    The same uint8 planes give the same uint8 planes on every machine."""

    def __init__(self, model: Enhancer, bias_delta: torch.Tensor | None = None):
        """``bias_delta``: integers in units of DELTA_STEP, one per bias of every layer in
        order (:func:`bias_count`), added to the biases: a segment's overfitted update."""
        model = model.float()
        steps_in = [torch.tensor(1.0 / 255)] + [s for s in model.act_step]
        biases = [conv.bias.detach().clone() for conv in model.convs]
        if bias_delta is not None:
            biases = [b + d.float() * DELTA_STEP for b, d in zip(biases, bias_delta.split([len(b) for b in biases]))]
        self.layers = []
        for i, conv in enumerate(model.convs):
            w_step = weight_steps(conv.weight)
            w_int = torch.clamp(torch.round(conv.weight.detach() / w_step.view(-1, 1, 1, 1)), -127, 127)
            scale = (w_step * steps_in[i]).view(1, -1, 1, 1)  # one float32 product per channel
            bias = biases[i].view(1, -1, 1, 1)
            if i < len(model.convs) - 1:  # straight to the next layer's integers: (acc * s + b) / step
                scale, bias = scale / model.act_step[i], bias / model.act_step[i]
            else:  # the correction, in pixel units
                scale, bias = scale * 255, bias * 255
            self.layers.append((w_int.contiguous(memory_format=torch.channels_last), scale, bias))

    @torch.inference_mode()
    def __call__(self, planes: torch.Tensor, crf: int) -> torch.Tensor:
        """N,6,h,w uint8 -> N,6,h,w uint8."""
        base = planes.float()
        x = torch.cat([base, rate_plane(base, crf)], 1).contiguous(memory_format=torch.channels_last)
        for i, (w_int, scale, bias) in enumerate(self.layers):
            x = F.conv2d(x, w_int, padding=1)  # exact: integers below 2^24
            x = torch.mul(x, scale, out=x)  # then separate IEEE operations, never fused
            x = torch.add(x, bias, out=x)
            if i < len(self.layers) - 1:
                x = torch.clamp(torch.round(x, out=x), 0, ACT_LEVELS, out=x)
        x = torch.round(torch.add(x, base, out=x), out=x)
        return torch.clamp(x, 0, 255, out=x).to(torch.uint8).contiguous()


def bias_count(cfg: EnhanceConfig) -> int:
    """How many biases the network has (the length of a bias update)."""
    return cfg.channels * (cfg.layers - 1) + PLANES
