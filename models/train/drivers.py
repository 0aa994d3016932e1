"""The ``ncodec train MODEL ...`` drivers: load the photos, run a recipe, write the
weights and their model card through the zoo (fp16; the MLIC codec's large tensors int8).

Photos are read with OpenCV as 8-bit RGB (grayscale expanded, alpha dropped). Three
parts (docs/BENCHMARKS.md, "Evaluation protocol"): every 25th photo of the sorted folder
is held out for validation (which may steer any choice); of the rest, about one in twenty,
chosen by a hash of its path, is the test split, which no training run or choice reads and
which is only ever reported; training reads what is left."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..nets import count_parameters
from ..zoo import read_weights, storage_tensors, write_model

PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


class TrainingError(ValueError):
    """A data folder or weights file the recipe cannot train on; one line for the user."""


class TrainingUsageError(TrainingError):
    """A training request that is itself invalid (an option out of range)."""


def photo_files(folder: str) -> list[Path]:
    """Photos under ``folder`` (recursively), sorted so that the split is reproducible."""
    root = Path(folder)
    if not root.is_dir():
        raise TrainingError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not files:
        raise TrainingError(f"{root}: no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in it")
    return files


def read_photo(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB of a training photo."""
    bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise TrainingError(f"{path}: not an image OpenCV can read")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def train_espcn(
    data: str,
    out: str,
    scale: int,
    *,
    minutes: float = 20.0,
    seed: int = 0,
    threads: int | None = None,
    checkpoint: str | None = None,
    resume: bool = False,
    init: str | None = None,
    patch: int | None = None,
    batch: int | None = None,
    lr: float | None = None,
    downscales: tuple[float, ...] | None = None,
    progress: bool = False,
    command: str = "(called from Python)",
) -> dict:
    """Train ESPCN ×``scale`` on the photos under ``data``; write ``out`` and its model card.
    ``downscales`` adds each training photo at those sizes too (e.g. (1.0, 0.75, 0.5)).
    Returns the model card."""
    from ncodec.models.train import espcn as recipe

    if scale not in (2, 3, 4):
        raise TrainingUsageError("--scale must be 2, 3 or 4")
    out_path = Path(out)
    init_state = load_init(init)
    train_files, val_files = split_photos(data)
    overrides = {
        k: v for k, v in {"patch": patch, "batch": batch, "lr": lr, "downscales": downscales}.items() if v is not None
    }
    cfg = recipe.TrainConfig(scale=scale, minutes=minutes, seed=seed, threads=threads, **overrides)
    if not all(0.2 <= f <= 1.0 for f in cfg.downscales):
        raise TrainingUsageError("--downscales must be factors in 0.2..1.0")
    bar = tqdm(train_files + val_files, desc="load", unit="img", file=sys.stderr, disable=not progress, leave=False)
    pairs, train_pairs = {}, []
    for f in bar:
        rgb = read_photo(f)
        if f in val_files:  # a fixed centre crop keeps validation quick
            pairs[f] = recipe.make_pair(centre_crop(rgb, 192 // scale * scale), scale)
        if f in train_files:  # (a folder of one photo uses it for both)
            train_pairs += [recipe.make_pair(copy, scale) for copy in recipe.downscaled_copies(rgb, cfg.downscales)]
    checkpoint = Path(checkpoint or str(out_path) + ".ckpt")
    progress = tqdm(
        total=round(cfg.minutes * 60),
        desc=f"train espcn x{scale}",
        unit="s",
        file=sys.stderr,
        disable=not progress,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s [{remaining}] {postfix}",
    )

    def report(entry: dict) -> None:
        progress.n = min(progress.total, round(entry["seconds"]))
        progress.set_postfix(step=entry["step"], val_psnr=f"{entry['val_psnr']:.2f}", best=f"{entry['best_val']:.2f}")
        if progress and not sys.stderr.isatty():  # logs get one JSON line per validation
            print(json.dumps(entry), file=sys.stderr, flush=True)

    model, state = run_recipe(
        recipe.train,
        data,
        cfg,
        train_pairs,
        [pairs[f] for f in val_files],
        checkpoint,
        resume=resume,
        on_progress=report,
        init=init_state,
    )
    progress.close()
    tensors = storage_tensors(model.state_dict())
    init_text = (
        f"continued from {init}"
        if init
        else "bicubic initialisation (models/nets/espcn.py), "
        + ("compact: four pass-through channels" if cfg.compact_init else "one channel per phase")
    )
    card = model_card(
        "ESPCN (Shi et al. 2016), Y channel",
        model,
        state,
        {"folder": str(data), "train_images": len(train_files), "val_images": len(val_files)},
        {
            "lr_kernel": "bicubic a=-0.5 antialiased (torch interpolate, antialias=True), RGB, rounded to uint8",
            "init": init_text,
        },
        scale=scale,
        weights="fp16 safetensors",
    ) | {"val_psnr_y": {"bicubic": state["bicubic_val"], "espcn": state["best_val"]}, "history": state["history"]}
    return write_model(out_path, tensors, card, {"scale": str(scale)}, command=command, init=init)


def run_recipe(train, data: str, *args, **kwargs):
    """Call a recipe's ``train``; a ValueError (e.g. every photo smaller than one training
    crop) becomes the one-line TrainingError that names the data folder."""
    try:
        return train(*args, **kwargs)
    except ValueError as e:
        raise TrainingError(f"{data}: {e}") from None


def model_card(description: str, model, state: dict, training_data: dict, recipe: dict, **fields) -> dict:
    """The model card fields every recipe writes; ``fields`` go in after the weights line."""
    return (
        {"model": description}
        | fields
        | {
            "parameters": count_parameters(model),
            "training_data": training_data,
            "recipe": state["config"] | recipe,
            "steps": state["step"],
            "wall_seconds": round(state["elapsed"], 1),
        }
    )


def load_init(init: str | None) -> dict | None:
    """The state dict of ``--init WEIGHTS`` (safetensors), or None."""
    try:
        return read_weights(init) if init else None
    except Exception as e:  # missing file or not safetensors
        raise TrainingError(f"--init {init}: cannot load weights ({e})") from None


def _load_photos(data: str, progress: bool) -> tuple[list[Path], list[Path], dict]:
    """The training and validation files of ``data`` and every photo, decoded once."""
    train_files, val_files = split_photos(data)
    bar = tqdm(train_files + val_files, desc="load", unit="img", file=sys.stderr, disable=not progress, leave=False)
    return train_files, val_files, {f: read_photo(f) for f in bar}


def json_lines(progress: bool):
    """A progress callback that prints each validation entry as one JSON line on stderr."""

    def report(entry: dict) -> None:
        if progress:
            print(json.dumps(entry), file=sys.stderr, flush=True)

    return report


# The test split's rule, fixed on 2026-12-07: a photo is a test photo when the first byte
# of SHA-256("ncodec test split 1:" + its path under the data folder) is below 13 (about
# one in twenty). A hash of the path, not a position, so adding photos moves none.
TEST_SPLIT_KEY = "ncodec test split 1:"


def _in_test_split(root: Path, path: Path) -> bool:
    return hashlib.sha256((TEST_SPLIT_KEY + path.relative_to(root).as_posix()).encode()).digest()[0] < 13


def split_photos(data: str) -> tuple[list[Path], list[Path]]:
    """Training and validation photos: every 25th is held out (fixed), for validation
    curves; the test split (heldout_test_photos) is in neither."""
    files = photo_files(data)
    val_files = files[::25]
    train_files = [f for i, f in enumerate(files) if i % 25 and not _in_test_split(Path(data), f)]
    return train_files or files, val_files  # a folder of one photo: it serves both


def heldout_test_photos(data: str) -> list[Path]:
    """The test split of ``data``: photos no training run or choice reads, only reported."""
    files = photo_files(data)
    return [f for i, f in enumerate(files) if i % 25 and _in_test_split(Path(data), f)]


def centre_crop(rgb, size: int):
    h, w = rgb.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return rgb[top : top + size, left : left + size]


def train_mlic(
    data: str,
    out: str,
    *,
    minutes: float = 60.0,
    config: str = "small",
    crop: int = 128,
    zoom: float = 1.0,
    batch: int = 8,
    seed: int = 0,
    threads: int | None = None,
    checkpoint: str | None = None,
    resume: bool = False,
    init: str | None = None,
    lr: float | None = None,
    progress: bool = False,
    command: str = "(called from Python)",
) -> dict:
    """Train the MLICv2-style image codec on the photos under ``data``; write ``out``
    (stored as models/mlicv2.STORAGE says) and its model card. Returns the card."""
    from ncodec.models.nets.mlicv2 import PAPER, SMALL, STORAGE, WIDE, WIDER, stored_int8
    from ncodec.models.train import mlic as recipe

    configs = {"small": SMALL, "wide": WIDE, "wider": WIDER, "paper": PAPER}
    if config not in configs:
        raise TrainingUsageError(f"--config must be one of {', '.join(configs)}")
    if not 0.2 <= zoom <= 1.0:
        raise TrainingUsageError("--zoom must be in 0.2..1.0")
    out_path = Path(out)
    train_files, val_files, photos = _load_photos(data, progress)
    val = [centre_crop(photos[f], 256) for f in val_files]
    val = [v[: v.shape[0] // 64 * 64, : v.shape[1] // 64 * 64] for v in val if min(v.shape[:2]) >= 64]
    cfg = recipe.MLICTrainConfig(minutes=minutes, crop=crop, zoom=zoom, batch=batch, seed=seed, threads=threads)
    if lr is not None:
        cfg.lr = lr
    init_state = load_init(init)
    checkpoint = Path(checkpoint or str(out_path) + ".ckpt")

    model, state = run_recipe(
        recipe.train,
        data,
        cfg,
        configs[config],
        [photos[f] for f in train_files],
        val,
        checkpoint,
        resume=resume,
        init=init_state,
        on_progress=json_lines(progress),
    )
    tensors = storage_tensors(model.state_dict(), stored_int8)
    card = model_card(
        "MLICv2-style learned image codec (models/nets/mlicv2.py), gain units for 4 rate levels",
        model,
        state,
        {"folder": str(data), "train_images": len(train_files), "val_crops": len(val)},
        {
            "init": _mlic_init(init, init_state, configs[config]),
            "lambdas": list(recipe.MLICv2.LAMBDAS),
            "loss": "lambda * 255^2 * MSE + bpp (likelihoods of y and z), aux loss on the bottleneck quantiles",
        },
        config=configs[config].to_json(),
        weights=STORAGE,
    ) | {"history": state["history"]}
    return write_model(
        out_path, tensors, card, {"config": json.dumps(configs[config].to_json())}, command=command, init=init
    )


def _mlic_init(init: str | None, state: dict | None, cfg) -> str:
    """How an MLIC run started, for its model card."""
    if not init:
        return "random initialisation (block-DCT warm start where the config has it)"
    narrow = state["y_gain"].shape[1] if "y_gain" in state else cfg.M
    if narrow < cfg.M:
        return f"widened from {init} (latent {narrow} -> {cfg.M} channels, models/train/mlic.widen), then trained"
    return f"continued from {init}"


def train_dereflect(
    data: str,
    out: str,
    *,
    minutes: float = 60.0,
    crop: int = 160,
    batch: int = 8,
    seed: int = 0,
    threads: int | None = None,
    checkpoint: str | None = None,
    resume: bool = False,
    init: str | None = None,
    lr: float | None = None,
    progress: bool = False,
    command: str = "(called from Python)",
) -> dict:
    """Train the reflection-removal network on blends synthesized from the photos under
    ``data``; write ``out`` (fp16 safetensors) and its model card. Returns the card."""
    from ncodec.models.nets.rrformer import RRConfig
    from ncodec.models.train import rrformer as recipe

    out_path = Path(out)
    init_state = load_init(init)
    train_files, val_files, photos = _load_photos(data, progress)
    cfg = recipe.RRTrainConfig(minutes=minutes, crop=crop, batch=batch, seed=seed, threads=threads)
    if lr is not None:
        cfg.lr = lr
    model_cfg = RRConfig()
    checkpoint = Path(checkpoint or str(out_path) + ".ckpt")

    model, state = run_recipe(
        recipe.train,
        data,
        cfg,
        model_cfg,
        [photos[f] for f in train_files],
        [photos[f] for f in val_files],
        checkpoint,
        resume=resume,
        init=init_state,
        on_progress=json_lines(progress),
    )
    tensors = storage_tensors(model.state_dict())
    card = model_card(
        "RRFormer-style reflection removal (models/nets/rrformer.py)",
        model,
        state,
        {
            "folder": str(data),
            "train_images": len(train_files),
            "val_images": len(val_files),
            "blends": "synthesized on the fly (models/train/rrformer.py)",
        },
        {"loss": "L1(T) + 0.5 L1(grad T) + 0.5 L1(R) + 0.2 exclusion(T, R)"},
        config=model_cfg.to_json(),
        weights="fp16 safetensors",
    ) | {"history": state["history"]}
    return write_model(out_path, tensors, card, {"config": json.dumps(model_cfg.to_json())}, command=command, init=init)
