"""Set5 / Set14 super-resolution table: PSNR-Y (BT.601 studio range, `scale` border
pixels cropped), bicubic and the shipped ESPCN side by side, plus the cost of bf16 in
the form the Upscaler runs it (FastESPCN, eager for images, compiled for videos).

LR inputs are made exactly like the training data (models/train_espcn.make_pair:
antialiased bicubic a=-0.5 in RGB, rounded to uint8, then Y).

    python benchmarks/sr_eval.py --data ../shared/data/eval/sr --out docs/bench/sr --update-cards
    python benchmarks/sr_eval.py --test-split ../shared/data/train --out docs/bench/sr_test   # the test split too

The test split (models/train/drivers.heldout_test_photos) is reported beside Set5 and
Set14, on which the shipped x3/x4 weights were picked.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np
import torch

from ncodec.models.nets.espcn import FastESPCN, bicubic_resize
from ncodec.models.train.drivers import heldout_test_photos, photo_files
from ncodec.models.train.espcn import make_pair, psnr_y
from ncodec.models.upscaler import compiled
from ncodec.models.zoo import card_path, espcn_name, load_espcn, weights_path
from ncodec.video.bench import save_results
from ncodec.video.images import read_image


def shipped_path(model: FastESPCN, compiled_graph: bool):
    """Studio-range Y in [0, 1] -> the same through the network the Upscaler runs on a
    video's Y plane (FastESPCN, studio range, 0..255 in and out), so the score is that of
    what users run."""
    run = compiled(model.subpixels) if compiled_graph else model.subpixels

    def sr(y: torch.Tensor) -> torch.Tensor:
        return model.shuffle(run((y * 255).contiguous(memory_format=torch.channels_last))) / 255

    return sr


@torch.inference_mode()
def evaluate(scale: int, sets: dict[str, list[Path]]) -> dict:
    fp32 = load_espcn(scale)
    fast = FastESPCN(fp32, "bf16", "studio").to(memory_format=torch.channels_last)
    variants = {
        "espcn_fp32": fp32,
        "espcn_bf16": shipped_path(fast, False),
        "espcn_bf16_compiled": shipped_path(fast, True),
    }
    out = {}
    for name, files in sets.items():
        rows = {"bicubic": []} | {k: [] for k in variants}
        for f in files:
            pair = make_pair(read_image(f)[0], scale)
            lr = pair.lr[None]
            rows["bicubic"].append(psnr_y(bicubic_resize(lr, scale)[0], pair.hr, scale))
            for key, sr in variants.items():
                rows[key].append(psnr_y(sr(lr)[0], pair.hr, scale))
        out[name] = {k: float(np.mean(v)) for k, v in rows.items()} | {"images": len(rows["bicubic"])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/eval/sr")
    ap.add_argument("--out", default="docs/bench/sr")
    ap.add_argument("--scales", default="2,3,4")
    ap.add_argument("--update-cards", action="store_true", help="write the scores into the model cards")
    ap.add_argument("--test-split", metavar="TRAIN_DIR", help="also the test split of this training folder")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    sets = {name: photo_files(str(Path(args.data) / name)) for name in ("Set5", "Set14")}
    if args.test_split:
        sets["test split"] = heldout_test_photos(args.test_split)
    results = {int(s): evaluate(int(s), sets) for s in args.scales.split(",")}
    again = f" --test-split {args.test_split}" if args.test_split else ""
    lines = [
        f"Date: {datetime.date.today().isoformat()}. "
        f"Reproduce: `python benchmarks/sr_eval.py --data {args.data}{again} --out {args.out}`",
        "",
        "| scale | set | bicubic | ESPCN (fp32) | gain | ESPCN (bf16) | bf16 cost | bf16 compiled | cost |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scale, per_set in results.items():
        for name, r in per_set.items():
            lines.append(
                f"| ×{scale} | {name} | {r['bicubic']:.2f} | {r['espcn_fp32']:.2f} | "
                f"{r['espcn_fp32'] - r['bicubic']:+.2f} | {r['espcn_bf16']:.2f} | "
                f"{r['espcn_bf16'] - r['espcn_fp32']:+.3f} | {r['espcn_bf16_compiled']:.2f} | "
                f"{r['espcn_bf16_compiled'] - r['espcn_fp32']:+.3f} |"
            )
    table = "\n".join(lines) + "\n"
    save_results(args.out, results, table)
    print(table)
    if args.update_cards:
        for scale, per_set in results.items():
            path = card_path(weights_path(espcn_name(scale)))
            card = json.loads(path.read_text())
            card["scores_psnr_y"] = per_set
            path.write_text(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
