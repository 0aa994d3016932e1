"""HNeRV fitting speed on this machine: the plain fp32 eager fit against ncodec's fast
fit (channels-last + bf16 autocast, models/hnerv.fit ``fast=True``), measured in one run.

1. ms per frame-epoch (one optimizer pass over one frame, forward + backward + Adam),
   the median of a few epochs after a warm-up epoch;
2. PSNR reached after fixed wall-clock budgets (the cosine schedule follows each budget),
   measured afterwards in fp32 on the unquantized model, so the number is the fit's own
   quality, before pruning and quantization.

    python benchmarks/hnerv_speed.py --clip samples/city.mp4 --frames 30 --budgets 2,5,10 --out docs/bench/hnerv_speed
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics

import numpy as np
import torch
import torch.nn.functional as F

from ncodec.models.nets.hnerv import HNeRV, make_config, pad_frames
from ncodec.models.nets.precision import bf16_useful
from ncodec.models.train.hnerv import fit
from ncodec.video import MediaReader
from ncodec.video.bench import save_results

VARIANTS = {"plain fp32 eager (NCHW)": False, "ncodec fast (channels-last + bf16)": True}


def ms_per_frame_epoch(cfg, frames: torch.Tensor, fast: bool, epochs: int = 3, warmup: int = 2) -> float:
    torch.manual_seed(0)
    model = HNeRV(cfg)
    times: list[float] = [0.0]
    fit(model, frames, epochs=warmup + epochs, fast=fast, on_epoch=lambda e, _: times.append(e["seconds"]))
    per_epoch = [b - a for a, b in zip(times, times[1:])][warmup:]  # oneDNN builds its kernels in the first
    return 1000 * statistics.median(per_epoch) / frames.shape[0]


@torch.inference_mode()
def reconstruction_psnr(model: HNeRV, frames: torch.Tensor, height: int, width: int) -> float:
    model.eval()
    mse = []
    for batch in frames.split(2):
        target = batch.float() / 255
        out, _ = model(target)
        mse.append(F.mse_loss(out[..., :height, :width], target[..., :height, :width]).item())
    return 10 * math.log10(1 / float(np.mean(mse)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="samples/city.mp4")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", type=int, default=300_000, help="decoder parameters")
    ap.add_argument("--budgets", default="2,5,10", help="fitting budgets in minutes")
    ap.add_argument("--out", default="docs/bench/hnerv_speed")
    args = ap.parse_args()
    with MediaReader(args.clip) as r:
        rgb = [f for _, f in zip(range(args.frames), r.frames())]
    h, w = rgb[0].shape[:2]
    cfg = make_config(h, w, args.size)
    frames = pad_frames(torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2), cfg)
    results = {
        "date": datetime.date.today().isoformat(),
        "clip": args.clip,
        "frames": len(rgb),
        "size": f"{w}x{h}",
        "decoder_parameters": args.size,
        "config": cfg.to_json(),
        "bf16_native": bf16_useful("cpu"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)",
        "ms_per_frame_epoch": {},
        "psnr_after": {},
    }
    for name, fast in VARIANTS.items():
        results["ms_per_frame_epoch"][name] = ms_per_frame_epoch(cfg, frames, fast)
        print(name, f"{results['ms_per_frame_epoch'][name]:.0f} ms/frame-epoch", flush=True)
    for minutes in (float(m) for m in args.budgets.split(",")):
        for name, fast in VARIANTS.items():
            torch.manual_seed(0)
            model = HNeRV(cfg)
            res = fit(model, frames, time_budget=minutes * 60, fast=fast)
            psnr = reconstruction_psnr(model, frames, h, w)
            results["psnr_after"].setdefault(f"{minutes:g} min", {})[name] = {"psnr": psnr, "epochs": res.epochs}
            print(f"{minutes:g} min", name, f"{psnr:.2f} dB after {res.epochs} epochs", flush=True)
    base = next(iter(VARIANTS))
    lines = [
        f"Date: {results['date']}. Machine: {results['machine']}. {len(rgb)} frames of `{args.clip}` ({w}x{h}), "
        f"decoder {args.size:,} parameters (strides {cfg.strides}, widths {cfg.widths}).",
        f"Reproduce: `python benchmarks/hnerv_speed.py --clip {args.clip} --frames {args.frames} "
        f"--size {args.size} --budgets {args.budgets}`",
        "",
        "| variant | ms per frame-epoch | speed-up |"
        + "".join(f" PSNR after {k} (epochs) |" for k in results["psnr_after"]),
        "|---|---:|---:|" + "---:|" * len(results["psnr_after"]),
    ]
    for name in VARIANTS:
        ms = results["ms_per_frame_epoch"][name]
        cells = "".join(f" {v[name]['psnr']:.2f} dB ({v[name]['epochs']}) |" for v in results["psnr_after"].values())
        lines.append(f"| {name} | {ms:.0f} | {results['ms_per_frame_epoch'][base] / ms:.2f}× |{cells}")
    table = "\n".join(lines) + "\n"
    save_results(args.out, results, table)
    print(table)


if __name__ == "__main__":
    main()
