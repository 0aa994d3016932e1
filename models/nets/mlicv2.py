"""MLICv2-style learned image codec (Jiang et al., "MLICv2: Enhanced Multi-Reference
Entropy Modeling for Learned Image Compression"), sized by a config.

Transforms: four stride-2 stages each way (x16), every stage followed by MetaFormer
blocks whose token mixer is a depthwise convolution (norm -> token mixing -> residual,
norm -> MLP -> residual). Hyperprior: z = h_a(y) (x4 more), coded by a factorized
EntropyBottleneck; h_s(z) gives the hyper features.

Entropy model of y, which is split into ``slices`` channel slices; slice i is coded in
two checkerboard passes, anchors first, then non-anchors, each with a Gaussian
(mean, scale) from a parameter network fed by:
  - the hyper features (for slice 0 also a *hyperprior-guided global correlation*:
    linear attention whose queries and keys come from the hyper features),
  - channel context: the slices already decoded,
  - local spatial context (non-anchor pass only): a 5x5 convolution over the decoded
    anchors of this slice,
  - global intra-slice context (non-anchor pass): linear attention that applies the
    correlation measured on the previous slice (queries from all of it, keys from its
    anchors) to this slice's decoded anchors,
  - global inter-slice context: linear attention from this slice's channel context to
    the previous slices,
with a positional embedding added to the attention queries/keys, channel reweighting
(squeeze-and-excitation) of the fused context, and latent residual prediction (LRP)
correcting each decoded slice before synthesis.

Variable rate from one model: gain units (Cui et al., "Asymmetric Gained Deep Image
Compression") scale y channel-wise by a learned vector per rate level before
quantisation and undo it after (and likewise z), so one training run, with a random
level per batch and its own lambda, serves every quality; levels in between
interpolate the vectors geometrically. On 2 CPU cores one run is all there is time for,
which is why this beats training four separate models here.

Only tensors in, tensors out: the bitstream (two rANS passes per slice) is codec/mlic.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_BOUND = 1e-9  # compressai's default lower bound on likelihoods


@dataclass(frozen=True)
class MLICConfig:
    N: int = 192  # transform channels
    M: int = 320  # latent channels
    slices: int = 10
    depth: int = 2  # MetaFormer blocks after each transform stage
    hyper: int = 192  # hyperprior channels
    attn: int = 64  # width of the linear-attention projections
    levels: int = 4  # rate points of the one model (gain units), see MLICv2.LAMBDAS
    half_res_blocks: bool = True  # MetaFormer blocks at x/2 too (half of a CPU training step)
    dct_start: bool = False  # linear block-DCT path beside the transforms (warm start, see BlockDCT)
    context: int = 0  # hyper-feature channels h_s gives the entropy model; 0: 2 * M (the paper's)

    def __post_init__(self):
        if self.M % self.slices:
            raise ValueError("M must be a multiple of slices")

    @property
    def slice_channels(self) -> int:
        return self.M // self.slices

    @property
    def context_channels(self) -> int:
        return self.context or 2 * self.M

    def to_json(self) -> dict:
        return asdict(self)


PAPER = MLICConfig()  # the paper's configuration
SMALL = MLICConfig(
    N=64, M=128, slices=4, depth=1, hyper=64, attn=32, half_res_blocks=False, dct_start=True
)  # trainable on 2 CPU cores
# SMALL with a wider latent (more slices of the same size, the same hyper features): its
# transform's reconstruction ceiling is higher; train_mlic.widen grows SMALL weights into it
WIDE = replace(SMALL, M=192, slices=6, context=SMALL.context_channels)
# WIDE with 64 more latent channels, the shipped configuration since 2026-12-05: its best
# level reaches 1-1.7 dB higher (train_mlic.widen grows WIDE weights into it)
WIDER = replace(WIDE, M=256, slices=8)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each position. Not over space as well (PoolFormer's
    GroupNorm(1)): a codec must treat a 128-px training crop and a 6000-px photo alike,
    and a decoder that works in tiles must not depend on whole-picture statistics."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        centred = x - mean
        x = centred * torch.rsqrt(centred.pow(2).mean(1, keepdim=True) + 1e-6)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class MetaFormerBlock(nn.Module):
    """norm -> depthwise-conv token mixer -> residual; norm -> 2x MLP (GELU) -> residual."""

    def __init__(self, dim: int, kernel: int = 7):
        super().__init__()
        self.norm1, self.norm2 = LayerNorm2d(dim), LayerNorm2d(dim)
        self.mixer = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.mlp = nn.Sequential(nn.Conv2d(dim, 2 * dim, 1), nn.GELU(), nn.Conv2d(2 * dim, dim, 1))

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _down(cin: int, cout: int) -> nn.Module:
    return nn.Conv2d(cin, cout, 3, stride=2, padding=1)


def _up(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout * 4, 3, padding=1), nn.PixelShuffle(2))


def _stage(dim: int, depth: int) -> list[nn.Module]:
    return [MetaFormerBlock(dim) for _ in range(depth)]


class BlockDCT(nn.Module):
    """A learnable linear transform pair initialised as a classical transform coder: an
    orthonormal colour transform, then the 16x16 block DCT, keeping the ``m`` lowest
    frequencies (3/4 of them luma), scaled so that quantisation step 1 is 10/255 of
    the pixel range at the finest rate level. Beside the nonlinear transforms (whose
    last layers start at zero) it makes an untrained codec a working block-DCT coder,
    so the few thousand steps a CPU affords start near JPEG instead of from noise."""

    BLOCK = 16
    SCALE = 25.5

    def __init__(self, m: int):
        super().__init__()
        b = self.BLOCK
        self.analysis = nn.Conv2d(3 * b * b, m, 1, bias=False)
        self.synthesis = nn.Conv2d(m, 3 * b * b, 1, bias=False)
        n = torch.arange(b, dtype=torch.float64)
        dct = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * b)) * math.sqrt(2 / b)
        dct[0] /= math.sqrt(2)  # orthonormal DCT-II rows: frequency u, sample n
        colour = torch.tensor([[1, 1, 1], [1, 0, -1], [1, -2, 1]], dtype=torch.float64)
        colour /= colour.norm(dim=1, keepdim=True)  # luma and two chroma axes, orthonormal
        freqs = sorted(((u, v) for u in range(b) for v in range(b)), key=lambda f: (f[0] + f[1], max(f)))
        luma = m - 2 * (m // 8)
        picks = [(0, f) for f in freqs[:luma]] + [(c, f) for c in (1, 2) for f in freqs[: m // 8]]
        basis = torch.stack(
            [  # PixelUnshuffle order: colour, row, column
                (colour[c][:, None, None] * dct[u][None, :, None] * dct[v][None, None, :]).reshape(-1)
                for c, (u, v) in picks
            ]
        )  # m, 3*b*b, orthonormal rows
        with torch.no_grad():
            self.analysis.weight.copy_((basis * self.SCALE)[:, :, None, None])
            self.synthesis.weight.copy_((basis.T / self.SCALE)[:, :, None, None])

    def forward_analysis(self, x):
        return self.analysis(F.pixel_unshuffle(x - 0.5, self.BLOCK))

    def forward_synthesis(self, y):
        return F.pixel_shuffle(self.synthesis(y), self.BLOCK) + 0.5


class LinearAttention(nn.Module):
    """Softmax-free attention (elu + 1 feature maps): cost linear in the number of
    positions, so it runs on any image size. ``q_in``, ``k_in``, ``v_in``: N,C,H,W maps;
    positions where ``k_mask`` is 0 are left out of the keys/values."""

    def __init__(self, q_in: int, k_in: int, v_in: int, dim: int, out: int):
        super().__init__()
        self.q, self.k, self.v = nn.Conv2d(q_in, dim, 1), nn.Conv2d(k_in, dim, 1), nn.Conv2d(v_in, dim, 1)
        self.proj = nn.Conv2d(dim, out, 1)
        self.dim = dim

    def forward(self, q_in, k_in, v_in, k_mask=None):
        n, _, h, w = q_in.shape
        pos = positional_embedding(self.dim, h, w, q_in.device, q_in.dtype)
        q = F.elu(self.q(q_in) + pos) + 1
        k = F.elu(self.k(k_in) + pos) + 1
        v = self.v(v_in)
        if k_mask is not None:
            k, v = k * k_mask, v * k_mask
        q, k, v = (t.flatten(2) for t in (q, k, v))  # N,D,L
        kv = torch.einsum("ndl,nel->nde", k, v)  # N,D,D
        norm = torch.einsum("ndl,nd->nl", q, k.sum(-1)).clamp_min(1e-6)
        out = torch.einsum("ndl,nde->nel", q, kv) / norm[:, None]
        return self.proj(out.reshape(n, self.dim, h, w))


def positional_embedding(dim: int, h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed 2-D sinusoidal embedding (1,dim,h,w): half the channels encode rows, half
    columns, at geometric frequencies; defined for any size."""
    quarter = max(dim // 4, 1)
    freqs = torch.exp(torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(1000.0) / quarter))
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None] * freqs  # h,q
    xs = torch.arange(w, device=device, dtype=torch.float32)[:, None] * freqs  # w,q
    emb = torch.cat(
        [
            torch.sin(ys)[:, None, :].expand(h, w, quarter),
            torch.cos(ys)[:, None, :].expand(h, w, quarter),
            torch.sin(xs)[None, :, :].expand(h, w, quarter),
            torch.cos(xs)[None, :, :].expand(h, w, quarter),
        ],
        dim=-1,
    )
    emb = F.pad(emb, (0, dim - emb.shape[-1]))
    return emb.permute(2, 0, 1)[None].to(dtype)


