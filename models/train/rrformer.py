"""Training recipe for reflection removal (``ncodec train dereflect``), on blends
synthesized on the fly from ordinary photos.

Each sample takes a transmission crop T and a reflection crop R from two different
photos and blends them with the established models (Zhang et al., CVPR 2018; Wei et al.,
ERRNet, CVPR 2019): R is defocused (Gaussian blur, sigma 0.5..5), sometimes ghosted (a second,
shifted and weaker copy, as from the two faces of a pane), scaled by a spatially varying
strength (a random linear ramp or a Gaussian vignette), added to T in linear light
(gamma 2.2) or to the gamma-encoded values, and the mean overflow above 1 is taken out of the reflection, per channel,
before clipping (the overflow attenuation of both papers). The targets are T and the reflection actually left in
the blend, I - T.

Losses (no pretrained network can be downloaded here): L1 on T, L1 on the gradients of
T, L1 on R, and the exclusion loss (Zhang et al. 2018), which keeps the edges of T and
R apart. Adam, warm-up and cosine decay over the time budget, bf16 autocast where the
CPU computes bf16 natively, checkpoints that a later run resumes from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..measure import psnr
from ..nets.precision import bf16_useful
from ..nets.rrformer import RRConfig, RRFormer
from .loop import cosine_lr, load_checkpoint, save_checkpoint, train_until
from .samplers import CropSampler

GAMMA = 2.2


@dataclass
class RRTrainConfig:
    minutes: float = 60.0
    crop: int = 160
    batch: int = 8
    lr: float = 4e-4
    seed: int = 0
    val_every: float = 300.0
    threads: int | None = None
    bf16: bool = True
    steps: int | None = None  # stop after this many steps in all (the schedule then follows them)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).to(x.device)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _strength_map(h: int, w: int, rng: np.random.Generator) -> torch.Tensor:
    """Where the pane reflects: a linear ramp across the crop (light falling on the glass
    unevenly), or a Gaussian vignette centred somewhere in it (Zhang et al.'s mask)."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * math.pi)
        shape = (math.cos(angle) * xs + math.sin(angle) * ys) / 2 + 0.5
    else:
        cy, cx = rng.uniform(-0.6, 0.6, 2)
        shape = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * rng.uniform(0.4, 1.2) ** 2))
    hi = rng.uniform(0.4, 1.6)  # strong reflections too: a bright scene on dark glass
    lo = hi * rng.uniform(0.0, 0.7)
    return lo + (hi - lo) * shape


