"""Training the enhancement network (models/nets/enhance.py) on decoded frames: pairs of
(frame as the base codec decoded it, the frame it was given), with the crf it was coded
at. The caller makes the pairs (ncodec.video.enhance_data codes pans over photos through
the real encoder); this recipe only sees tensors.

Weighted MSE on the 4:2:0 planes (PLANE_WEIGHTS: what RGB PSNR counts), Adam with the
shared cosine schedule; the last ``qat`` share of the run trains the quantised network
(activation steps calibrated once when it starts), so the weights that ship are the ones
the integer decoder runs.

Training runs in fp32, never under bf16 autocast: the corrections it learns are
fractions of a pixel level, below bf16's resolution of the inputs and features (8 bits
of mantissa). Under bf16 a 3-minute run learned nothing (validation gain 0.000 dB against
+0.014 in fp32), and on this CPU it was slower per step as well."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..nets.enhance import (
    DELTA_STEP,
    PLANE_WEIGHTS,
    EnhanceConfig,
    Enhancer,
    IntegerEnhancer,
    pack,
    unpack,
    upsample,
)
from .loop import cosine_lr, load_checkpoint, save_checkpoint, train_until
from .samplers import area_weights


@dataclass
class EnhanceTrainConfig:
    minutes: float = 60.0
    steps: int | None = None  # stop after this many steps (tests); else the time budget
    crop: int = 48  # window side at chroma resolution (96 luma pixels)
    batch: int = 16
    lr: float = 1e-3
    qat: float = 0.15  # the last share of the run trains the quantised network
    seed: int = 0
    threads: int | None = None
    val_every: float = 60.0


@dataclass
class Clip:
    """Frames of one coded clip as packed planes (F,6,h,w uint8), the source's (F,6,h,w, or
    2h,2w for a base layer coded at half size) and the crf it was coded at."""

    decoded: torch.Tensor
    source: torch.Tensor
    crf: int

    @property
    def scale(self) -> int:
        return self.source.shape[-1] // self.decoded.shape[-1]


class ClipSampler:
    """Random windows of random frames (clips drawn by pixel count), flipped at random."""

    def __init__(self, clips: list[Clip], crop: int, seed: int):
        self.clips = [c for c in clips if min(c.decoded.shape[-2:]) >= crop]
        if not self.clips:
            raise ValueError(f"no training clip is at least {2 * crop} px on its short side")
        self.weights = area_weights([c.decoded.shape[-2:] for c in self.clips])
        self.weights = self.weights * [len(c.decoded) for c in self.clips]
        self.weights /= self.weights.sum()
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        decoded, source, crf = [], [], []
        c = self.crop
        for i in self.rng.choice(len(self.clips), size=n, p=self.weights):
            clip = self.clips[i]
            f = int(self.rng.integers(0, len(clip.decoded)))
            h, w = clip.decoded.shape[-2:]
            y, x = int(self.rng.integers(0, h - c + 1)), int(self.rng.integers(0, w - c + 1))
            decoded.append(clip.decoded[f, :, y : y + c, x : x + c])
            k = clip.scale
            source.append(clip.source[f, :, k * y : k * (y + c), k * x : k * (x + c)])
            crf.append(clip.crf)
        d, s = torch.stack(decoded).float(), torch.stack(source).float()
        if self.rng.integers(0, 2):  # flips act on the picture, so unpack the luma phases first
            d, s = (pack(*(p.flip(-1) for p in unpack(t))) for t in (d, s))
        if self.rng.integers(0, 2):
            d, s = (pack(*(p.flip(-2) for p in unpack(t))) for t in (d, s))
        return d, s, torch.tensor(crf, dtype=torch.float32)


def weighted_mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The RGB-weighted squared error of packed planes, in (pixel / 255)^2."""
    err = ((out - target) / 255).square().mean(dim=(0, 2, 3))
    wy, wu, wv = PLANE_WEIGHTS
    return wy * err[:4].mean() + wu * err[4] + wv * err[5]


def psnr_of(mse: float) -> float:
    return 10 * math.log10(sum(PLANE_WEIGHTS) / max(mse, 1e-12))


@torch.no_grad()
def validate(model: Enhancer, clips: list[Clip]) -> dict:
    """Weighted-YUV PSNR of the decoded frames and of the integer network's output, in dB,
    averaged over clips, and the gain."""
    net = IntegerEnhancer(model) if model.quantised else None
    base, out = [], []
    for clip in clips:
        d, s = clip.decoded, clip.source.float()
        restored = net(d, clip.crf).float() if net else model(d.float(), clip.crf).round().clamp(0, 255)
        base.append(psnr_of(weighted_mse(upsample(d, clip.scale).float(), s).item()))
        out.append(psnr_of(weighted_mse(restored, s).item()))
    b, o = float(np.mean(base)), float(np.mean(out))
    return {"val_base_psnr": round(b, 3), "val_psnr": round(o, 3), "val_gain": round(o - b, 3)}


