"""Training recipe for ESPCN (``ncodec train espcn``).

Data: HR photos (uint8 RGB arrays; the caller loads the files). Each image is cropped
to a multiple of the scale; its LR version is made once by :func:`bicubic_resize`
(antialiased Keys a = -0.5, the MATLAB ``imresize`` kernel) in RGB, rounded to uint8
like a real low-resolution image, then converted to Y (BT.601 studio range). The
evaluation makes its LR inputs the same way.

Recipe: bicubic-initialised ESPCN (models/espcn.py: four pass-through channels); random aligned LR/HR crops (LR
``patch`` px), the 8 flips/rotations; each LR window is the exact input of its inner
outputs (``ESPCN.interior``: unpadded convolutions), so the loss never sees a crop's
artificial edge, and windows reach past the picture's edges into its edge replication,
so the picture edges are trained as ``forward`` computes them; bf16 autocast with channels-last tensors where the
CPU has native bf16 (weights, Adam and the loss stay fp32; validation runs in fp32);
Adam; learning rate warmed up over the first 2 % then cosine-decayed to 1 % of its peak over the time budget; L1 loss for the first 80 %
of the budget, then MSE (the metric is PSNR); optionally scale augmentation (each training
photo also at smaller sizes, ``downscales``); fixed seed; checkpoints (weights, Adam
moments, step, elapsed time) that a later run resumes from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..measure import psnr
from ..nets.espcn import ESPCN, RECEPTIVE_RADIUS, bicubic_resize, rgb_to_ycbcr
from ..nets.precision import bf16_useful
from .loop import cosine_lr, load_checkpoint, save_checkpoint, train_until
from .samplers import Pair, PatchSampler


@dataclass
class TrainConfig:
    scale: int
    minutes: float = 20.0  # wall-clock budget; the schedule follows it
    batch: int = 32
    patch: int = 32  # LR patch side
    lr: float = 3e-4  # higher rates scramble the bicubic pass-through early (measured)
    mse_from: float = 0.8  # fraction of the budget after which the loss is MSE
    init_gain: float = 0.1  # bicubic initialisation's pass-through gain (models/espcn.py)
    compact_init: bool = True  # pass bicubic through 4 channels, not r^2 (ESPCN.init_bicubic)
    bf16: bool = True  # channels-last + bf16 autocast where the CPU computes bf16 natively (~1.8x the steps)
    seed: int = 0
    val_every: float = 60.0  # seconds between validations/checkpoints
    threads: int | None = None
    downscales: tuple[float, ...] = (1.0,)  # scale augmentation of the training photos (downscaled_copies)
    steps: int | None = None  # stop after this many steps in all (the schedule then follows them)


def make_pair(rgb: np.ndarray, scale: int) -> Pair:
    """HR/LR luma pair from one uint8 RGB photo (LR made exactly as in evaluation)."""
    h, w = rgb.shape[:2]
    rgb = rgb[: h - h % scale, : w - w % scale]
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
    lr = (bicubic_resize(t, 1 / scale).clamp(0, 1) * 255).round() / 255
    return Pair(hr=rgb_to_ycbcr(t)[0, :1].contiguous(), lr=rgb_to_ycbcr(lr)[0, :1].contiguous())


def downscaled_copies(rgb: np.ndarray, factors: tuple[float, ...]) -> list[np.ndarray]:
    """The photo at each factor (1.0: as it is; below: bicubic-shrunk, then rounded to
    uint8): scale augmentation, the standard SR trick for a small training set, gives the
    network sharper, denser detail of the kind the SR benchmarks hold."""
    out = []
    for f in factors:
        if f == 1.0:
            out.append(rgb)
            continue
        t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
        small = (bicubic_resize(t, f).clamp(0, 1) * 255).round().to(torch.uint8)
        out.append(small[0].permute(1, 2, 0).contiguous().numpy())
    return out


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, border: int) -> float:
    """PSNR on Y in [0, 1] with ``border`` pixels cropped (the SR convention), on 8-bit values."""
    sr = (sr.clamp(0, 1) * 255).round()
    hr = hr * 255
    if border:
        sr, hr = sr[..., border:-border, border:-border], hr[..., border:-border, border:-border]
    return psnr(sr, hr, peak=255.0)


@torch.no_grad()
def evaluate(model: ESPCN, pairs: list[Pair]) -> float:
    model.eval()
    scores = [psnr_y(model(p.lr[None])[0], p.hr, model.scale) for p in pairs]
    model.train()
    return float(np.mean(scores))


def train(
    cfg: TrainConfig,
    train_pairs: list[Pair],
    val_pairs: list[Pair],
    checkpoint: Path,
    *,
    resume: bool = False,
    init: dict[str, torch.Tensor] | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> tuple[ESPCN, dict]:
    """Train within ``cfg.minutes``; return the model with the best validation PSNR and a log.

    ``init``: start from these weights (e.g. the shipped ones) instead of the bicubic
    initialisation, with a fresh schedule; ``resume``: continue a checkpoint exactly."""
    if cfg.patch <= 2 * RECEPTIVE_RADIUS:
        raise ValueError(f"patch ({cfg.patch} LR px) must exceed twice the receptive radius ({RECEPTIVE_RADIUS})")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = ESPCN(cfg.scale).init_bicubic(cfg.seed, gain=cfg.init_gain, compact=cfg.compact_init)
    if init is not None:
        model.load_state_dict({k: v.float() for k, v in init.items()})
    autocast = cfg.bf16 and bf16_useful("cpu")
    layout = torch.channels_last if autocast else torch.contiguous_format
    model.to(memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sampler = PatchSampler(train_pairs, cfg.scale, cfg.patch, cfg.seed)
    state = {"step": 0, "elapsed": 0.0, "history": [], "best_val": evaluate(model, val_pairs), "config": asdict(cfg)}
    state["bicubic_val"] = evaluate(ESPCN(cfg.scale).init_bicubic(cfg.seed), val_pairs)
    if resume and checkpoint.exists():
        state = load_checkpoint(checkpoint, model, {"adam": opt}) | {"config": asdict(cfg)}
        sampler.rng = np.random.default_rng(cfg.seed + state["step"])
    best = {k: v.clone() for k, v in model.state_dict().items()}

    def step(progress: float) -> tuple[torch.Tensor, dict]:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(cfg.lr, progress, floor=0.01, warmup=0.02)
        lr, hr = sampler.batch(cfg.batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            sr = model.interior(lr.contiguous(memory_format=layout)).float()
        loss = F.l1_loss(sr, hr) if progress < cfg.mse_from else F.mse_loss(sr, hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss, {}

    def validate() -> dict:
        nonlocal best
        val = evaluate(model, val_pairs)
        if val > state["best_val"]:
            state["best_val"], best = val, {k: v.clone() for k, v in model.state_dict().items()}
        return {"val_psnr": val, "best_val": state["best_val"]}

    train_until(
        cfg.minutes,
        cfg.val_every,
        state,
        step,
        validate,
        lambda: save_checkpoint(checkpoint, model, {"adam": opt}, state),
        on_progress,
        max_steps=cfg.steps,
    )
    final = evaluate(model, val_pairs)
    if final > state["best_val"]:
        state["best_val"], best = final, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best)
    return model.to(memory_format=torch.contiguous_format), state
