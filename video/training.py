"""Training drivers (`ncodec train MODEL ...`): load the photos, run a recipe from
ncodec.models, write safetensors weights (fp16; the MLIC codec's large tensors int8) with
a JSON model card beside them."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from ncodec.codec.atomic import AtomicPath, check_output_path
from ncodec.codec.errors import InputError, UsageError
from ncodec.models.checkpoint import read_weights, storage_tensors

from .images import image_files, read_image


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
) -> dict:
    """Train ESPCN ×``scale`` on the photos under ``data``; write ``out`` and its model card.
    ``downscales`` adds each training photo at those sizes too (e.g. (1.0, 0.75, 0.5)).
    Returns the model card."""
    from ncodec.models import train_espcn as recipe

    if scale not in (2, 3, 4):
        raise UsageError("--scale must be 2, 3 or 4")
    out_path = check_output_path(out)
    init_state = _load_init(init)
    train_files, val_files = split_photos(data)
    overrides = {k: v for k, v in {"patch": patch, "batch": batch, "lr": lr, "downscales": downscales}.items()
                 if v is not None}  # fmt: skip
    cfg = recipe.TrainConfig(scale=scale, minutes=minutes, seed=seed, threads=threads, **overrides)
    if not all(0.2 <= f <= 1.0 for f in cfg.downscales):
        raise UsageError("--downscales must be factors in 0.2..1.0")
    bar = tqdm(train_files + val_files, desc="load", unit="img", file=sys.stderr, disable=not progress, leave=False)
    pairs, train_pairs = {}, []
    for f in bar:
        rgb = read_image(f)[0]
        if f in val_files:  # a fixed centre crop keeps validation quick
            pairs[f] = recipe.make_pair(centre_crop(rgb, 192 // scale * scale), scale)
        if f in train_files:  # (a folder of one photo uses it for both)
            train_pairs += [recipe.make_pair(copy, scale) for copy in recipe.downscaled_copies(rgb, cfg.downscales)]
    checkpoint = Path(checkpoint or str(out_path) + ".ckpt")
    progress = tqdm(total=round(cfg.minutes * 60), desc=f"train espcn x{scale}", unit="s", file=sys.stderr,
                    disable=not progress, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s [{remaining}] {postfix}")  # fmt: skip

    def report(entry: dict) -> None:
        progress.n = min(progress.total, round(entry["seconds"]))
        progress.set_postfix(step=entry["step"], val_psnr=f"{entry['val_psnr']:.2f}", best=f"{entry['best_val']:.2f}")
        if progress and not sys.stderr.isatty():  # logs get one JSON line per validation
            print(json.dumps(entry), file=sys.stderr, flush=True)

    try:
        model, state = recipe.train(
            cfg, train_pairs, [pairs[f] for f in val_files], checkpoint,
            resume=resume, on_progress=report, init=init_state,
        )  # fmt: skip
    except ValueError as e:  # e.g. every photo smaller than one training patch
        raise InputError(f"{data}: {e}") from None
    progress.close()
    tensors = storage_tensors(model.state_dict())
    card = {
        "model": "ESPCN (Shi et al. 2016), Y channel",
        "scale": scale,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "weights": "fp16 safetensors",
        "training_data": {"folder": str(data), "train_images": len(train_files), "val_images": len(val_files)},
        "recipe": state["config"] | {
            "command": f"ncodec train espcn --scale {scale} --data {data} --out {out} "
                       f"--minutes {minutes} --seed {seed}" + (f" --init {init}" if init else "")
                       + (f" --threads {threads}" if threads else "")
                       + "".join(f" --{k} {','.join(map(str, v)) if isinstance(v, tuple) else v}"
                                 for k, v in overrides.items()),
            "lr_kernel": "bicubic a=-0.5 antialiased (torch interpolate, antialias=True), RGB, rounded to uint8",
            "init": f"continued from {init}" if init else "bicubic initialisation (models/espcn.py), " + (
                "compact: four pass-through channels" if cfg.compact_init else "one channel per phase"),
        },
        "steps": state["step"],
        "wall_seconds": round(state["elapsed"], 1),
        "val_psnr_y": {"bicubic": state["bicubic_val"], "espcn": state["best_val"]},
        "history": state["history"],
        "date": datetime.date.today().isoformat(),
        "machine": f"{torch.get_num_threads()} torch threads, CPU",
    }
    card = _continued(card, init)
    write_model(out_path, tensors, card, {"scale": str(scale)})
    return card


def _continued(card: dict, init: str | None) -> dict:
    """``card`` with the runs it continues (the card beside ``--init``, if any) listed
    under previous_runs, each with its validation history (the learning curve across
    sessions), and the steps and wall time summed over all of them."""
    try:
        before = json.loads(Path(init).with_suffix(".json").read_text()) if init else None
    except (OSError, ValueError):
        before = None
    if not isinstance(before, dict):
        return card
    runs = before.get("previous_runs", []) + [
        {k: v for k, v in before.items() if k not in ("previous_runs", "steps_total", "wall_seconds_total")}
    ]
    return card | {
        "previous_runs": runs,
        "steps_total": card["steps"] + sum(r.get("steps", 0) for r in runs),
        "wall_seconds_total": round(card["wall_seconds"] + sum(r.get("wall_seconds", 0) for r in runs), 1),
    }


def _load_init(init: str | None) -> dict | None:
    """The state dict of ``--init WEIGHTS`` (safetensors), or None."""
    try:
        return read_weights(init) if init else None
    except Exception as e:  # missing file or not safetensors
        raise InputError(f"--init {init}: cannot load weights ({e})") from None


def _load_photos(data: str, progress: bool) -> tuple[list[Path], list[Path], dict]:
    """The training and validation files of ``data`` and every photo, decoded once."""
    train_files, val_files = split_photos(data)
    bar = tqdm(train_files + val_files, desc="load", unit="img", file=sys.stderr, disable=not progress, leave=False)
    return train_files, val_files, {f: read_image(f)[0] for f in bar}


def _json_lines(progress: bool):
    """A progress callback that prints each validation entry as one JSON line on stderr."""

    def report(entry: dict) -> None:
        if progress:
            print(json.dumps(entry), file=sys.stderr, flush=True)

    return report


def split_photos(data: str) -> tuple[list[Path], list[Path]]:
    """Training and validation photos: every 25th is held out (fixed), for validation curves."""
    files = image_files(data)
    val_files = files[::25]
    train_files = [f for i, f in enumerate(files) if i % 25] or files  # one photo: it serves both
    return train_files, val_files


def centre_crop(rgb, size: int):
    h, w = rgb.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return rgb[top : top + size, left : left + size]


def write_model(out_path: Path, tensors: dict, card: dict, metadata: dict) -> None:
    """Weights (safetensors) and their model card (JSON beside them), each written atomically."""
    with AtomicPath(out_path) as tmp:
        save_file(tensors, str(tmp.path), metadata=metadata)
    with AtomicPath(out_path.with_suffix(".json")) as tmp:
        tmp.path.write_text(json.dumps(card, indent=2))


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
) -> dict:
    """Train the MLICv2-style image codec on the photos under ``data``; write ``out``
    (stored as models/mlicv2.STORAGE says) and its model card. Returns the card."""
    from ncodec.models import train_mlic as recipe
    from ncodec.models.mlicv2 import PAPER, SMALL, STORAGE, WIDE, WIDER, stored_int8

    configs = {"small": SMALL, "wide": WIDE, "wider": WIDER, "paper": PAPER}
    if config not in configs:
        raise UsageError(f"--config must be one of {', '.join(configs)}")
    if not 0.2 <= zoom <= 1.0:
        raise UsageError("--zoom must be in 0.2..1.0")
    out_path = check_output_path(out)
    train_files, val_files, photos = _load_photos(data, progress)
    val = [centre_crop(photos[f], 256) for f in val_files]
    val = [v[: v.shape[0] // 64 * 64, : v.shape[1] // 64 * 64] for v in val if min(v.shape[:2]) >= 64]
    cfg = recipe.MLICTrainConfig(minutes=minutes, crop=crop, zoom=zoom, batch=batch, seed=seed, threads=threads)
    if lr is not None:
        cfg.lr = lr
    init_state = _load_init(init)
    checkpoint = Path(checkpoint or str(out_path) + ".ckpt")

    try:
        model, state = recipe.train(cfg, configs[config], [photos[f] for f in train_files], val, checkpoint,
                                    resume=resume, init=init_state, on_progress=_json_lines(progress))  # fmt: skip
    except ValueError as e:
        raise InputError(f"{data}: {e}") from None
    tensors = storage_tensors(model.state_dict(), stored_int8)
    card = {
        "model": "MLICv2-style learned image codec (models/mlicv2.py), gain units for 4 rate levels",
        "config": configs[config].to_json(),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "weights": STORAGE,
        "training_data": {"folder": str(data), "train_images": len(train_files), "val_crops": len(val)},
        "recipe": state["config"] | {
            "command": f"ncodec train mlic --data {data} --out {out} --minutes {minutes} --config {config} "
                       f"--crop {crop} --batch {batch} --seed {seed} --lr {cfg.lr}" + (f" --zoom {zoom}" if zoom < 1 else "")
                       + (" --resume" if resume else "")
                       + (f" --init {init}" if init else ""),
            "init": _mlic_init(init, init_state, configs[config]),
            "lambdas": list(recipe.MLICv2.LAMBDAS),
            "loss": "lambda * 255^2 * MSE + bpp (likelihoods of y and z), aux loss on the bottleneck quantiles",
        },
        "steps": state["step"],
        "wall_seconds": round(state["elapsed"], 1),
        "history": state["history"],
        "date": datetime.date.today().isoformat(),
        "machine": f"{torch.get_num_threads()} torch threads, CPU",
    }
    card = _continued(card, init)
    write_model(out_path, tensors, card, {"config": json.dumps(configs[config].to_json())})
    return card


def _mlic_init(init: str | None, state: dict | None, cfg) -> str:
    """How an MLIC run started, for its model card."""
    if not init:
        return "random initialisation (block-DCT warm start where the config has it)"
    narrow = state["y_gain"].shape[1] if "y_gain" in state else cfg.M
    if narrow < cfg.M:
        return f"widened from {init} (latent {narrow} -> {cfg.M} channels, models/train_mlic.widen), then trained"
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
) -> dict:
    """Train the reflection-removal network on blends synthesized from the photos under
    ``data``; write ``out`` (fp16 safetensors) and its model card. Returns the card."""
    from ncodec.models import train_rrformer as recipe
    from ncodec.models.rrformer import RRConfig, count_parameters

    out_path = check_output_path(out)
    init_state = _load_init(init)
    train_files, val_files, photos = _load_photos(data, progress)
    cfg = recipe.RRTrainConfig(minutes=minutes, crop=crop, batch=batch, seed=seed, threads=threads)
    if lr is not None:
        cfg.lr = lr
    model_cfg = RRConfig()
    checkpoint = Path(checkpoint or str(out_path) + ".ckpt")

    try:
        model, state = recipe.train(cfg, model_cfg, [photos[f] for f in train_files], [photos[f] for f in val_files],
                                    checkpoint, resume=resume, init=init_state, on_progress=_json_lines(progress))  # fmt: skip
    except ValueError as e:
        raise InputError(f"{data}: {e}") from None
    tensors = storage_tensors(model.state_dict())
    card = {
        "model": "RRFormer-style reflection removal (models/rrformer.py)",
        "config": model_cfg.to_json(),
        "parameters": count_parameters(model),
        "weights": "fp16 safetensors",
        "training_data": {"folder": str(data), "train_images": len(train_files), "val_images": len(val_files),
                          "blends": "synthesized on the fly (models/train_rrformer.py)"},  # fmt: skip
        "recipe": state["config"] | {
            "command": f"ncodec train dereflect --data {data} --out {out} --minutes {minutes} --crop {crop} "
                       f"--batch {batch} --seed {seed} --lr {cfg.lr}" + (" --resume" if resume else "")
                       + (f" --init {init}" if init else ""),
            "loss": "L1(T) + 0.5 L1(grad T) + 0.5 L1(R) + 0.2 exclusion(T, R)",
        },
        "steps": state["step"],
        "wall_seconds": round(state["elapsed"], 1),
        "history": state["history"],
        "date": datetime.date.today().isoformat(),
        "machine": f"{torch.get_num_threads()} torch threads, CPU",
    }
    card = _continued(card, init)
    write_model(out_path, tensors, card, {"config": json.dumps(model_cfg.to_json())})
    return card
