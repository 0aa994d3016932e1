"""The reconstruction ceiling of the learned image codec's transforms: PSNR on Set14 of
the synthesis of *unquantized* latents (at the finest level's gains), against the coded
levels, and what a block-DCT of the same latent width reaches. The gap between the
finest level and the ceiling says whether quantization or the latent's width limits the
top of the RD curve.

    python benchmarks/mlic_ceiling.py --set ../shared/data/eval/sr/Set14 [--weights W ...] [--per-picture]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from ncodec.models.nets.mlicv2 import BlockDCT
from ncodec.models.zoo import load_mlic, weights_path
from ncodec.video.images import read_image


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a = (a.clamp(0, 1) * 255).round() / 255
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


def unquantized(model, x: torch.Tensor) -> torch.Tensor:
    """The synthesis of ``x``'s latents, unquantized, at the finest level's gains."""
    top = float(model.cfg.levels - 1)
    return model.synthesis(model.analysis(x) * model.gain(model.y_gain, top) * model.gain(model.y_inverse, top))


@torch.no_grad()
def ceiling_row(weights: Path, pictures: list[torch.Tensor]) -> dict:
    model = load_mlic(weights)
    scores = {"ceiling": [], **{f"level {lv}": [] for lv in range(model.cfg.levels)}}
    for x in pictures:
        scores["ceiling"].append(psnr(unquantized(model, x), x))
        for lv in range(model.cfg.levels):
            scores[f"level {lv}"].append(psnr(model(x, float(lv))["x_hat"], x))
    return {"M": model.cfg.M} | {k: float(np.mean(v)) for k, v in scores.items()}


@torch.no_grad()
def per_picture(weights: Path, names: list[str], pictures: list[torch.Tensor]) -> None:
    model = load_mlic(weights)
    top = float(model.cfg.levels - 1)
    dcts = [BlockDCT(m) for m in (256, 320)]
    print("| picture | level 3 | ceiling (unquantized) | block-DCT, 256 coefficients | 320 coefficients |")
    print("|---|---:|---:|---:|---:|")
    for name, x in zip(names, pictures):
        dct = [psnr(d.forward_synthesis(d.forward_analysis(x)), x) for d in dcts]
        print(
            f"| {name} | {psnr(model(x, top)['x_hat'], x):.2f} | {psnr(unquantized(model, x), x):.2f} | "
            f"{dct[0]:.2f} | {dct[1]:.2f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="../shared/data/eval/sr/Set14")
    ap.add_argument("--weights", nargs="*", default=[str(weights_path("mlic"))])
    ap.add_argument("--per-picture", action="store_true", help="the first weights' ceiling picture by picture")
    args = ap.parse_args()
    pictures, names = [], []
    for path in sorted(Path(args.set).glob("*.png")):
        rgb = read_image(path)[0]
        rgb = rgb[: rgb.shape[0] // 64 * 64, : rgb.shape[1] // 64 * 64]  # whole latents, no padding
        pictures.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255)
        names.append(path.stem)
    print(f"{len(pictures)} pictures of {args.set}, cropped to multiples of 64; PSNR dB (8-bit)\n")
    if args.per_picture:
        per_picture(Path(args.weights[0]), names, pictures)
        return
    print("| weights | latent channels | ceiling (unquantized) | level 0 | level 1 | level 2 | level 3 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for w in args.weights:
        r = ceiling_row(Path(w), pictures)
        print(
            f"| {Path(w).name} | {r['M']} | {r['ceiling']:.2f} | "
            + " | ".join(f"{r[f'level {lv}']:.2f}" for lv in range(4))
            + " |"
        )
    print("\nBlock-DCT (16x16, 3/4 of the coefficients luma, unquantized), the warm start's transform:\n")
    print("| coefficients per block (of 768) | PSNR dB |")
    print("|---:|---:|")
    with torch.no_grad():
        for m in (128, 192, 256, 320):
            dct = BlockDCT(m)
            print(
                f"| {m} | {np.mean([psnr(dct.forward_synthesis(dct.forward_analysis(x)), x) for x in pictures]):.2f} |"
            )


if __name__ == "__main__":
    main()
