"""``ncodec train enhance``: the enhancement network's training data and driver.

The network learns what a base codec does to video, so its data is video coded by the
real encoder: short pans over the training photos (a window moving a few pixels per
frame, as a camera pan does), each coded by the base codec at a random crf and decoded
again. A pair is (decoded planes, the planes the encoder was given). The validation
photos of the fixed split (models/train/drivers.split_photos) give validation clips at
fixed rates; the evaluation clips are never read.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction

import numpy as np
from tqdm import tqdm

from ncodec.codec import Colour, StreamHeader, get
from ncodec.codec.stdo import packed_planes, source_planes
from ncodec.codec.stdo_espcn import downscale
from ncodec.models.nets.enhance import EnhanceConfig
from ncodec.models.train import enhance as recipe
from ncodec.models.train.drivers import (
    TrainingError,
    TrainingUsageError,
    json_lines,
    load_init,
    model_card,
    read_photo,
    run_recipe,
    split_photos,
)
from ncodec.models.zoo import storage_tensors, write_model

BASES = ("av1", "x265", "x264")
VAL_CRFS = {"av1": (28, 36, 44, 52), "x265": (22, 28, 34, 40), "x264": (22, 28, 34, 40)}
CRF_RANGE = {"av1": (24, 60), "x265": (18, 44), "x264": (18, 44)}
UNTAGGED = Colour(2, 2, 2, 0)  # photos: the size-based default matrix, studio range, as a camera file


def pan(rgb: np.ndarray, width: int, height: int, frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``frames`` windows of width x height moving in a straight line across ``rgb``, at
    up to 4 px a frame in each direction."""
    h, w = rgb.shape[:2]
    starts, ends = [], []
    for room in (w - width, h - height):
        travel = int(rng.integers(0, min(room, 4 * (frames - 1)) + 1)) * int(rng.choice((-1, 1)))
        a = int(rng.integers(max(0, -travel), room - max(0, travel) + 1))
        starts.append(a)
        ends.append(a + travel)
    out = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        x, y = (round(a + (b - a) * t) for a, b in zip(starts, ends))
        out.append(np.ascontiguousarray(rgb[y : y + height, x : x + width]))
    return out


def coded_clip(rgb: list[np.ndarray], base: str, crf: int, preset: str | None, scale: int = 1) -> recipe.Clip:
    """The frames coded by ``base`` at ``crf`` (downscaled by ``scale`` first, as the codec
    does) and decoded: a training pair (sides multiples of 2 * scale)."""
    source = source_planes(rgb, UNTAGGED)
    if scale > 1:
        rgb = downscale(rgb, scale)[1]
    codec = get(base)
    h, w = rgb[0].shape[:2]
    header = StreamHeader(
        codec.tag,
        w,
        h,
        Fraction(25),
        len(rgb),
        UNTAGGED,
        params=codec.params(w, h, Fraction(25), {"crf": crf, "preset": preset}),
    )
    sections = list(codec.encode(iter(rgb), header))
    decoded = packed_planes(codec.decode_planes(iter(sections), header))
    return recipe.Clip(decoded=decoded, source=source, crf=crf)


