"""Training recipe for the MLICv2-style image codec (``ncodec train mlic``).

Data: uint8 RGB photos (the caller loads them); random crops of ``crop`` px with flips.
Each batch item gets a random rate level; the loss is lambda(level) * 255^2 * MSE + bpp
(bpp from the likelihoods of y and z), plus the EntropyBottleneck's auxiliary loss on its
own optimizer. Adam, gradient-norm clipping, a short warm-up then a cosine decay over
the time budget; channels-last tensors with bf16 autocast where the CPU computes bf16
natively (2.2x the steps of fp32 with the x/2 MetaFormer blocks left out; latents,
entropy parameters and likelihoods stay fp32, see MLICv2.forward); fixed seed; checkpoints (model, both optimizers' moments, step, elapsed
time) that a later run resumes from exactly, so training continues across sessions.
Validation: fixed centre crops of held-out photos, bpp and PSNR per rate level from the
likelihoods (the bitstream's real sizes are measured by the benchmark).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..measure import psnr_from_mse
from ..nets.mlicv2 import BlockDCT, MLICConfig, MLICv2
from ..nets.precision import bf16_useful
from .loop import cosine_lr, load_checkpoint, save_checkpoint, train_until
from .samplers import CropSampler


@dataclass
class MLICTrainConfig:
    minutes: float = 60.0  # wall-clock budget; the schedule follows it
    crop: int = 128
    zoom: float = 1.0  # CropSampler: half the crops shrunk from regions up to 1/zoom larger
    batch: int = 8
    lr: float = 1e-4
    aux_lr: float = 1e-3
    clip: float = 1.0  # gradient-norm clipping
    seed: int = 0
    val_every: float = 300.0  # seconds between validations/checkpoints
    threads: int | None = None
    bf16: bool = True
    steps: int | None = None  # stop after this many steps in all (the schedule then follows them)


def rate_distortion(model: MLICv2, x: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The training objective per batch, with its parts (bpp, mse, psnr) for logging."""
    out = model(x, levels)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(-lik.log2().sum() for lik in out["likelihoods"].values()) / pixels
    mse_each = ((out["x_hat"] - x) ** 2).mean(dim=(1, 2, 3))
    lam = x.new_tensor(MLICv2.LAMBDAS)[levels.long()]
    loss = (lam * 255**2 * mse_each).mean() + bpp
    mse = mse_each.mean().item()
    return loss, {"bpp": bpp.item(), "mse": mse, "psnr": psnr_from_mse(mse, peak=1.0)}


