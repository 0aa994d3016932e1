"""STDO rate-distortion report of the paper setting (--network espcn): real bitstreams, all variants and peers in one run.

For each clip (cut losslessly to its first ``--frames`` frames, video only) and each LR
crf, at one scale:
  - x264 and x265 at full resolution (their own crf sweeps),
  - LR x264 + bicubic: the same LR stream STDO sends, upscaled by OpenCV bicubic
    (bytes: the LR stream in the ncodec container),
  - LR x264 + generic ESPCN: STDO with one chunk and no training (the shipped weights;
    bytes include its few hundred bytes of all-zero weight delta),
  - STDO with k chunks, and STDO joint (one model).
Quality: PSNR (RGB) / PSNR-Y / MS-SSIM of the decoded frames against the full-resolution
original; BD-rate against x264 at full resolution; model bytes as a share of each STDO
bitstream; encode time and decode fps.

    python benchmarks/stdo_rd.py --clips ../shared/data/eval/video/bikes.mp4,../shared/data/eval/video/cityCC0.mpg \
        --frames 100 --scale 2 --out docs/bench/stdo
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2

from ncodec.codec.container import ContainerReader, unpack_chunks
from ncodec.codec.stdo_espcn import downscale
from ncodec.video import MediaReader, VideoWriter, encode_file, metrics
from ncodec.video.bench import PeakMemory, _decode_and_measure, markdown, plot, save_results

LR_CRFS = [34, 30, 26, 22]
FULL_CRFS = {"x264": [37, 32, 27, 22], "x265": [39, 34, 29, 24]}


def model_bytes(bits: Path) -> int:
    """Bytes of coded weights and chunk maps in an STDO bitstream (everything but the LR stream)."""
    total = 0
    with ContainerReader(bits) as r:
        for _, payload in r.sections("SSEG"):
            chunks = unpack_chunks(payload)
            total += len(payload) - len(chunks[1])
    return total


def row(codec: str, setting: str, bits: Path, src: Path, encode_seconds: float, peak) -> dict:
    meter = metrics.QualityMeter()
    with MediaReader(src) as ref:
        n, dec_seconds = _decode_and_measure(bits, ref.frames(), meter)
    q = meter.result()
    with MediaReader(src) as ref:
        info = ref.info
    size = bits.stat().st_size
    return {
        "codec": codec,
        "setting": setting,
        "bytes": size,
        "frames": n,
        "kbps": metrics.kbps(size, n, info.fps),
        "bpp": metrics.bpp(size, info.width, info.height, n),
        "psnr": q["psnr"],
        "psnr_y": q["psnr_y"],
        "ms_ssim": q["ms_ssim"],
        "encode_fps": n / encode_seconds,
        "decode_fps": n / dec_seconds,
        "encode_peak_mib": peak,
    }


def lr_bicubic(lr_bits: Path, src: Path, scale: int) -> dict:
    """A plain x264 bitstream of the LR frames, decoded and upscaled by OpenCV bicubic."""
    from ncodec.codec import registry

    meter = metrics.QualityMeter()
    with ContainerReader(lr_bits) as r, MediaReader(src) as ref:
        codec = registry.by_tag(r.header.codec)
        frames = codec.decode(r.sections(*codec.section_tags()), r.header)
        n, seconds = 0, 0.0
        for hr in ref.frames():
            start = time.perf_counter()  # the decoder and the upscale only, like the other rows
            lr = next(frames, None)
            if lr is None:
                break
            up = cv2.resize(lr, (lr.shape[1] * scale, lr.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
            seconds += time.perf_counter() - start
            meter.add(hr, up[: hr.shape[0], : hr.shape[1]])
            n += 1
    return meter.result() | {"decode_fps": n / seconds, "frames": n}


def bench_clip(clip: Path, frames: int, scale: int, chunks: int, steps: int, tmp: Path) -> dict:
    with MediaReader(clip) as r:
        info = r.info
        hr_frames = [f for _, f in zip(range(frames), r.frames())]
    src = tmp / f"{clip.stem}.mkv"  # video only, lossless: every codec sees the same frames
    with VideoWriter(src, info.width, info.height, info.fps, lossless=True) as w:
        for f in hr_frames:
            w.write(f)
    lr_src = tmp / f"{clip.stem}-lr.mkv"  # STDO's own LR frames, for the LR + bicubic peer
    lr_frames = downscale(hr_frames, scale)[1]
    with VideoWriter(lr_src, lr_frames[0].shape[1], lr_frames[0].shape[0], info.fps, lossless=True) as w:
        for f in lr_frames:
            w.write(f)
    del hr_frames, lr_frames
    rows = []

    def encode(codec: str, setting: str, options: dict) -> Path:
        bits = tmp / f"{clip.stem}-{codec}-{setting}.bin".replace(" ", "_")
        with PeakMemory() as mem:
            start = time.perf_counter()
            encode_file(src, bits, codec, options=options)
            seconds = time.perf_counter() - start
        rows.append(row(label.get(codec, codec), setting, bits, src, seconds, mem.peak_mib))
        return bits

    label = {}
    for codec, crfs in FULL_CRFS.items():
        for crf in crfs:
            label[codec] = f"{codec} (full res)"
            encode(codec, f"crf={crf}", {"crf": crf})
    base = {"network": "espcn", "base": "x264", "scale": scale, "segment_frames": frames, "patch": 32}
    for crf in LR_CRFS:
        label["stdo"] = "LR x264 + generic ESPCN"
        encode("stdo", f"lr crf={crf}", base | {"crf": crf, "chunks": 1, "steps": 0})
        lr_bits = tmp / f"{clip.stem}-lr-{crf}.bin"
        start = time.perf_counter()
        encode_file(lr_src, lr_bits, "x264", options={"crf": crf})
        seconds = time.perf_counter() - start
        q = lr_bicubic(lr_bits, src, scale)
        size = lr_bits.stat().st_size
        rows.append(
            {
                "codec": "LR x264 + bicubic",
                "setting": f"lr crf={crf}",
                "bytes": size,
                "frames": q["frames"],
                "kbps": metrics.kbps(size, q["frames"], info.fps),
                "bpp": metrics.bpp(size, info.width, info.height, q["frames"]),
                "psnr": q["psnr"],
                "psnr_y": q["psnr_y"],
                "ms_ssim": q["ms_ssim"],
                "encode_fps": q["frames"] / seconds,
                "decode_fps": q["decode_fps"],
                "encode_peak_mib": None,
            }
        )
        label["stdo"] = f"STDO k={chunks}"
        bits = encode("stdo", f"lr crf={crf}", base | {"crf": crf, "chunks": chunks, "steps": steps})
        rows[-1]["model_share"] = model_bytes(bits) / bits.stat().st_size
        label["stdo"] = "STDO joint"
        bits = encode(
            "stdo", f"lr crf={crf} joint", base | {"crf": crf, "chunks": chunks, "joint": True, "steps": steps}
        )
        rows[-1]["model_share"] = model_bytes(bits) / bits.stat().st_size
    return {
        "input": str(clip),
        "kind": "video",
        "width": info.width,
        "height": info.height,
        "fps": float(info.fps),
        "frames": rows[0]["frames"],
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default="../shared/data/eval/video/bikes.mp4,../shared/data/eval/video/cityCC0.mpg")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300, help="training steps per STDO model")
    ap.add_argument("--out", default="docs/bench/stdo")
    args = ap.parse_args()
    command = (
        f"python benchmarks/stdo_rd.py --clips {args.clips} --frames {args.frames} --scale {args.scale} "
        f"--chunks {args.chunks} --steps {args.steps}"
    )
    tables, results = [], []
    with tempfile.TemporaryDirectory(prefix="ncodec-stdo-") as tmp:
        for clip in args.clips.split(","):
            result = bench_clip(Path(clip), args.frames, args.scale, args.chunks, args.steps, Path(tmp))
            result |= {
                "date": datetime.date.today().isoformat(),
                "command": command,
                "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads",
            }
            results.append(result)
            table = markdown(result, command)
            shares = [
                f"{r['codec']} {r['setting']}: {100 * r['model_share']:.0f}%"
                for r in result["rows"]
                if "model_share" in r
            ]
            table += "\nModel bytes (weights + chunk map) as a share of the STDO bitstream: " + "; ".join(shares) + "\n"
            tables.append(table)
            out = Path(args.out) / Path(clip).stem
            save_results(out, result, table)
            plot(result, out / "rd.png")
            print(table, flush=True)


if __name__ == "__main__":
    main()
