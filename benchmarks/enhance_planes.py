"""What an enhancement network adds on each plane: PSNR of Y, Cb and Cr before and after
it, on the validation pans of ``ncodec train enhance`` (the fixed split's validation
photos, one 10-frame pan each, coded by SVT-AV1 at each crf asked for). Validation data:
it may steer choices; the evaluation clips are not read.

    python benchmarks/enhance_planes.py --crfs 36,52 [--weights enhance_av1 | FILE ...]
"""

from __future__ import annotations

import argparse
import datetime
import sys

import numpy as np
import torch

from ncodec.models.nets.enhance import IntegerEnhancer, upsample
from ncodec.models.train.drivers import read_photo, split_photos
from ncodec.models.zoo import load_enhance
from ncodec.video.enhance_training import make_clips

PLANES = {"Y": slice(0, 4), "Cb": slice(4, 5), "Cr": slice(5, 6)}


def plane_psnr(pairs) -> np.ndarray:
    """PSNR of each plane over every (output, source) pair of packed planes."""
    sse, count = np.zeros(len(PLANES)), np.zeros(len(PLANES))
    for out, source in pairs:
        for k, part in enumerate(PLANES.values()):
            sse[k] += (out[:, part].float() - source[:, part].float()).square().sum().item()
            count[k] += source[:, part].numel()
    return 10 * np.log10(255**2 / (sse / count))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/train")
    p.add_argument("--crfs", default="36,52")
    p.add_argument("--weights", nargs="+", default=["enhance_av1"], help="shipped names or weights files")
    args = p.parse_args()
    torch.set_num_threads(2)
    photos = [read_photo(f) for f in split_photos(args.data)[1]]
    nets = {}
    for w in args.weights:
        model = load_enhance(w) if not w.endswith(".safetensors") else load_enhance(path=w)
        nets[w] = (IntegerEnhancer(model), model.cfg.scale)
    print(
        f"Date: {datetime.date.today().isoformat()}. Reproduce: `python benchmarks/enhance_planes.py {' '.join(sys.argv[1:])}`\n"
    )
    print("| weights | crf | decoded Y / Cb / Cr (dB) | gain Y | gain Cb | gain Cr |")
    print("|---|---:|---|---:|---:|---:|")
    for crf in (int(c) for c in args.crfs.split(",")):
        for name, (net, scale) in nets.items():
            clips = make_clips(photos, "av1", None, 10, [crf] * len(photos), 1, False, "", scale)
            base = plane_psnr((upsample(c.decoded, scale), c.source) for c in clips)
            gain = plane_psnr((net(c.decoded, crf), c.source) for c in clips) - base
            print(
                f"| {name} | {crf} | {' / '.join(f'{b:.2f}' for b in base)} | "
                + " | ".join(f"{g:+.3f}" for g in gain)
                + " |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
