"""Upscaling speed on this machine, every variant measured in one run, as a table.

SR only (frames already in memory):
  - network only: ESPCN on the Y plane, plain fp32 eager PyTorch (NCHW) against FastESPCN
    fp32 / bf16, eager and compiled
  - whole frame (RGB uint8 in, RGB uint8 out): OpenCV bicubic, the plain fp32 eager
    network with the same colour handling, ncodec Upscaler fp32 / bf16, eager and compiled;
    and the Upscaler on a video's own 4:2:0 planes (Y, U, V in and out, no RGB)
End to end (decode + SR + encode, file to file): a 640x360 (x3) or 960x540 (x2) H.264 clip
of --e2e-frames frames (the source frames cycled: 10 s of video by default, so that the
compiled network's one-off compilation, which every run includes, weighs like it does on a
real video) to 1920x1080 H.264 (preset and crf stated); the plain baseline and OpenCV bicubic through
the same reader and writer, for each x264 preset asked for. Ratios are against the plain
fp32 eager network. The bound: the machine's dense matrix-product throughput (GMAC/s of a
2048x2048 product, fp32 / bf16 / int8) measured in the same run, and the fps the
network's multiply-accumulates per frame would allow at that rate.

    python benchmarks/upscale_speed.py --clip samples/city.mp4 --frames 60 --e2e-frames 250 --presets veryfast,ultrafast
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from ncodec.models.nets.espcn import FastESPCN
from ncodec.models.upscaler import Upscaler, compiled
from ncodec.models.zoo import load_espcn
from ncodec.video import MediaReader, VideoWriter
from ncodec.video.bench import save_results
from ncodec.video.upscale import upscale_file

CASES = [(3, 640, 360), (2, 960, 540)]


def cpu_name() -> str:
    """The CPU's model name and family (which AMD EPYC generation, e.g., decides the bf16 rate)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return platform.processor()
    fields = {k.strip(): v.strip() for k, v in info.items()}
    return f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


def fps_of(fn, items, warmup: int = 2) -> float:
    for x in items[:warmup]:
        fn(x)
    start = time.perf_counter()
    for x in items:
        fn(x)
    return len(items) / (time.perf_counter() - start)


@torch.inference_mode()
def gemm_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """GMAC/s of an n x n matrix product in ``dtype``: what the CPU's vector units deliver
    on the densest work there is (int8 through torch._int_mm, int32 accumulation)."""
    if dtype == torch.int8:
        a, b = (torch.randint(-100, 100, (n, n), dtype=torch.int8) for _ in range(2))
        mm = torch._int_mm
    else:
        a, b = (torch.randn(n, n).to(dtype) for _ in range(2))
        mm = torch.mm
    mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        mm(a, b)
    return n**3 * repeats / (time.perf_counter() - start) / 1e9


def network_gmac(scale: int, w: int, h: int) -> float:
    """Multiply-accumulates of one w x h frame through ESPCN (every conv, per LR pixel)."""
    model = load_espcn(scale)
    per_pixel = sum(
        c.in_channels * c.out_channels * c.kernel_size[0] * c.kernel_size[1]
        for c in (model.conv1, model.conv2, model.conv3)
    )
    return per_pixel * w * h / 1e9


@torch.inference_mode()
def network_only(scale: int, frames: list[np.ndarray]) -> dict:
    """The Y plane through the network alone: the paper's module as plain fp32 eager PyTorch,
    against the inference form the Upscaler runs (models/espcn.FastESPCN)."""
    ys = [cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb)[:, :, 0] for f in frames]
    plain = load_espcn(scale)
    res = {"plain fp32 eager (NCHW)": fps_of(plain, [torch.from_numpy(y)[None, None].float() / 255 for y in ys])}
    cl = [torch.from_numpy(y)[None, None].contiguous(memory_format=torch.channels_last) for y in ys]
    for precision in ("fp32", "bf16"):
        fast = FastESPCN(load_espcn(scale), precision).to(memory_format=torch.channels_last)
        res[f"FastESPCN {precision} channels-last"] = fps_of(fast.subpixels_u8, cl)
        res[f"FastESPCN {precision} compiled (frozen)"] = fps_of(compiled(fast.subpixels_u8), cl, warmup=3)
    return res