def checkerboard(h: int, w: int, device=None) -> torch.Tensor:
    """1,1,h,w mask, 1 on anchor positions ((row + column) even)."""
    idx = torch.arange(h, device=device)[:, None] + torch.arange(w, device=device)[None, :]
    return ((idx % 2) == 0).float()[None, None]


class ChannelReweight(nn.Module):
    """Squeeze-and-excitation over the fused context channels."""

    def __init__(self, dim: int, reduction: int = 4):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(dim, max(dim // reduction, 4)), nn.GELU(), nn.Linear(max(dim // reduction, 4), dim), nn.Sigmoid()
        )

    def forward(self, x):
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class SliceModel(nn.Module):
    """Entropy parameters and LRP of one slice (see the module docstring)."""

    def __init__(self, cfg: MLICConfig, index: int):
        super().__init__()
        c, ctx, a = cfg.slice_channels, cfg.context_channels, cfg.attn
        self.index = index
        prev = c * index  # channels of the slices decoded before this one
        self.channel_ctx = (
            nn.Sequential(nn.Conv2d(prev, 2 * c, 3, padding=1), nn.GELU(), nn.Conv2d(2 * c, 2 * c, 3, padding=1))
            if index
            else None
        )
        self.spatial_ctx = nn.Conv2d(c, 2 * c, 5, padding=2)
        if index == 0:  # hyperprior-guided global correlation for the first slice
            self.global_ctx = LinearAttention(ctx, ctx, c, a, 2 * c)
        else:  # intra-slice: the previous slice's correlation applied to this slice's anchors
            self.global_ctx = LinearAttention(c, c, c, a, 2 * c)
            self.inter_ctx = LinearAttention(2 * c, prev, prev, a, 2 * c)
        fused = ctx + 2 * c * (4 if index else 2)
        self.reweight = ChannelReweight(fused)
        self.params = nn.Sequential(
            nn.Conv2d(fused, 4 * c, 1), nn.GELU(), nn.Conv2d(4 * c, 4 * c, 1), nn.GELU(), nn.Conv2d(4 * c, 2 * c, 1)
        )
        self.lrp = nn.Sequential(
            nn.Conv2d(ctx + prev + c, 2 * c, 3, padding=1), nn.GELU(), nn.Conv2d(2 * c, c, 3, padding=1)
        )

    def entropy_params(self, hyper, prev, anchors, anchor_mask, prev_slice):
        """(means, scales) for this slice. ``prev``: decoded slices before it (N,prev,h,w) or
        None; ``anchors``: this slice's decoded anchors with non-anchors zeroed, or None in
        the anchor pass; ``prev_slice``: the previous slice, decoded (None for slice 0)."""
        zeros = hyper.new_zeros(hyper.shape[0], 2 * self.spatial_ctx.in_channels, *hyper.shape[2:])
        spatial = self.spatial_ctx(anchors) if anchors is not None else zeros
        if self.index == 0:
            glob = self.global_ctx(hyper, hyper, anchors, anchor_mask) if anchors is not None else zeros
            parts = [hyper, spatial, glob]
        else:
            ch = self.channel_ctx(prev)
            glob = self.global_ctx(prev_slice, prev_slice, anchors, anchor_mask) if anchors is not None else zeros
            inter = self.inter_ctx(ch, prev, prev)
            parts = [hyper, ch, spatial, glob, inter]
        means, scales = _wide(self.params(self.reweight(torch.cat(parts, dim=1)))).chunk(2, dim=1)
        return means, F.softplus(scales) + 0.11  # compressai's lower scale bound

    def residual(self, hyper, prev, y_hat):
        parts = [hyper, y_hat] if prev is None else [hyper, prev, y_hat]
        return 0.5 * torch.tanh(_wide(self.lrp(torch.cat(parts, dim=1))))


class MLICv2(nn.Module):
    def __init__(self, cfg: MLICConfig = SMALL):
        super().__init__()
        import warnings

        with warnings.catch_warnings():  # compressai's import warns about torch.jit; not the user's concern
            warnings.simplefilter("ignore")
            from compressai.entropy_models import EntropyBottleneck, GaussianConditional

        self.cfg = cfg
        n, m, h, d = cfg.N, cfg.M, cfg.hyper, cfg.depth
        d_half = d if cfg.half_res_blocks else 0
        self.g_a = nn.Sequential(
            _down(3, n), *_stage(n, d_half), _down(n, n), *_stage(n, d), _down(n, n), *_stage(n, d), _down(n, m)
        )
        self.g_s = nn.Sequential(
            _up(m, n), *_stage(n, d), _up(n, n), *_stage(n, d), _up(n, n), *_stage(n, d_half), _up(n, 3)
        )
        self.dct = BlockDCT(m) if cfg.dct_start else None
        if self.dct is not None:  # the nonlinear paths start at zero: the codec starts as the DCT coder
            nn.init.zeros_(self.g_a[-1].weight)
            nn.init.zeros_(self.g_a[-1].bias)
            nn.init.zeros_(self.g_s[-1][0].weight)
            nn.init.zeros_(self.g_s[-1][0].bias)
        self.h_a = nn.Sequential(nn.Conv2d(m, h, 3, padding=1), nn.GELU(), _down(h, h), nn.GELU(), _down(h, h))
        ctx = cfg.context_channels
        self.h_s = nn.Sequential(_up(h, h), nn.GELU(), _up(h, ctx), nn.GELU(), nn.Conv2d(ctx, ctx, 3, padding=1))
        self.slices = nn.ModuleList(SliceModel(cfg, i) for i in range(cfg.slices))
        self.entropy_bottleneck = EntropyBottleneck(h)
        self.gaussian_conditional = GaussianConditional(None)
        # gain units: level -> channel gains of y and z, and their decoder-side inverses
        self.y_gain = nn.Parameter(torch.ones(cfg.levels, m))
        self.y_inverse = nn.Parameter(torch.ones(cfg.levels, m))
        self.z_gain = nn.Parameter(torch.ones(cfg.levels, h))
        self.z_inverse = nn.Parameter(torch.ones(cfg.levels, h))
        with torch.no_grad():  # start the levels apart: higher level, finer quantisation of y
            for lv in range(cfg.levels):
                self.y_gain[lv] *= 2.0 ** (lv - cfg.levels + 1)
                self.y_inverse[lv] /= 2.0 ** (lv - cfg.levels + 1)

    PAD = 64  # y is x/16, z is y/4: pictures are padded to multiples of 64

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        # fp16 weight files hold compressai's likelihood bound (1e-9) as 0; the bound only
        # guards rates (coding never reads it) and without it one zero likelihood makes
        # the rate -log2(0) = inf: refinement and fine-tuning from the weights went NaN
        for bound in (self.entropy_bottleneck.likelihood_lower_bound, self.gaussian_conditional.likelihood_lower_bound):
            bound.bound.fill_(LIKELIHOOD_BOUND)
        return result

    LAMBDAS = (0.0018, 0.0067, 0.025, 0.0932)  # rate levels 0..3 (lambda of lambda*255^2*MSE + bpp)

    def lambda_at(self, level: float) -> float:
        """The lambda a (fractional) level stands for: geometric, as the gains interpolate."""
        lo = min(int(math.floor(level)), self.cfg.levels - 1)
        hi, t = min(lo + 1, self.cfg.levels - 1), level - lo
        return self.LAMBDAS[lo] ** (1 - t) * self.LAMBDAS[hi] ** t

    def gain(self, table: torch.Tensor, level: float | torch.Tensor) -> torch.Tensor:
        """N,C,1,1 gains for ``level`` (a float for one level for the batch, or a tensor of
        N integer levels); fractional levels interpolate geometrically between neighbours."""
        if isinstance(level, torch.Tensor):
            return table[level.long()][:, :, None, None]
        lo = min(int(math.floor(level)), self.cfg.levels - 1)
        hi, t = min(lo + 1, self.cfg.levels - 1), level - lo
        g = table[lo].abs().clamp_min(1e-4) ** (1 - t) * table[hi].abs().clamp_min(1e-4) ** t
        return g[None, :, None, None]

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        y = _wide(self.g_a(x))
        return y if self.dct is None else y + _wide(self.dct.forward_analysis(x))

    def synthesis(self, y: torch.Tensor) -> torch.Tensor:
        x = self.g_s(y)
        return x if self.dct is None else x + self.dct.forward_synthesis(y)

    TILE = 64  # latent pixels (1024 picture pixels) per tile of the tiled transforms
    TILE_MARGIN = 6  # latent pixels of context per side: more than either transform's receptive field

    def analysis_tiled(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`analysis` in overlapping tiles: the same result (to float rounding) in
        memory bounded by the tile, for pictures of any size."""
        return _tiled(self.analysis, x, 16, 1, self.TILE, self.TILE_MARGIN)

    def synthesis_tiled(self, y: torch.Tensor) -> torch.Tensor:
        return _tiled(self.synthesis, y, 1, 16, self.TILE, self.TILE_MARGIN)

    def forward(self, x: torch.Tensor, level: float | torch.Tensor) -> dict:
        """Training pass: reconstruction and likelihoods (additive noise for the rates,
        straight-through rounding of y - mean for the decoder's inputs, as in ELIC/MLIC)."""
        # Under bf16 autocast the networks run in bf16, but latents, means, scales and
        # likelihoods stay fp32: bf16's 8-bit mantissa would blur y - mean at |y| ~ 50.
        return self.code_latents(self.analysis(x) * self.gain(self.y_gain, level), level)

    def code_latents(self, y: torch.Tensor, level, soft_round=None) -> dict:
        """Reconstruction and likelihoods of the (gained) latents ``y``. ``soft_round``
        (SGA refinement) replaces both the rate's noise and the straight-through rounding
        of y - mean: its output is what the decoder sees and what the rate is measured on."""
        z = _wide(self.h_a(y)) * self.gain(self.z_gain, level)
        with torch.autocast(y.device.type, enabled=False):
            z_hat, z_likelihoods = self.entropy_bottleneck(z)
        hyper = _wide(self.h_s(z_hat * self.gain(self.z_inverse, level)))
        mask = checkerboard(*y.shape[2:], device=y.device)
        gc = self.gaussian_conditional
        quantize = soft_round or _ste_round
        decoded, likelihoods = [], []
        for model, y_i in zip(self.slices, y.chunk(self.cfg.slices, dim=1)):
            prev = torch.cat(decoded, dim=1) if decoded else None
            prev_slice = decoded[-1] if decoded else None
            mean_a, scale_a = model.entropy_params(hyper, prev, None, mask, prev_slice)
            anchors = (quantize(y_i - mean_a) + mean_a) * mask
            mean_n, scale_n = model.entropy_params(hyper, prev, anchors, mask, prev_slice)
            means = mean_a * mask + mean_n * (1 - mask)
            scales = scale_a * mask + scale_n * (1 - mask)
            y_hat = quantize(y_i - means) + means
            if soft_round is None:
                _, lik = gc(y_i, scales, means)
            else:
                lik = gc.likelihood_lower_bound(gc._likelihood(y_hat, scales, means))
            likelihoods.append(lik)
            decoded.append(y_hat + model.residual(hyper, prev, y_hat))
        x_hat = self.synthesis(torch.cat(decoded, dim=1) * self.gain(self.y_inverse, level))
        return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(likelihoods, dim=1), "z": z_likelihoods}}

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()


def _tiled(f, inp: torch.Tensor, unit_in: int, unit_out: int, tile: int, margin: int) -> torch.Tensor:
    """Apply the convolutional ``f`` tile by tile. Sizes count latent pixels: one is
    ``unit_in`` pixels of ``inp`` and ``unit_out`` of the result. Each tile is computed
    with ``margin`` of real context per side (none at the picture's edges, as untiled)."""
    gh, gw = inp.shape[-2] // unit_in, inp.shape[-1] // unit_in
    if gh <= tile and gw <= tile:
        return f(inp)
    out = None
    for top in range(0, gh, tile):
        for left in range(0, gw, tile):
            bottom, right = min(top + tile, gh), min(left + tile, gw)
            t0, l0 = max(top - margin, 0), max(left - margin, 0)
            t1, l1 = min(bottom + margin, gh), min(right + margin, gw)
            piece = f(inp[..., t0 * unit_in : t1 * unit_in, l0 * unit_in : l1 * unit_in])
            if out is None:
                out = piece.new_empty(*piece.shape[:2], gh * unit_out, gw * unit_out)
            out[..., top * unit_out : bottom * unit_out, left * unit_out : right * unit_out] = piece[
                ..., (top - t0) * unit_out : (bottom - t0) * unit_out, (left - l0) * unit_out : (right - l0) * unit_out
            ]
    return out


def _wide(t: torch.Tensor) -> torch.Tensor:
    """fp32 out of a reduced-precision (autocast) result; fp32 and fp64 pass unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def sga_round(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Stochastic Gumbel annealing (Yang et al., "Improving Inference for Neural Image
    Compression", 2020): a differentiable random choice between floor and ceil, the
    nearer one likelier, turning into hard rounding as ``tau`` goes to 0."""
    lo = torch.floor(x)
    frac = (x - lo).clamp(1e-4, 1 - 1e-4)
    logits = torch.stack([-torch.atanh(frac), -torch.atanh(1 - frac)], dim=-1) / tau
    # Gumbel noise from clamped uniforms: F.gumbel_softmax draws exponentials that can be
    # exactly 0, and one infinite sample among millions of latents turned y into NaN
    u = torch.rand_like(logits).clamp(1e-7, 1 - 1e-7)
    weights = torch.softmax(logits - torch.log(-torch.log(u)), dim=-1)
    return lo + weights[..., 1]


def refine_latents(
    model: MLICv2, x: torch.Tensor, level: float, steps: int, lr: float = 1e-2, progress=None
) -> torch.Tensor:
    """Per-image refinement at encode time (the decoder is unchanged): gradient descent on
    the latents y for lambda * 255^2 * MSE + bpp, with SGA rounding whose temperature
    anneals from 0.5 towards 0 and Adam's step size decaying from ``lr`` to 0 on a cosine
    (at 100 steps this finds what a constant 5e-3 needed 300 for: docs/BENCHMARKS.md).
    Returns the refined (gained) latents for codec/mlic.compress."""
    lam = model.lambda_at(level)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        return _refine(model, x, level, steps, lr, lam, progress)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)


