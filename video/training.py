"""Training drivers (`ncodec train MODEL ...`): load the photos, run a recipe from
ncodec.models, write fp16 safetensors weights with a JSON model card beside them."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ncodec.codec.atomic import AtomicPath, check_output_path
from ncodec.codec.errors import InputError, UsageError

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
    progress: bool = False,
) -> dict:
    """Train ESPCN ×``scale`` on the photos under ``data``; write ``out`` and its model card.
    Returns the model card."""
    from ncodec.models import train_espcn as recipe

    if scale not in (2, 3, 4):
        raise UsageError("--scale must be 2, 3 or 4")
    out_path = check_output_path(out)
    try:
        init_state = load_file(init) if init else None
    except Exception as e:  # missing file or not safetensors
        raise InputError(f"--init {init}: cannot load weights ({e})") from None
    files = image_files(data)
    # every 25th image is held out for validation curves (centre crops, fixed)
    val_files = files[::25]
    train_files = [f for i, f in enumerate(files) if i % 25] or files  # one photo: it serves both
    bar = tqdm(files, desc="load", unit="img", file=sys.stderr, disable=not progress, leave=False)
    pairs = {}
    for f in bar:
        rgb = read_image(f)[0]
        if f in val_files:  # a fixed centre crop keeps validation quick
            h, w = rgb.shape[:2]
            c = 192 // scale * scale
            top, left = max(0, (h - c) // 2), max(0, (w - c) // 2)
            rgb = rgb[top : top + c, left : left + c]
        pairs[f] = recipe.make_pair(rgb, scale)
    overrides = {k: v for k, v in {"patch": patch, "batch": batch, "lr": lr}.items() if v is not None}
    cfg = recipe.TrainConfig(scale=scale, minutes=minutes, seed=seed, threads=threads, **overrides)
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
            cfg, [pairs[f] for f in train_files], [pairs[f] for f in val_files], checkpoint,
            resume=resume, on_progress=report, init=init_state,
        )  # fmt: skip
    except ValueError as e:  # e.g. every photo smaller than one training patch
        raise InputError(f"{data}: {e}") from None
    progress.close()
    tensors = {k: v.half().contiguous() for k, v in model.state_dict().items()}
    card = {
        "model": "ESPCN (Shi et al. 2016), Y channel",
        "scale": scale,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "weights": "fp16 safetensors",
        "training_data": {"folder": str(data), "train_images": len(train_files), "val_images": len(val_files)},
        "recipe": state["config"] | {
            "command": f"ncodec train espcn --scale {scale} --data {data} --out {out} "
                       f"--minutes {minutes} --seed {seed}" + (f" --init {init}" if init else "")
                       + "".join(f" --{k} {v}" for k, v in overrides.items()),
            "lr_kernel": "bicubic a=-0.5 antialiased (torch interpolate, antialias=True), RGB, rounded to uint8",
            "init": f"continued from {init}" if init else "bicubic initialisation (models/espcn.py)",
        },
        "steps": state["step"],
        "wall_seconds": round(state["elapsed"], 1),
        "val_psnr_y": {"bicubic": state["bicubic_val"], "espcn": state["best_val"]},
        "history": state["history"],
        "date": datetime.date.today().isoformat(),
        "machine": f"{torch.get_num_threads()} torch threads, CPU",
    }
    with AtomicPath(out_path) as tmp:
        save_file(tensors, str(tmp.path), metadata={"scale": str(scale)})
    with AtomicPath(out_path.with_suffix(".json")) as tmp:
        tmp.path.write_text(json.dumps(card, indent=2))
    return card
