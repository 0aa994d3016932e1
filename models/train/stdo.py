"""STDO's encoder-side training: fine-tuning a copy of the generic ESPCN on one chunk of
a video's patches (models/nets/stdo.py cuts and scores the patches)."""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from ..nets.espcn import ESPCN
from ..nets.precision import bf16_useful
from ..nets.stdo import LAYERS, studio
from .loop import cosine_lr


def overfit(
    generic: ESPCN,
    win: torch.Tensor,
    target: torch.Tensor,
    *,
    seconds: float | None = None,
    max_steps: int | None = None,
    lr: float = 1e-4,
    batch: int = 32,
    seed: int = 0,
    layers: str = "last",
    device: str | torch.device = "cpu",
) -> tuple[ESPCN, dict]:
    """Fine-tune a copy of ``generic`` on (uint8 window, uint8 HR patch) pairs for
    ``seconds`` (else ``max_steps`` steps): MSE on the patch interior, Adam with a cosine decay, bf16 autocast with
    channels-last tensors where the CPU has native bf16. ``layers``: "last" trains only the
    sub-pixel layer (conv3: a few thousand weights, cheap to send), "all" the whole
    network. Returns the model and a log."""
    if layers not in LAYERS:
        raise ValueError(f"layers must be one of {LAYERS}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    model = copy.deepcopy(generic).train().to(device)
    autocast = bf16_useful(device)
    layout = torch.channels_last if autocast else torch.contiguous_format
    model.to(memory_format=layout)
    params = list(model.conv3.parameters()) if layers == "last" else list(model.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    if not seconds and not max_steps:
        raise ValueError("overfit needs a time budget or a step count")
    start, step, n = time.monotonic(), 0, win.shape[0]
    while True:
        progress = (time.monotonic() - start) / seconds if seconds else step / max_steps
        if progress >= 1:
            break
        for group in opt.param_groups:
            group["lr"] = cosine_lr(lr, progress)
        idx = torch.randint(0, n, (min(batch, n),), generator=g)
        x, y = studio(win[idx].to(device)), studio(target[idx].to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            sr = model.interior(x.contiguous(memory_format=layout)).float()  # = upscale_windows, unpadded
        loss = F.mse_loss(sr, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    model.eval().to("cpu", memory_format=torch.contiguous_format)
    return model, {"steps": step, "seconds": round(time.monotonic() - start, 2)}
