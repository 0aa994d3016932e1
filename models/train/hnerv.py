"""HNeRV's encoder: fitting the network to a segment of video (encoding is training)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..measure import psnr_from_mse
from ..nets.hnerv import HNeRV
from .loop import cosine_lr


@dataclass
class FitResult:
    epochs: int
    seconds: float
    psnr: float  # of the last epoch, on the padded frames, in dB
    history: list


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

    from ..nets.precision import bf16_useful

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
            group["lr"] = cosine_lr(lr, progress, warmup=0.1, warmup_start=0.02)
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
        psnr = psnr_from_mse(mse_sum / n, peak=1.0)
        history.append({"epoch": epoch, "seconds": round(time.monotonic() - start, 2), "psnr": psnr})
        if on_epoch:
            on_epoch(history[-1], progress)
    model.to(memory_format=torch.contiguous_format)
    return FitResult(epoch, time.monotonic() - start, psnr, history)