def _refine(model, x, level, steps, lr, lam, progress) -> torch.Tensor:
    with torch.no_grad():
        y0 = model.analysis(x) * model.gain(model.y_gain, level)
    y = y0.clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    pixels = x.shape[2] * x.shape[3]
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    for step in range(steps):
        tau = max(0.5 * math.exp(-4.0 * step / max(steps, 1)), 0.01)
        out = model.code_latents(y, level, soft_round=lambda v: sga_round(v, tau))
        bpp = sum(-lik.log2().sum() for lik in out["likelihoods"].values()) / pixels
        loss = lam * 255**2 * F.mse_loss(out["x_hat"], x) + bpp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if progress:
            progress(step + 1)
    return y.detach()


def stored_int8(name: str, t: torch.Tensor) -> bool:
    """Which weights ship as int8 (per-channel scales) rather than fp16: every matrix and
    kernel of 4096 or more values except the block-DCT layers, the one place where int8
    cost measurable PSNR (-0.05 dB at the top level on the validation crops; all the
    others together moved bpp by under 0.4 % and PSNR by under 0.02 dB)."""
    return t.ndim > 1 and t.numel() >= 4096 and not name.startswith("dct.")


STORAGE = (
    "safetensors: int8 with per-channel float32 scales (matrices and kernels of >= 4096 values, "
    "block-DCT layers excepted), fp16 the rest"
)  # stored_int8 in words, for the model card
