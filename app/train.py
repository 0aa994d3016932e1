"""`ncodec train MODEL ...`: load the data (via ncodec.video), run a recipe from ncodec.models,
write fp16 safetensors weights with a JSON model card beside them."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from ncodec.codec.atomic import AtomicPath, check_output_path
from ncodec.codec.errors import UsageError


def train_espcn(args) -> int:
    from ncodec.models import train_espcn as recipe
    from ncodec.video.images import image_files, read_image

    if args.scale not in (2, 3, 4):
        raise UsageError("--scale must be 2, 3 or 4")
    out = check_output_path(args.out)
    files = image_files(args.data)
    # every 25th image is held out for validation curves (centre crops, fixed)
    val_files = files[::25]
    train_files = [f for i, f in enumerate(files) if i % 25]
    bar = tqdm(files, desc="load", unit="img", file=sys.stderr, disable=args.quiet, leave=False)
    pairs = {}
    for f in bar:
        rgb = read_image(f)[0]
        if f in val_files:  # a fixed centre crop keeps validation quick
            h, w = rgb.shape[:2]
            c = 192 // args.scale * args.scale
            top, left = max(0, (h - c) // 2), max(0, (w - c) // 2)
            rgb = rgb[top : top + c, left : left + c]
        pairs[f] = recipe.make_pair(rgb, args.scale)
    cfg = recipe.TrainConfig(scale=args.scale, minutes=args.minutes, seed=args.seed, threads=args.threads)
    checkpoint = Path(args.checkpoint or str(out) + ".ckpt")
    progress = tqdm(total=round(cfg.minutes * 60), desc=f"train espcn x{args.scale}", unit="s", file=sys.stderr,
                    disable=args.quiet, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s [{remaining}] {postfix}")  # fmt: skip

    def report(entry: dict) -> None:
        progress.n = min(progress.total, round(entry["seconds"]))
        progress.set_postfix(step=entry["step"], val_psnr=f"{entry['val_psnr']:.2f}", best=f"{entry['best_val']:.2f}")
        if args.quiet is False and not sys.stderr.isatty():
            print(json.dumps(entry), file=sys.stderr, flush=True)

    model, state = recipe.train(
        cfg, [pairs[f] for f in train_files], [pairs[f] for f in val_files], checkpoint,
        resume=args.resume, on_progress=report,
    )  # fmt: skip
    progress.close()
    tensors = {k: v.half().contiguous() for k, v in model.state_dict().items()}
    card = {
        "model": "ESPCN (Shi et al. 2016), Y channel",
        "scale": args.scale,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "weights": "fp16 safetensors",
        "training_data": {"folder": str(args.data), "train_images": len(train_files), "val_images": len(val_files)},
        "recipe": state["config"] | {
            "command": f"ncodec train espcn --scale {args.scale} --data {args.data} --out {args.out} "
                       f"--minutes {args.minutes} --seed {args.seed}",
            "lr_kernel": "bicubic a=-0.5 antialiased (torch interpolate, antialias=True), RGB, rounded to uint8",
            "init": "bicubic initialisation (models/espcn.py)",
        },
        "steps": state["step"],
        "wall_seconds": round(state["elapsed"], 1),
        "val_psnr_y": {"bicubic": state["bicubic_val"], "espcn": state["best_val"]},
        "history": state["history"],
        "date": datetime.date.today().isoformat(),
        "machine": f"{torch.get_num_threads()} torch threads, CPU",
    }
    with AtomicPath(out) as tmp:
        save_file(tensors, str(tmp.path), metadata={"scale": str(args.scale)})
    with AtomicPath(out.with_suffix(".json")) as tmp:
        tmp.path.write_text(json.dumps(card, indent=2))
    if not args.quiet:
        print(f"{out}: {state['step']} steps in {state['elapsed'] / 60:.1f} min; validation PSNR-Y "
              f"{state['best_val']:.2f} dB (bicubic {state['bicubic_val']:.2f} dB)")  # fmt: skip
    return 0