@torch.no_grad()
def validate(model: MLICv2, images: list[torch.Tensor]) -> dict:
    """bpp and PSNR per rate level (from the likelihoods) on held-out crops."""
    model.eval()
    result = {}
    for level in range(model.cfg.levels):
        bpps, psnrs = [], []
        for x in images:
            _, parts = rate_distortion(model, x, torch.tensor([level]))
            bpps.append(parts["bpp"])
            psnrs.append(parts["psnr"])
        result[str(level)] = {"bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))}
    model.train()
    return result


def _residual_directions(model: MLICv2, images: list[np.ndarray], k: int, seed: int, crops: int = 200):
    """(A, S): the rank-``k`` linear map from 16x16 picture blocks to what ``model``'s
    transforms leave out of them, A (k x 768) reading the block, S (768 x k, orthonormal
    columns) writing the correction. Reduced-rank regression of the residual of the
    finest level's unquantized reconstruction on the block, over random 256-px crops."""
    sampler = CropSampler(images, 256, seed)
    xx = torch.zeros(768, 768, dtype=torch.float64)
    rx = torch.zeros(768, 768, dtype=torch.float64)
    top = model.cfg.levels - 1
    blocks = lambda t: F.pixel_unshuffle(t, BlockDCT.BLOCK).permute(1, 0, 2, 3).reshape(768, -1).double()  # noqa: E731
    with torch.no_grad():
        for _ in range(crops // 8):
            x = sampler.batch(8)
            y = model.analysis(x) * model.gain(model.y_gain, float(top)) * model.gain(model.y_inverse, float(top))
            u, r = blocks(x - 0.5), blocks(x - model.synthesis(y))
            xx += u @ u.T
            rx += r @ u.T
    fit = rx @ torch.linalg.inv(
        xx + 1e-6 * torch.eye(768, dtype=torch.float64)
    )  # least squares: residual ~ fit @ block
    _, vectors = torch.linalg.eigh(fit @ xx @ fit.T)  # principal directions of the fitted residual
    s = vectors[:, -k:]
    return (s.T @ fit).float(), s.float()


def widen(init: dict, cfg: MLICConfig, images: list[np.ndarray], seed: int = 0) -> MLICv2:
    """A ``cfg`` model (more latent channels, same slice size and hyper features) from the
    weights ``init`` of a narrower one, coding exactly as before plus the new channels.

    The transforms of a trained narrow model leave a residual its latent cannot carry
    (the ceiling: SMALL reconstructs Set14 at 31.7 dB from unquantized latents). The new
    channels start as the block-linear map that best predicts that residual
    (:func:`_residual_directions`) in the block-DCT path, scaled like its coefficients;
    every layer reading the latent gets zero weights for them, so the old slices' entropy
    model, hyperprior and nonlinear transforms are unchanged; the new slices start from
    their own initialisation with zero means and small scales, and their gains at every
    level from the old channels' geometric mean."""
    m_old = init["y_gain"].shape[1]
    c = cfg.slice_channels
    old_cfg = replace(cfg, M=m_old, slices=m_old // c)
    cannot = ValueError(f"weights with {m_old} latent channels cannot be widened into this configuration")
    if m_old >= cfg.M or m_old % c or not cfg.dct_start:
        raise cannot
    old = MLICv2(old_cfg)
    try:
        old.load_state_dict(init)
    except RuntimeError:  # another transform width or hyper-feature count
        raise cannot from None
    model = MLICv2(cfg)
    state = model.state_dict()
    for key, value in old.state_dict().items():  # grown tensors: the old values in their leading corner
        if state[key].shape != value.shape:
            state[key] = torch.zeros_like(state[key])
        state[key][tuple(slice(0, n) for n in value.shape)] = value
    a, s = _residual_directions(old, images, cfg.M - m_old, seed)
    state["dct.analysis.weight"][m_old:] = (a * BlockDCT.SCALE)[:, :, None, None]
    state["dct.synthesis.weight"][:, m_old:] = (s / BlockDCT.SCALE)[:, :, None, None]
    for key in ("y_gain", "y_inverse"):
        state[key][:, m_old:] = init[key].float().abs().log().mean(dim=1, keepdim=True).exp()
    start_scale = 0.3  # zeros cost ~0.1 bit at first; training raises the scales that need it
    for i in range(m_old // c, cfg.slices):
        state[f"slices.{i}.params.4.weight"].zero_()
        state[f"slices.{i}.params.4.bias"][:c] = 0
        state[f"slices.{i}.params.4.bias"][c:] = math.log(math.expm1(start_scale - 0.11))
        state[f"slices.{i}.lrp.2.weight"].zero_()
        state[f"slices.{i}.lrp.2.bias"].zero_()
    model.load_state_dict(state)
    return model


def _main_and_aux(model: MLICv2) -> tuple[list, list]:
    aux = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    main = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    return main, aux


def train(
    cfg: MLICTrainConfig,
    model_cfg: MLICConfig,
    train_images: list[np.ndarray],
    val_images: list[np.ndarray],
    checkpoint: Path,
    *,
    resume: bool = False,
    init: dict | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> tuple[MLICv2, dict]:
    """Train within ``cfg.minutes``; returns the model and a log (validation curve against wall time).
    ``init``: a state dict to start from (e.g. the shipped weights) with a new schedule."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = MLICv2(model_cfg)
    if init is not None and "y_gain" in init and init["y_gain"].shape[1] < model_cfg.M:
        model = widen(init, model_cfg, train_images, cfg.seed)
    elif init is not None:
        try:
            model.load_state_dict(init)
        except RuntimeError:
            raise ValueError("the --init weights are not of this model configuration") from None
    autocast = cfg.bf16 and bf16_useful("cpu")
    layout = torch.channels_last if autocast else torch.contiguous_format
    model = model.to(memory_format=layout)
    main, aux = _main_and_aux(model)
    opts = {"adam": torch.optim.Adam(main, lr=cfg.lr), "aux": torch.optim.Adam(aux, lr=cfg.aux_lr)}
    sampler = CropSampler(train_images, cfg.crop, cfg.seed, cfg.zoom)
    val = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float() / 255 for im in val_images]
    state = {"step": 0, "elapsed": 0.0, "history": [], "config": asdict(cfg), "model": model_cfg.to_json()}
    if resume and checkpoint.exists():
        state = load_checkpoint(checkpoint, model, opts, strict=False) | {"config": asdict(cfg)}
        sampler.rng = np.random.default_rng(cfg.seed + state["step"])
    g = torch.Generator().manual_seed(cfg.seed + state["step"])
    model.train()

    def step(progress: float) -> tuple[torch.Tensor, dict]:
        for group in opts["adam"].param_groups:
            group["lr"] = cosine_lr(cfg.lr, progress, floor=0.05, warmup=0.02)
        x = sampler.batch(cfg.batch).contiguous(memory_format=layout)
        levels = torch.randint(0, model_cfg.levels, (cfg.batch,), generator=g)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, parts = rate_distortion(model, x, levels)
        opts["adam"].zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, cfg.clip)
        opts["adam"].step()
        aux_loss = model.aux_loss()
        opts["aux"].zero_grad(set_to_none=True)
        aux_loss.backward()
        opts["aux"].step()
        return loss, parts

    train_until(
        cfg.minutes,
        cfg.val_every,
        state,
        step,
        lambda: {"val": validate(model, val)},
        lambda: save_checkpoint(checkpoint, model, opts, state),
        on_progress,
        max_steps=cfg.steps,
    )
    return model.to(memory_format=torch.contiguous_format).eval(), state
