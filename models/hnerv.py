"""HNeRV (Chen et al., CVPR 2023): a video as a small decoder network plus tiny per-frame
embeddings produced by a learned encoder.

- Encoder: ConvNeXt stages; stage i downsamples by ``strides[i]`` (a strided conv as in
  ConvNeXt's downsampling layers) and runs one ConvNeXt block (depthwise 7x7, LayerNorm,
  4x pointwise MLP with GELU); a last 1x1 conv gives ``embed_channels`` (16) channels.
- Decoder: a 1x1 conv lifts the embedding to ``widths[0]`` channels, then one HNeRV block
  per stride (conv k x k -> PixelShuffle(s) -> GELU), kernel sizes growing 1, 3, 5, 5, ...
  and widths shrinking by 1.2 per stage down to a floor; a 3x3 head gives RGB in [0, 1].
- The decoder's width is solved from a parameter budget (``solve_widths``), the way the
  paper balances parameters, so "0.3M parameters" means the same at every frame size.
- Any frame size: ``plan_strides`` picks strides whose product leaves the least padding;
  frames are padded by edge replication and cropped back exactly.

Only the decoder and the embeddings go into the bitstream; the encoder is used while
fitting.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EMBED_CHANNELS = 16
_STRIDE_CHOICES = (2, 3, 4, 5)


@dataclass(frozen=True)
class HNeRVConfig:
    """Everything needed to rebuild the decoder (stored in the bitstream as JSON)."""

    height: int  # padded size the network produces
    width: int
    strides: tuple[int, ...]
    widths: tuple[int, ...]  # decoder channels after the lift and after each block
    kernels: tuple[int, ...]
    embed_channels: int = EMBED_CHANNELS

    @property
    def embed_size(self) -> tuple[int, int]:
        p = math.prod(self.strides)
        return self.height // p, self.width // p

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: dict) -> "HNeRVConfig":
        return cls(
            height=int(d["height"]), width=int(d["width"]), strides=tuple(int(s) for s in d["strides"]),
            widths=tuple(int(c) for c in d["widths"]), kernels=tuple(int(k) for k in d["kernels"]),
            embed_channels=int(d.get("embed_channels", EMBED_CHANNELS)),
        )  # fmt: skip


def plan_strides(height: int, width: int, stages: int = 5, max_embed_side: int = 16) -> tuple[tuple[int, ...], int, int]:
    """Strides (largest first) and the padded size with the least padding, such that the
    embedding grid is at most ``max_embed_side`` on its long side (the embeddings stay tiny)."""
    best = None
    for combo in itertools.combinations_with_replacement(sorted(_STRIDE_CHOICES, reverse=True), stages):
        p = math.prod(combo)
        ph, pw = math.ceil(height / p) * p, math.ceil(width / p) * p
        if max(ph, pw) // p > max_embed_side:
            continue
        key = (ph * pw, -p)  # least padding, then the smallest embedding
        if best is None or key < best[0]:
            best = (key, combo, ph, pw)
    if best is None:
        raise ValueError(f"no stride plan for {width}x{height} with {stages} stages")
    _, combo, ph, pw = best
    return tuple(combo), ph, pw


def kernel_sizes(stages: int, k_min: int = 1, k_max: int = 5) -> tuple[int, ...]:
    """1, 3, 5, 5, ... : small kernels where the feature maps are tiny, larger later."""
    return tuple(min(k_min + 2 * i, k_max) for i in range(stages))


def widths_from(first: int, stages: int, reduction: float = 1.2, floor: int = 12) -> tuple[int, ...]:
    widths = [first]
    for _ in range(stages):
        widths.append(max(int(round(widths[-1] / reduction)), floor))
    return tuple(widths)


def decoder_parameters(strides, widths, kernels, embed_channels: int = EMBED_CHANNELS) -> int:
    n = embed_channels * widths[0] + widths[0]  # 1x1 lift
    for s, k, cin, cout in zip(strides, kernels, widths[:-1], widths[1:]):
        n += cin * cout * s * s * k * k + cout * s * s
    return n + widths[-1] * 3 * 9 + 3  # 3x3 head


def solve_widths(strides: tuple[int, ...], budget: int, floor: int = 12) -> tuple[int, ...]:
    """The largest first width whose decoder stays within ``budget`` parameters."""
    kernels = kernel_sizes(len(strides))
    lo, hi = floor, 4096
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if decoder_parameters(strides, widths_from(mid, len(strides), floor=floor), kernels) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return widths_from(lo, len(strides), floor=floor)


def make_config(height: int, width: int, budget: int) -> HNeRVConfig:
    strides, ph, pw = plan_strides(height, width)
    return HNeRVConfig(ph, pw, strides, solve_widths(strides, budget), kernel_sizes(len(strides)))


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.pw2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dw(x).permute(0, 2, 3, 1)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + h.permute(0, 3, 1, 2)


class Encoder(nn.Module):
    """Frame (N,3,H,W in [0,1]) -> embedding (N,16,H/P,W/P)."""

    def __init__(self, strides: tuple[int, ...], dim: int = 64, embed_channels: int = EMBED_CHANNELS):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for s in strides:
            layers += [nn.Conv2d(cin, dim, s, stride=s), ConvNeXtBlock(dim)]
            cin = dim
        layers.append(nn.Conv2d(dim, embed_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class HNeRVBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * stride * stride, kernel, padding=kernel // 2)
        self.shuffle = nn.PixelShuffle(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.shuffle(self.conv(x)))


class Decoder(nn.Module):
    """Embedding (N,16,h,w) -> frame (N,3,H,W) in [0, 1]."""

    def __init__(self, cfg: HNeRVConfig):
        super().__init__()
        self.cfg = cfg
        self.lift = nn.Conv2d(cfg.embed_channels, cfg.widths[0], 1)
        self.blocks = nn.ModuleList(
            HNeRVBlock(cin, cout, s, k)
            for s, k, cin, cout in zip(cfg.strides, cfg.kernels, cfg.widths[:-1], cfg.widths[1:])
        )
        self.head = nn.Conv2d(cfg.widths[-1], 3, 3, padding=1)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        x = self.lift(embedding)
        for block in self.blocks:
            x = block(x)
        return torch.sigmoid(self.head(x))


class HNeRV(nn.Module):
    """Encoder + decoder; ``forward`` reconstructs padded frames through their embeddings."""

    def __init__(self, cfg: HNeRVConfig, encoder_dim: int = 64):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg.strides, encoder_dim, cfg.embed_channels)
        self.decoder = Decoder(cfg)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.encoder(frames)
        return self.decoder(embedding), embedding


def pad_frames(frames: torch.Tensor, cfg: HNeRVConfig) -> torch.Tensor:
    """N,3,H,W -> N,3,cfg.height,cfg.width by edge replication (bottom and right)."""
    h, w = frames.shape[-2:]
    return F.pad(frames, (0, cfg.width - w, 0, cfg.height - h), mode="replicate")


@dataclass
class FitResult:
    epochs: int
    seconds: float
    psnr: float  # of the last epoch, on the padded frames, in dB
    history: list


def _cosine_lr(base: float, progress: float, warmup: float = 0.1) -> float:
    if progress < warmup:
        return base * max(progress / warmup, 0.02)
    return base * 0.5 * (1 + math.cos(math.pi * min((progress - warmup) / (1 - warmup), 1.0)))


LOSSES = ("l2", "l1+ms-ssim")


def reconstruction_loss(out: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """L2, or NeRV's 0.7 L1 + 0.3 (1 - MS-SSIM); frames too small for MS-SSIM's five
    scales (short side <= 160) use single-scale SSIM."""
    if kind == "l2":
        return F.mse_loss(out, target)
    from pytorch_msssim import ms_ssim, ssim

    similarity = ms_ssim if min(out.shape[-2:]) > 160 else ssim
    return 0.7 * F.l1_loss(out, target) + 0.3 * (1 - similarity(out, target, data_range=1.0))


def fit(
    model: HNeRV,
    frames: torch.Tensor,
    *,
    epochs: int = 100,
    time_budget: float | None = None,
    lr: float = 2e-3,
    batch: int = 2,
    seed: int = 0,
    loss: str = "l2",
    fast: bool = True,
    trainable: list[nn.Parameter] | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    on_epoch=None,
) -> FitResult:
    """Overfit ``model`` to ``frames`` (N,3,H,W padded; uint8, or float in [0,1]) with
    ``loss`` (see LOSSES), Adam and a cosine schedule with warm-up. The schedule follows
    ``time_budget`` (seconds) when given, else ``epochs``. ``masks`` (parameter name -> 0/1)
    keep pruned weights at zero.

    ``fast``: channels-last tensors (oneDNN's fast layout on CPUs) and bf16 autocast where
    the hardware computes bf16 natively; the weights, the optimizer and the loss stay fp32
    (benchmarks/hnerv_speed.py measures speed and quality against the plain fp32 fit)."""
    import time

    from .precision import bf16_useful

    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}")
    device = frames.device
    layout = torch.channels_last if fast else torch.contiguous_format
    model.to(memory_format=layout)
    frames = frames.contiguous(memory_format=layout)
    autocast = fast and bf16_useful(device)
    g = torch.Generator().manual_seed(seed)
    params = trainable if trainable is not None else list(model.parameters())
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    named = dict(model.named_parameters())
    start, n, history, epoch, psnr = time.monotonic(), frames.shape[0], [], 0, 0.0
    while True:
        elapsed = time.monotonic() - start
        progress = elapsed / time_budget if time_budget else epoch / max(epochs, 1)
        if progress >= 1 or (time_budget is None and epoch >= epochs):
            break
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(lr, progress)
        mse_sum = 0.0
        for idx in torch.randperm(n, generator=g).split(batch):
            target = frames[idx.to(device)]
            if target.dtype == torch.uint8:
                target = target.float() / 255
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                out, _ = model(target)
            out = out.float()
            objective = reconstruction_loss(out, target, loss)
            opt.zero_grad(set_to_none=True)
            objective.backward()
            opt.step()
            if masks:
                with torch.no_grad():
                    for name, mask in masks.items():
                        named[name].mul_(mask)
            mse_sum += F.mse_loss(out.detach(), target).item() * len(idx)
        epoch += 1
        psnr = 10 * math.log10(1 / max(mse_sum / n, 1e-12))
        history.append({"epoch": epoch, "seconds": round(time.monotonic() - start, 2), "psnr": psnr})
        if on_epoch:
            on_epoch(history[-1], progress)
    model.to(memory_format=torch.contiguous_format)
    return FitResult(epoch, time.monotonic() - start, psnr, history)