def start_from(model: Enhancer, init: dict) -> None:
    """Load ``init`` into ``model``. Weights of the same packed network without a luma
    branch fill that part, and the new branch keeps its initialisation (its output layer
    is zero, so the network starts as the one it grows from)."""
    state = model.state_dict()
    steps = init.get("act_step")
    if model.luma_plan and steps is not None and len(steps) < len(state["act_step"]):
        init = state | init | {"act_step": torch.cat([steps, state["act_step"][len(steps) :]])}
    try:
        model.load_state_dict(init)
    except RuntimeError:
        raise ValueError("the --init weights are not of this network's form") from None


def train(
    cfg: EnhanceTrainConfig,
    model_cfg: EnhanceConfig,
    clips: list[Clip],
    val_clips: list[Clip],
    checkpoint: Path,
    *,
    resume: bool = False,
    init: dict | None = None,
    on_progress=None,
) -> tuple[Enhancer, dict]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    sampler = ClipSampler(clips, cfg.crop, cfg.seed)
    model = Enhancer(model_cfg)
    if init is not None:
        start_from(model, init)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    state = {"step": 0, "elapsed": 0.0, "history": [], "config": asdict(cfg), "quantised": False}
    if resume and checkpoint.exists():
        state = load_checkpoint(checkpoint, model, {"adam": opt}) | {"config": asdict(cfg)}
        model.quantised = bool(state.get("quantised"))

    def step(progress: float) -> tuple[torch.Tensor, dict]:
        if progress >= 1 - cfg.qat and not model.quantised:
            d, _, crf = sampler.batch(64)
            model.calibrate(d, crf)
            model.quantised, state["quantised"] = True, True
        for group in opt.param_groups:
            group["lr"] = cosine_lr(cfg.lr, progress, floor=0.05, warmup=0.02)
        d, s, crf = sampler.batch(cfg.batch)
        loss = weighted_mse(model(d, crf), s)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss, {"psnr": round(psnr_of(loss.item()), 3), "quantised": model.quantised}

    train_until(
        cfg.minutes,
        cfg.val_every,
        state,
        step,
        lambda: validate(model, val_clips),
        lambda: save_checkpoint(checkpoint, model, {"adam": opt}, state),
        on_progress,
        max_steps=cfg.steps,
    )
    if not model.quantised:  # a run too short to reach its quantised phase still ships integer weights
        d, _, crf = sampler.batch(64)
        model.calibrate(d, crf)
        model.quantised = True
    return model.eval(), state


def tune_biases(
    model: Enhancer,
    decoded: torch.Tensor,
    source: torch.Tensor,
    crf: int,
    *,
    steps: int = 0,
    seconds: float | None = None,
    lr: float = 3e-4,
    batch: int = 8,
    crop: int = 64,
    seed: int = 0,
) -> torch.Tensor:
    """STDO's overfitting, aimed: fine-tune only the biases of the quantised ``model`` on one
    segment (packed planes as the base decoded them, and the source) for ``seconds`` (else
    ``steps`` steps). Returns the update as integers in DELTA_STEP units, one per bias
    (what the bitstream carries; IntegerEnhancer applies it)."""
    import copy
    import time

    torch.manual_seed(seed)
    tuned = copy.deepcopy(model).train()
    tuned.quantised = True
    for name, p in tuned.named_parameters():
        p.requires_grad_(name.endswith("bias"))
    biases = [conv.bias for conv in tuned.convs]
    opt = torch.optim.Adam(biases, lr=lr)
    sampler = ClipSampler([Clip(decoded, source, crf)], min(crop, *decoded.shape[-2:]), seed)
    start, step = time.monotonic(), 0
    while True:
        progress = (time.monotonic() - start) / seconds if seconds else step / max(steps, 1)
        if progress >= 1 or (not seconds and not steps):
            break
        for group in opt.param_groups:
            group["lr"] = cosine_lr(lr, progress)
        d, s, c = sampler.batch(batch)
        loss = weighted_mse(tuned(d, c), s)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    before = torch.cat([conv.bias.detach() for conv in model.convs])
    after = torch.cat([b.detach() for b in biases])
    return torch.round((after - before) / DELTA_STEP).clamp(-(1 << 15), 1 << 15).long()
