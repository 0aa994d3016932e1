"""STDO decode speed at 640x360 output, side by side with SVT-AV1's own decoder, in one run.

Rows (frames per second, 2 torch threads, best of three; the input is the first frames
of a real clip scaled to 640x360 and coded by SVT-AV1 at crf 40):
  - SVT-AV1 stream decoded by dav1d to RGB (what the base layer costs alone),
  - the enhancement network alone on packed 4:2:0 planes (IntegerEnhancer, batches of 4),
  - the whole STDO decoder (base decode + network + YUV->RGB), through the codec registry.

    python benchmarks/enhance_speed.py --clip ../shared/data/eval/video/bikes.mp4
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from fractions import Fraction

import av
import numpy as np
import torch

from ncodec.codec import Colour, StreamHeader, get
from ncodec.codec.container import unpack_chunks
from ncodec.codec.stdo import STDO, packed_planes
from ncodec.models.nets.enhance import IntegerEnhancer
from ncodec.models.zoo import load_enhance

WIDTH, HEIGHT = 640, 360


def frames_of(clip: str, count: int) -> list[np.ndarray]:
    out = []
    with av.open(clip) as c:
        for f in c.decode(video=0):
            out.append(f.reformat(width=WIDTH, height=HEIGHT, format="rgb24").to_ndarray())
            if len(out) == count:
                break
    return out


def timed(fn, frames: int, repeat: int = 3) -> float:
    """Best of ``repeat`` runs, in frames per second."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return frames / best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", required=True)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--crf", type=int, default=40)
    args = p.parse_args()
    torch.set_num_threads(2)
    rgb = frames_of(args.clip, args.frames)
    n = len(rgb)
    fps = Fraction(25)
    untagged = Colour(2, 2, 2, 0)
    av1 = get("av1")
    base_header = StreamHeader(
        av1.tag, WIDTH, HEIGHT, fps, n, untagged, params=av1.params(WIDTH, HEIGHT, fps, {"crf": args.crf})
    )
    base_sections = list(av1.encode(iter(rgb), base_header))
    options = STDO.settings({"crf": args.crf, "overfit": "off", "segment_frames": n})
    header = StreamHeader(STDO.tag, WIDTH, HEIGHT, fps, n, untagged, params=STDO.params(WIDTH, HEIGHT, fps, options))
    sections = list(STDO.encode(iter(rgb), header, {"settings": STDO.encoder_settings(options)}))
    used = json.loads(unpack_chunks(sections[0][1])[0])["network"]
    planes = packed_planes(av1.decode_planes(iter(base_sections), base_header))
    net = IntegerEnhancer(load_enhance())

    def network_alone():
        for batch in planes.split(4):
            net(batch, args.crf)

    rows = [
        ("SVT-AV1 stream, dav1d decode to RGB", timed(lambda: list(av1.decode(iter(base_sections), base_header)), n)),
        ("enhancement network alone (packed planes in and out)", timed(network_alone, n)),
        ("STDO decoder: base + network + RGB", timed(lambda: list(STDO.decode(iter(sections), header)), n)),
    ]
    print(
        f"Date: {datetime.date.today().isoformat()}. Machine: {platform.machine()}, 2 torch threads. "
        f"{n} frames of `{args.clip}` at {WIDTH}x{HEIGHT}, SVT-AV1 crf {args.crf}; the STDO "
        f"segment {'uses' if used else 'does not use'} the network.\n"
        f"Reproduce: `python benchmarks/enhance_speed.py --clip {args.clip}`\n"
    )
    print("| decoder | fps at 640x360 | x SVT-AV1's time |")
    print("|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.1f} | {rows[0][1] / value:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
