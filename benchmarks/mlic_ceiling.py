"""The reconstruction ceiling of the learned image codec's transforms: PSNR on Set14 of
the synthesis of *unquantized* latents (at the finest level's gains), against the coded
levels, and what a block-DCT of the same latent width reaches. The gap between the
finest level and the ceiling says whether quantization or the latent's width limits the
top of the RD curve.

    python benchmarks/mlic_ceiling.py --set ../shared/data/eval/sr/Set14 [--weights W ...]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from ncodec.models.mlicv2 import BlockDCT, load_weights, shipped_weights
from ncodec.video.images import read_image


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a = (a.clamp(0, 1) * 255).round() / 255
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


@torch.no_grad()
def ceiling_row(weights: Path, pictures: list[torch.Tensor]) -> dict:
    model = load_weights(weights)
    top = float(model.cfg.levels - 1)
    scores = {"ceiling": [], **{f"level {lv}": [] for lv in range(model.cfg.levels)}}
    for x in pictures:
        y = model.analysis(x) * model.gain(model.y_gain, top) * model.gain(model.y_inverse, top)
        scores["ceiling"].append(psnr(model.synthesis(y), x))
        for lv in range(model.cfg.levels):
            scores[f"level {lv}"].append(psnr(model(x, float(lv))["x_hat"], x))
    return {"M": model.cfg.M} | {k: float(np.mean(v)) for k, v in scores.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="../shared/data/eval/sr/Set14")
    ap.add_argument("--weights", nargs="*", default=[str(shipped_weights())])
    args = ap.parse_args()
    pictures = []
    for path in sorted(Path(args.set).glob("*.png")):
        rgb = read_image(path)[0]
        rgb = rgb[: rgb.shape[0] // 64 * 64, : rgb.shape[1] // 64 * 64]  # whole latents, no padding
        pictures.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255)
    print(f"{len(pictures)} pictures of {args.set}, cropped to multiples of 64; PSNR dB (8-bit)\n")
    print("| weights | latent channels | ceiling (unquantized) | level 0 | level 1 | level 2 | level 3 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for w in args.weights:
        r = ceiling_row(Path(w), pictures)
        print(f"| {Path(w).name} | {r['M']} | {r['ceiling']:.2f} | "
              + " | ".join(f"{r[f'level {lv}']:.2f}" for lv in range(4)) + " |")
    print("\nBlock-DCT (16x16, 3/4 of the coefficients luma, unquantized), the warm start's transform:\n")
    print("| coefficients per block (of 768) | PSNR dB |")
    print("|---:|---:|")
    with torch.no_grad():
        for m in (128, 192, 256, 320):
            dct = BlockDCT(m)
            print(f"| {m} | {np.mean([psnr(dct.forward_synthesis(dct.forward_analysis(x)), x) for x in pictures]):.2f} |")


if __name__ == "__main__":
    main()