def yuv420_planes(rgb: np.ndarray) -> list[np.ndarray]:
    """[Y, U, V] of an RGB frame, as a decoder hands a 4:2:0 video's frames over."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in frame.planes]


class PlainUpscaler:
    """The baseline a user would write: the paper's module in fp32 eager PyTorch on the Y
    plane (NCHW), chroma by OpenCV bicubic; same colour handling as the Upscaler."""

    def __init__(self, scale: int):
        self.model, self.scale = load_espcn(scale), scale

    @torch.inference_mode()
    def upscale(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
        y = self.model(torch.from_numpy(ycc[:, :, 0])[None, None].float() / 255)
        big = cv2.resize(ycc, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)
        big[:, :, 0] = (y[0, 0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
        return cv2.cvtColor(big, cv2.COLOR_YCrCb2RGB)


def end_to_end(src: Path, scale: int, out_dir: Path, preset: str, crf: int) -> dict:
    """File to file through the same reader and writer: the plain baseline and OpenCV
    bicubic in a simple loop, against `ncodec upscale` (compiled network, decoding overlapped,
    4:2:0 planes)."""
    res = {}
    for name, upscale in (
        ("plain fp32 eager", PlainUpscaler(scale).upscale),
        (
            "OpenCV bicubic",
            lambda f: cv2.resize(f, (f.shape[1] * scale, f.shape[0] * scale), interpolation=cv2.INTER_CUBIC),
        ),
    ):
        start = time.perf_counter()
        with MediaReader(src) as reader:
            w, h = reader.info.width * scale, reader.info.height * scale
            with VideoWriter(out_dir / "peer.mp4", w, h, reader.info.fps, preset=preset, crf=crf) as writer:
                for f in reader.frames():
                    writer.write(upscale(f))
                n = writer.frames_written
        res[f"{name}, x264 {preset}"] = n / (time.perf_counter() - start)
    for precision in ("fp32", "bf16"):
        r = upscale_file(src, out_dir / f"sr_{precision}.mp4", scale, precision=precision, preset=preset, crf=crf)
        res[f"ncodec upscale {precision} (4:2:0 planes), x264 {preset}"] = r.frames / r.seconds
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="samples/city.mp4")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--e2e-frames", type=int, default=250, help="frames of the end-to-end clip (source frames cycled)")
    ap.add_argument("--presets", default="veryfast,ultrafast", help="x264 presets of the 1080p output, comma-separated")
    ap.add_argument("--crf", type=int, default=20)
    ap.add_argument("--out", default="docs/bench/upscale_speed")
    args = ap.parse_args()
    with MediaReader(args.clip) as r:
        source = [f for _, f in zip(range(args.frames), r.frames())]
    presets = args.presets.split(",")
    results = {
        "date": datetime.date.today().isoformat(),
        "clip": args.clip,
        "frames": len(source),
        "machine": f"{platform.machine()} {cpu_name()}, {os.cpu_count()} CPU threads, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)",
        "cases": [],
        "gemm_gmac_per_s": {
            str(dt).removeprefix("torch."): gemm_peak(dt) for dt in (torch.float32, torch.bfloat16, torch.int8)
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        for scale, w, h in CASES:
            frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in source]
            whole = {
                "OpenCV bicubic": fps_of(
                    lambda f: cv2.resize(f, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC), frames
                ),
                "plain fp32 eager": fps_of(PlainUpscaler(scale).upscale, frames),
            }
            for precision in ("fp32", "bf16"):
                whole[f"ncodec Upscaler {precision}"] = fps_of(Upscaler(scale, precision=precision).upscale, frames)
                compiled = Upscaler(scale, precision=precision, compile=True)
                whole[f"ncodec Upscaler {precision} compiled"] = fps_of(compiled.upscale, frames, warmup=3)
                whole[f"ncodec Upscaler {precision} compiled, 4:2:0 planes"] = fps_of(
                    compiled.upscale_yuv420, [yuv420_planes(f) for f in frames], warmup=3
                )
            net = network_only(scale, frames)
            clip = Path(tmp) / f"in_{w}x{h}.mp4"
            with VideoWriter(clip, w, h, r.info.fps, crf=16, preset="fast") as writer:
                for i in range(args.e2e_frames):
                    writer.write(frames[i % len(frames)])
            e2e = {}
            for preset in presets:
                e2e |= end_to_end(clip, scale, Path(tmp), preset, args.crf)
            results["cases"].append(
                {
                    "scale": scale,
                    "input": f"{w}x{h}",
                    "output": f"{w * scale}x{h * scale}",
                    "gmac_per_frame": network_gmac(scale, w, h),
                    "network_only": net,
                    "whole_frame": whole,
                    "end_to_end": e2e,
                }
            )
            print(results["cases"][-1], flush=True)
    lines = [
        f"Date: {results['date']}. Machine: {results['machine']}. {len(source)} frames of `{args.clip}` resized to "
        f"the input size; end to end: {args.e2e_frames} frames (cycled), H.264 in, H.264 1080p out (x264 presets {', '.join(presets)}, crf {args.crf}).",
        f"Reproduce: `python benchmarks/upscale_speed.py --clip {args.clip} --frames {args.frames} --e2e-frames {args.e2e_frames} --presets {args.presets}`",
        "",
        "| case | stage | variant | fps | vs baseline |",
        "|---|---|---|---:|---:|",
    ]
    for c in results["cases"]:
        case = f"×{c['scale']} {c['input']} → {c['output']}"
        for stage, key, base in (
            ("network only (Y)", "network_only", "plain fp32 eager (NCHW)"),
            ("SR, whole frame", "whole_frame", "plain fp32 eager"),
            ("decode + SR + encode", "end_to_end", "plain fp32 eager"),
        ):
            for name, fps in c[key].items():
                preset = name.partition(", x264 ")[2]  # end to end: against the baseline at the same preset
                base_fps = c[key][f"{base}, x264 {preset}" if preset else base]
                lines.append(f"| {case} | {stage} | {name} | {fps:.1f} | {fps / base_fps:.2f}× |")
    lines += [
        "",
        "The bound: the network's work per frame at this machine's matrix-product rate (same run).",
        "",
        "| case | GMAC per frame | "
        + " | ".join(f"fps at the {dt} GEMM rate ({g:.0f} GMAC/s)" for dt, g in results["gemm_gmac_per_s"].items())
        + " |",
        "|---|---:|" + "---:|" * len(results["gemm_gmac_per_s"]),
    ]
    for c in results["cases"]:
        lines.append(
            f"| ×{c['scale']} {c['input']} → {c['output']} | {c['gmac_per_frame']:.2f} | "
            + " | ".join(f"{g / c['gmac_per_frame']:.1f}" for g in results["gemm_gmac_per_s"].values())
            + " |"
        )
    table = "\n".join(lines) + "\n"
    save_results(args.out, results, table)
    print(table)


if __name__ == "__main__":
    main()