def make_clips(
    photos: list[np.ndarray],
    base: str,
    preset: str | None,
    frames: int,
    crfs,
    seed: int,
    progress: bool,
    desc: str,
    scale: int = 1,
) -> list[recipe.Clip]:
    """One pan per photo, at most 320x256 once coded (the source up to ``scale`` times that;
    sides multiples of 2 * scale), coded at ``crfs[i]``."""
    rng = np.random.default_rng(seed)
    clips = []
    m = 2 * scale
    for rgb, crf in tqdm(list(zip(photos, crfs)), desc=desc, unit="clip", file=sys.stderr, disable=not progress):
        h, w = rgb.shape[:2]
        if min(h, w) < 64:
            continue
        width = int(rng.integers(min(w, 128 * scale) // m, min(w, 320 * scale) // m + 1)) * m
        height = int(rng.integers(min(h, 96 * scale) // m, min(h, 256 * scale) // m + 1)) * m
        clips.append(coded_clip(pan(rgb, width, height, frames, rng), base, int(crf), preset, scale))
    return clips


def train_enhance(
    data: str,
    out: str,
    *,
    base: str = "av1",
    preset: str | None = None,
    minutes: float = 60.0,
    steps: int | None = None,
    channels: int = 24,
    layers: int = 6,
    quarter: int = 0,
    scale: int = 1,
    luma: int = 0,
    luma_layers: int = 5,
    frames: int = 10,
    passes: int = 2,
    crop: int = 48,
    batch: int = 16,
    seed: int = 0,
    threads: int | None = None,
    checkpoint: str | None = None,
    resume: bool = False,
    init: str | None = None,
    lr: float | None = None,
    progress: bool = False,
    command: str = "(called from Python)",
) -> dict:
    """Code ``passes`` pans per training photo with ``base`` at random crfs, train the
    enhancement network on them, write ``out`` (int8 convolutions, fp16 rest) and its
    model card. Returns the card."""
    from pathlib import Path

    if base not in BASES:
        raise TrainingUsageError(f"--base must be one of {', '.join(BASES)}")
    if not 2 <= frames <= 64 or not 1 <= passes <= 16:
        raise TrainingUsageError("--frames must be in 2..64 and --passes in 1..16")
    if scale not in (1, 2, 3, 4):
        raise TrainingUsageError("--scale for enhance must be 1, 2, 3 or 4")
    try:
        model_cfg = EnhanceConfig(channels, layers, quarter, scale, luma, luma_layers)
    except ValueError as e:
        raise TrainingUsageError(str(e)) from None
    init_state = load_init(init)
    train_files, val_files = split_photos(data)
    rng = np.random.default_rng(seed)
    low, high = CRF_RANGE[base]
    train_photos = [read_photo(f) for f in train_files] * passes
    crfs = rng.integers(low, high + 1, len(train_photos))
    clips = make_clips(train_photos, base, preset, frames, crfs, seed, progress, f"code pans ({base})", scale)
    val_photos = [read_photo(f) for f in val_files]
    val_crfs = [VAL_CRFS[base][i % 4] for i in range(len(val_photos))]
    val = make_clips(val_photos, base, preset, frames, val_crfs, seed + 1, progress, "validation pans", scale)
    if not clips or not val:
        raise TrainingError(f"{data}: no photo is at least 64 px on its short side")
    cfg = recipe.EnhanceTrainConfig(minutes=minutes, steps=steps, crop=crop, batch=batch, seed=seed, threads=threads)
    if lr is not None:
        cfg.lr = lr
    out_path = Path(out)
    checkpoint = Path(checkpoint or str(out_path) + ".ckpt")
    model, state = run_recipe(
        recipe.train,
        data,
        cfg,
        model_cfg,
        clips,
        val,
        checkpoint,
        resume=resume,
        init=init_state,
        on_progress=json_lines(progress),
    )
    tensors = storage_tensors(model.state_dict(), lambda name, t: t.ndim == 4)
    final = recipe.validate(model, val)
    card = model_card(
        "enhancement network of the STDO video codec (models/nets/enhance.py): restores 4:2:0 frames "
        f"decoded from {base}" + (f", coded at 1/{scale} size, and upscales them" if scale > 1 else ""),
        model,
        state,
        {
            "folder": str(data),
            "train_photos": len(train_files),
            "val_photos": len(val_files),
            "clips": f"{len(clips)} pans of {frames} frames, {base} preset {preset or 'default'}, "
            f"crf uniform in {low}..{high}; validation at crf {'/'.join(map(str, VAL_CRFS[base]))}",
        },
        {"loss": "RGB-weighted MSE of the Y, Cb, Cr planes; the last share quantisation-aware"},
        config=model_cfg.to_json(),
        base={"codec": base, "preset": preset},
        weights="int8 convolutions (one scale per output channel), fp16 biases and activation steps",
    ) | {"validation": final, "history": state["history"]}
    metadata = {"config": json.dumps(model_cfg.to_json()), "base": base}
    return write_model(out_path, tensors, card, metadata, command=command, init=init)
