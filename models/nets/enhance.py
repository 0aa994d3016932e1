"""The enhancement network of the STDO video codec: it restores a frame decoded from a
classical base layer (SVT-AV1, x265, x264), on the decoded 4:2:0 planes themselves.

Layout: luma is pixel-unshuffled by 2 into four planes, which with Cb and Cr gives six
planes at chroma resolution; a seventh, constant plane carries the base layer's rate
(4 x crf), so one network serves every rate. A plain stack of 3x3 convolutions with
ReLU works at that half resolution (a quarter of the cost per output pixel of a
full-resolution network of the same width, and a receptive field twice as wide in
pixels), and its last layer, initialised to zero, predicts a correction added to the six
planes: the untrained network is the identity.

With ``quarter`` > 0 the middle of the stack is a small U-Net: a stride-2 convolution
takes the first layer's features to quarter resolution at twice the width, ``quarter``
- 2 convolutions work there, a 1x1 convolution and a pixel shuffle bring them back, and
they are concatenated with the first layer's features (the skip) before the remaining
half-resolution layers. A quarter-resolution layer of twice the width costs what a
half-resolution one does, with four times the parameters and twice the reach.

With ``luma`` > 0 a second branch works on luma at full resolution: the decoded Y plane
and the rate plane, less 128 (centred on zero, and padded with mid-grey), through
``luma_layers`` 3x3 convolutions of ``luma`` channels to one correction per pixel, added
to the luma phases of the packed correction. The packed stack sees luma
only as four phases at half resolution and, trained on decoded video, learns chroma and
no luma (docs/BENCHMARKS.md); the branch spends its multiply-adds where luma's error is.

With ``scale`` s (2, 3 or 4) the network restores and upscales a base layer coded at 1/s
of the picture's size: its last layer gives s^2 corrections per position and plane,
pixel-shuffled to the planes of the full-size picture, and they are added to the decoded
planes upsampled by a fixed bilinear filter (exact in integers). It works at 1/s^2 of
the output's positions, so the same decoding time buys a network s^2 times wider.

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
    quarter: int = 0  # convolutions of the U-Net body, its down and up ones included (0: none)
    scale: int = 1  # s > 1: restores and upscales a base layer coded at 1/s size
    luma: int = 0  # channels of the full-resolution luma branch (0: none; scale 1 only)
    luma_layers: int = 5  # its convolutions, the input and output ones included

    def __post_init__(self):
        if self.layers < 2 or self.channels < 1:
            raise ValueError("an enhancer has at least two layers and one channel")
        if self.scale not in (1, 2, 3, 4):
            raise ValueError("an enhancer's scale is 1, 2, 3 or 4")
        if self.quarter and not (2 <= self.quarter <= self.layers - 3):
            raise ValueError("a U-Net body has 2 or more convolutions and leaves 3 at half resolution")
        if self.luma and (self.scale != 1 or self.luma_layers < 2):
            raise ValueError("a luma branch needs scale 1 and at least two layers")
        widest = max(c.inputs for c in conv_plan(self) + luma_plan(self))
        if 9 * widest * WEIGHT_LEVELS * ACT_LEVELS >= EXACT_LIMIT:
            raise ValueError(f"{self.channels} channels overflow exact float32 sums")

    def to_json(self) -> dict:
        # weights before "quarter", "scale" and "luma" existed have none: write them only where they are in use
        out = {k: v for k, v in asdict(self).items() if k not in ("quarter", "scale") or v not in (0, 1)}
        return out if self.luma else {k: v for k, v in out.items() if k not in ("luma", "luma_layers")}

    @property
    def hidden(self) -> int:
        """Hidden layers (activation steps) of both branches: the packed one's first."""
        return self.layers - 1 + (self.luma_layers - 1 if self.luma else 0)


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of the network, in the order they run."""

    inputs: int
    outputs: int
    kernel: int = 3
    stride: int = 1
    shuffle: int = 0  # a pixel shuffle by this factor follows (the U-Net's way back up, the upscaling)
    skip: bool = False  # the first layer's features are concatenated before it


def conv_plan(cfg: EnhanceConfig) -> list[ConvSpec]:
    c, q = cfg.channels, cfg.quarter
    out = ConvSpec(c, PLANES * cfg.scale**2, shuffle=cfg.scale if cfg.scale > 1 else 0)
    if not q:
        return [ConvSpec(PLANES + 1, c)] + [ConvSpec(c, c)] * (cfg.layers - 2) + [out]
    half = cfg.layers - 1 - q  # after the skip: 2c -> c, c -> c ..., c -> 6
    return (
        [ConvSpec(PLANES + 1, c), ConvSpec(c, 2 * c, stride=2)]
        + [ConvSpec(2 * c, 2 * c)] * (q - 2)
        + [ConvSpec(2 * c, 4 * c, kernel=1, shuffle=2)]
        + [ConvSpec(2 * c, c, skip=True)]
        + [ConvSpec(c, c)] * (half - 2)
        + [out]
    )


def luma_plan(cfg: EnhanceConfig) -> list[ConvSpec]:
    """The full-resolution luma branch (empty without one): Y and the rate plane in, one
    correction out. Its convolutions follow the packed plan's in the network's order."""
    if not cfg.luma:
        return []
    return [ConvSpec(2, cfg.luma)] + [ConvSpec(cfg.luma, cfg.luma)] * (cfg.luma_layers - 2) + [ConvSpec(cfg.luma, 1)]


LUMA_CENTRE = 128  # subtracted from the luma branch's inputs, in pixels: its padding is mid-grey in every form


def run_plan(
    plan: list[ConvSpec], x: torch.Tensor, conv, activate, first_conv: int = 0, first_hidden: int = 0
) -> torch.Tensor:
    """Walk one branch of the network: ``conv(i, x)`` applies convolution i, ``activate(i,
    x)`` the activation after hidden layer i, both counted over the whole network (the luma
    branch's are numbered after the packed plan's: ``first_conv``, ``first_hidden``). The
    float, calibrating and integer forms share it."""
    h, w = x.shape[-2:]
    skip = None
    for i, spec in enumerate(plan):
        if spec.skip:
            x = torch.cat([skip, x[..., :h, :w]], 1)  # odd sides: the way up gives one row/column more
        x = conv(first_conv + i, x)
        if i < len(plan) - 1:
            x = activate(first_hidden + i, x)
        if spec.shuffle:
            x = F.pixel_shuffle(x, spec.shuffle)
        if i == 0:
            skip = x
    return x


def shared_steps(plan: list[ConvSpec]) -> list[tuple[int, int]]:
    """Pairs of hidden layers whose outputs are concatenated, so share one activation step
    (the next layer's integer input has a single step)."""
    return [(0, i - 1) for i, spec in enumerate(plan) if spec.skip]


def pack(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """N,H,W luma and N,H/2,W/2 chroma -> N,6,H/2,W/2 (H and W even)."""
    return torch.cat([F.pixel_unshuffle(y[:, None], 2), u[:, None], v[:, None]], 1)


def unpack(planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pack`."""
    return F.pixel_shuffle(planes[:, :4], 2)[:, 0], planes[:, 4], planes[:, 5]


def upsample(planes: torch.Tensor, scale: int) -> torch.Tensor:
    """Packed planes of a picture ``scale`` times larger: each plane upsampled by the
    bilinear filter (sample centres aligned, edges repeated; for x2 the taps 3/4, 1/4 per
    axis), rounded half to even. Exact and the same on every machine: the weights are
    integers over 2 * scale per axis, so the sums are integers below 2^14, and one IEEE
    division by (2 * scale)^2 (correctly rounded) gives the result."""
    if scale == 1:
        return planes

    def grow(x: torch.Tensor, dim: int) -> torch.Tensor:
        dim %= x.ndim
        n = x.shape[dim]
        padded = torch.cat([x.narrow(dim, 0, 1), x, x.narrow(dim, n - 1, 1)], dim)
        before, here, after = (padded.narrow(dim, k, n) for k in range(3))
        phases = []
        for p in range(scale):
            t = 2 * p + 1 - scale  # the output sample's offset from the input's, in 1/(2 scale)
            phases.append(-t * before + (2 * scale + t) * here if t < 0 else (2 * scale - t) * here + t * after)
        return torch.stack(phases, dim + 1).flatten(dim, dim + 1)

    y, u, v = (grow(grow(p.float(), -2), -1) for p in unpack(planes))
    return torch.round(pack(y, u, v) / (2 * scale) ** 2).to(planes.dtype)


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
        self.plan, self.luma_plan = conv_plan(cfg), luma_plan(cfg)
        self.convs = nn.ModuleList(
            nn.Conv2d(c.inputs, c.outputs, c.kernel, c.stride, padding=c.kernel // 2)
            for c in self.plan + self.luma_plan
        )
        for last in {len(self.plan) - 1, len(self.convs) - 1}:  # each branch's output layer
            nn.init.zeros_(self.convs[last].weight)
            nn.init.zeros_(self.convs[last].bias)
        # activation step after each hidden layer, in input units (pixels / 255); set by calibrate()
        self.register_buffer("act_step", torch.full((cfg.hidden,), 4.0 / ACT_LEVELS))
        self.quantised = False

    def forward(self, planes: torch.Tensor, crf: torch.Tensor | int) -> torch.Tensor:
        """N,6,h,w planes in 0..255 (float) -> restored planes, ``scale`` times larger, same
        units (not rounded)."""

        def conv(i, x):
            c = self.convs[i]
            w = c.weight
            if self.quantised:
                w = _fake_quant(w, weight_steps(w).view(-1, 1, 1, 1), -WEIGHT_LEVELS, WEIGHT_LEVELS)
            return F.conv2d(x, w, c.bias, c.stride, c.padding)

        def activate(i, x):
            x = F.relu(x)
            return _fake_quant(x, self.act_step[i], 0, ACT_LEVELS) if self.quantised else x

        return upsample(planes, self.cfg.scale) + 255 * self.correction(planes, crf, conv, activate)

    def correction(self, planes: torch.Tensor, crf, conv, activate) -> torch.Tensor:
        """Both branches' correction of the packed planes, in pixels / 255."""
        x = run_plan(self.plan, torch.cat([planes, rate_plane(planes, crf)], 1) / 255, conv, activate)
        if not self.luma_plan:
            return x
        y = unpack(planes)[0][:, None]
        luma_in = (torch.cat([y, rate_plane(y, crf)], 1) - LUMA_CENTRE) / 255
        luma = run_plan(self.luma_plan, luma_in, conv, activate, len(self.plan), len(self.plan) - 1)
        return torch.cat([x[:, :4] + F.pixel_unshuffle(luma, 2), x[:, 4:]], 1)

    @torch.no_grad()
    def calibrate(self, planes: torch.Tensor, crf: torch.Tensor, quantile: float = 0.9999) -> None:
        """Set each hidden layer's activation step from a batch: its ``quantile`` maps to 255."""

        def activate(i, x):
            x = F.relu(x)
            sample = x.flatten()[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(i))[: 1 << 20]]
            self.act_step[i] = torch.quantile(sample, quantile).clamp_min(1e-4) / ACT_LEVELS
            return x

        self.correction(planes, crf, lambda i, x: self.convs[i](x), activate)
        for a, b in shared_steps(self.plan):
            self.act_step[a] = self.act_step[b] = torch.maximum(self.act_step[a], self.act_step[b])


class IntegerEnhancer:
    """The decoder's network: the Enhancer's quantised form in exact float32 integers.
    The same uint8 planes give the same uint8 planes on every machine."""

    def __init__(self, model: Enhancer, bias_delta: torch.Tensor | None = None):
        """``bias_delta``: integers in units of DELTA_STEP, one per bias of every layer in
        order (:func:`bias_count`), added to the biases: a segment's overfitted update."""
        model = model.float()
        self.plan, self.luma_plan, self.scale = model.plan, model.luma_plan, model.cfg.scale
        packed = len(self.plan)

        def hidden(conv: int) -> int:  # the activation step after a convolution (the packed output has none)
            return conv - (conv >= packed)

        biases = [conv.bias.detach().clone() for conv in model.convs]
        if bias_delta is not None:
            biases = [b + d.float() * DELTA_STEP for b, d in zip(biases, bias_delta.split([len(b) for b in biases]))]
        last = {packed - 1, len(model.convs) - 1}
        self.layers = []
        for i, conv in enumerate(model.convs):
            w_step = weight_steps(conv.weight)
            w_int = torch.clamp(torch.round(conv.weight.detach() / w_step.view(-1, 1, 1, 1)), -127, 127)
            step_in = torch.tensor(1.0 / 255) if i in (0, packed) else model.act_step[hidden(i - 1)]  # pixels in
            scale = (w_step * step_in).view(1, -1, 1, 1)  # one float32 product per channel
            bias = biases[i].view(1, -1, 1, 1)
            if i not in last:  # straight to the next layer's integers: (acc * s + b) / step
                scale, bias = scale / model.act_step[hidden(i)], bias / model.act_step[hidden(i)]
            else:  # the correction, in pixel units
                scale, bias = scale * 255, bias * 255
            w_int = w_int.contiguous(memory_format=torch.channels_last)
            self.layers.append((w_int, scale, bias, conv.stride, conv.padding))

    @torch.inference_mode()
    def __call__(self, planes: torch.Tensor, crf: int) -> torch.Tensor:
        """N,6,h,w uint8 -> N,6,h*scale,w*scale uint8."""
        base = planes.float()

        def conv(i, x):
            w_int, scale, bias, stride, padding = self.layers[i]
            x = F.conv2d(x.contiguous(memory_format=torch.channels_last), w_int, None, stride, padding)  # exact
            x = torch.mul(x, scale, out=x)  # then separate IEEE operations, never fused
            return torch.add(x, bias, out=x)

        def activate(i, x):
            return torch.clamp(torch.round(x, out=x), 0, ACT_LEVELS, out=x)

        x = run_plan(self.plan, torch.cat([base, rate_plane(base, crf)], 1), conv, activate)
        if self.luma_plan:
            y = unpack(base)[0][:, None]
            packed = len(self.plan)
            luma_in = torch.cat([y, rate_plane(y, crf)], 1) - LUMA_CENTRE  # integers in -128..127
            luma = run_plan(self.luma_plan, luma_in, conv, activate, packed, packed - 1)
            x[:, :4] += F.pixel_unshuffle(luma, 2)
        x = torch.round(torch.add(x, upsample(base, self.scale), out=x), out=x)
        return torch.clamp(x, 0, 255, out=x).to(torch.uint8).contiguous()


def bias_count(cfg: EnhanceConfig) -> int:
    """How many biases the network has (the length of a bias update)."""
    return sum(c.outputs for c in conv_plan(cfg) + luma_plan(cfg))