def synthesize(
    t: torch.Tensor, r: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(blend I, transmission T, reflection I - T) from two 1,3,H,W crops in [0, 1].

    Half the blends add the reflection in linear light (gamma 2.2, as light adds), half
    add it to the gamma-encoded values (Zhang et al., CVPR 2018, after CEILNet: Fan et al., ICCV 2017), where the same
    reflection brightens shadows less and highlights more; photos through glass fall
    between the two, depending on the camera's tone curve."""
    r = _gaussian_blur(r, float(rng.uniform(0.5, 5.0)))
    gamma = GAMMA if rng.random() < 0.5 else 1.0
    r_lin, t_lin = r**gamma, t**gamma
    if rng.random() < 0.3:  # ghosting: a shifted, weaker second reflection
        dy, dx = (int(v) for v in rng.integers(-10, 11, 2))
        r_lin = (r_lin + rng.uniform(0.3, 0.8) * torch.roll(r_lin, (dy, dx), (2, 3))) / 1.6
    h, w = t.shape[-2:]
    strength = _strength_map(h, w, rng)[None, None]
    r_lin = r_lin * (strength if gamma > 1 else strength * 0.7)
    # overflow attenuation (Wei et al., ERRNet, CVPR 2019), per colour channel: where the blend
    # saturates, weaken the reflection by the mean overflow so that it does not clip.
    blend = t_lin + r_lin
    over = (blend - 1).clamp_min(0).sum((2, 3)) / (blend > 1).sum((2, 3)).clamp_min(1)
    r_lin = (r_lin - rng.uniform(1.08, 1.3) * over[..., None, None]).clamp(0, 1)
    blend = (t_lin + r_lin).clamp(0, 1) ** (1 / gamma)
    return blend, t, blend - t


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def exclusion_loss(t: torch.Tensor, r: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Zhang et al. 2018: the product of the two layers' (normalised, squashed) gradient
    magnitudes, at several scales; small when their edges do not coincide."""
    loss = t.new_zeros(())
    for _ in range(levels):
        for gt, gr in zip(_gradients(t), _gradients(r)):
            lam = 2 * gt.abs().mean() / (gr.abs().mean() + 1e-6)
            loss = loss + (torch.tanh(gt.abs()) * torch.tanh(lam * gr.abs())).pow(2).mean().clamp_min(1e-12).sqrt()
        t, r = F.avg_pool2d(t, 2), F.avg_pool2d(r, 2)
    return loss / levels


def losses(model: RRFormer, blend, t, r) -> tuple[torch.Tensor, dict]:
    t_hat, r_hat = model(blend)
    t_hat, r_hat = t_hat.float(), r_hat.float()
    l1 = F.l1_loss(t_hat, t)
    grad = sum(F.l1_loss(a, b) for a, b in zip(_gradients(t_hat), _gradients(t)))
    refl = F.l1_loss(r_hat, r)
    excl = exclusion_loss(t_hat, r_hat)
    total = l1 + 0.5 * grad + 0.5 * refl + 0.2 * excl
    return total, {"l1": l1.item(), "grad": grad.item(), "refl": refl.item(), "excl": excl.item()}


class BlendSampler:
    """Batches of (I, T, R): crops of two independent draws blended by :func:`synthesize`."""

    def __init__(self, photos: list[np.ndarray], crop: int, seed: int):
        if len(photos) < 2:
            raise ValueError("need at least two photos")
        self.crops = CropSampler(photos, crop, seed)

    @property
    def rng(self) -> np.random.Generator:
        return self.crops.rng

    @rng.setter
    def rng(self, value: np.random.Generator) -> None:
        self.crops.rng = value

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ts, rs = self.crops.batch(n), self.crops.batch(n)
        items = [synthesize(ts[i : i + 1], rs[i : i + 1], self.rng) for i in range(n)]
        return tuple(torch.cat(parts) for parts in zip(*items))


def validate(model: RRFormer, val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict:
    model.eval()
    out = {
        "input": float(np.mean([psnr(b.clamp(0, 1), t) for b, t, _ in val])),
        "net": float(np.mean([psnr(model(b)[0].float().clamp(0, 1), t) for b, t, _ in val])),
    }
    model.train()
    return out


def train(
    cfg: RRTrainConfig,
    model_cfg: RRConfig,
    train_photos: list[np.ndarray],
    val_photos: list[np.ndarray],
    checkpoint: Path,
    *,
    resume: bool = False,
    init: dict | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> tuple[RRFormer, dict]:
    """Train within ``cfg.minutes``; validation on fixed blends of the held-out photos."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = RRFormer(model_cfg)
    if init is not None:
        try:
            model.load_state_dict(init)
        except RuntimeError:
            raise ValueError("the --init weights are not of this model configuration") from None
    opts = {"adam": torch.optim.Adam(model.parameters(), lr=cfg.lr)}
    sampler = BlendSampler(train_photos, cfg.crop, cfg.seed)
    val_sampler = BlendSampler(val_photos, min(cfg.crop, min(min(p.shape[:2]) for p in val_photos)), cfg.seed + 1)
    val = [val_sampler.batch(1) for _ in range(16)]
    state = {"step": 0, "elapsed": 0.0, "history": [], "config": asdict(cfg), "model": model_cfg.to_json()}
    if resume and checkpoint.exists():
        state = load_checkpoint(checkpoint, model, opts, strict=False) | {"config": asdict(cfg)}
        sampler.rng = np.random.default_rng(cfg.seed + state["step"])
    autocast = cfg.bf16 and bf16_useful("cpu")
    model.train()

    def step(progress: float) -> tuple[torch.Tensor, dict]:
        for group in opts["adam"].param_groups:
            group["lr"] = cosine_lr(cfg.lr, progress, floor=0.02, warmup=0.03)
        blend, t, r = sampler.batch(cfg.batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, parts = losses(model, blend, t, r)
        opts["adam"].zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opts["adam"].step()
        return loss, parts

    train_until(
        cfg.minutes,
        cfg.val_every,
        state,
        step,
        lambda: {"val_psnr": validate(model, val)},
        lambda: save_checkpoint(checkpoint, model, opts, state),
        on_progress,
        max_steps=cfg.steps,
    )
    return model.eval(), state
