"""Upscaling speed on this machine, every variant measured in one run, as a table.

SR only (frames already in memory):
  - network only: ESPCN on the Y plane, plain fp32 eager PyTorch (NCHW) against FastESPCN fp32 / bf16
  - whole frame (RGB uint8 in, RGB uint8 out): OpenCV bicubic, ncodec Upscaler fp32 and bf16
End to end (decode + SR + encode, file to file): a 640x360 (x3) or 960x540 (x2) H.264 clip
to 1920x1080 H.264 (preset and crf stated), with OpenCV bicubic through the same reader
and writer as the peer.

    python benchmarks/upscale_speed.py --clip samples/city.mp4 --frames 60 --out docs/bench/upscale_speed
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ncodec.models.espcn import FastESPCN
from ncodec.models.upscaler import Upscaler, load_espcn
from ncodec.video import MediaReader, VideoWriter
from ncodec.video.upscale import upscale_file

CASES = [(3, 640, 360), (2, 960, 540)]


def fps_of(fn, items, warmup: int = 2) -> float:
    for x in items[:warmup]:
        fn(x)
    start = time.perf_counter()
    for x in items:
        fn(x)
    return len(items) / (time.perf_counter() - start)


@torch.inference_mode()
def network_only(scale: int, frames: list[np.ndarray]) -> dict:
    """The Y plane through the network alone: the paper's module as plain fp32 eager PyTorch,
    against the inference form the Upscaler runs (models/espcn.FastESPCN)."""
    ys = [cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb)[:, :, 0] for f in frames]
    plain = load_espcn(scale)
    res = {"plain fp32 eager (NCHW)": fps_of(plain, [torch.from_numpy(y)[None, None].float() / 255 for y in ys])}
    cl = [torch.from_numpy(y)[None, None].float().contiguous(memory_format=torch.channels_last) for y in ys]
    for precision in ("fp32", "bf16"):
        fast = FastESPCN(load_espcn(scale), precision).to(memory_format=torch.channels_last)
        res[f"FastESPCN {precision} channels-last"] = fps_of(fast, cl)
    res["FastESPCN bf16 + torch.compile"] = fps_of(torch.compile(fast), cl, warmup=3)  # compiles on first call
    return res


def end_to_end(src: Path, scale: int, out_dir: Path, preset: str, crf: int) -> dict:
    res = {}
    for precision in ("fp32", "bf16"):
        r = upscale_file(src, out_dir / f"sr_{precision}.mp4", scale, precision=precision, preset=preset, crf=crf)
        res[f"ncodec upscale {precision}"] = r.frames / r.seconds
    start = time.perf_counter()
    with MediaReader(src) as reader:
        w, h = reader.info.width * scale, reader.info.height * scale
        with VideoWriter(out_dir / "bicubic.mp4", w, h, reader.info.fps, preset=preset, crf=crf) as writer:
            for f in reader.frames():
                writer.write(cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC))
            n = writer.frames_written
    res["OpenCV bicubic"] = n / (time.perf_counter() - start)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="samples/city.mp4")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--preset", default="veryfast", help="x264 preset of the 1080p output")
    ap.add_argument("--crf", type=int, default=20)
    ap.add_argument("--out", default="docs/bench/upscale_speed")
    args = ap.parse_args()
    with MediaReader(args.clip) as r:
        source = [f for _, f in zip(range(args.frames), r.frames())]
    results = {"date": datetime.date.today().isoformat(), "clip": args.clip, "frames": len(source),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__} "
                          f"({torch.get_num_threads()} threads)", "cases": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for scale, w, h in CASES:
            frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in source]
            up32, up16 = Upscaler(scale), Upscaler(scale, precision="bf16")
            whole = {
                "OpenCV bicubic": fps_of(lambda f: cv2.resize(f, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC), frames),
                "ncodec Upscaler fp32": fps_of(up32.upscale, frames),
                "ncodec Upscaler bf16": fps_of(up16.upscale, frames),
            }  # fmt: skip
            net = network_only(scale, frames)
            clip = Path(tmp) / f"in_{w}x{h}.mp4"
            with VideoWriter(clip, w, h, r.info.fps, crf=16, preset="fast") as writer:
                for f in frames:
                    writer.write(f)
            e2e = end_to_end(clip, scale, Path(tmp), args.preset, args.crf)
            results["cases"].append({"scale": scale, "input": f"{w}x{h}", "output": f"{w * scale}x{h * scale}",
                                     "network_only": net, "whole_frame": whole, "end_to_end": e2e})  # fmt: skip
            print(results["cases"][-1], flush=True)
    lines = [
        f"Date: {results['date']}. Machine: {results['machine']}. {len(source)} frames of `{args.clip}` resized to "
        f"the input size. End to end: H.264 in, H.264 1080p out (x264 preset {args.preset}, crf {args.crf}).",
        f"Reproduce: `python benchmarks/upscale_speed.py --clip {args.clip} --frames {args.frames}`",
        "",
        "| case | stage | variant | fps | vs baseline |",
        "|---|---|---|---:|---:|",
    ]
    for c in results["cases"]:
        case = f"×{c['scale']} {c['input']} → {c['output']}"
        for stage, key, base in (("network only (Y)", "network_only", "plain fp32 eager (NCHW)"),
                                 ("SR, whole frame", "whole_frame", "OpenCV bicubic"),
                                 ("decode + SR + encode", "end_to_end", "OpenCV bicubic")):  # fmt: skip
            for name, fps in c[key].items():
                lines.append(f"| {case} | {stage} | {name} | {fps:.1f} | {fps / c[key][base]:.2f}× |")
    table = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
