"""Which neural codec is the default: STDO and HNeRV on the shipped sample with the
README's time budget (`--time-budget`), side by side with x264 (real bitstreams, one run).

x264 is shown at the crf whose size is closest to STDO's, as the classical reference.

    python benchmarks/default_codec.py --clip samples/city.mp4 --budget 60 --out docs/bench/default_codec
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

from ncodec.video import decode_file, encode_file
from ncodec.video.bench import save_results


def run(codec: str, src: str, tmp: Path, options: dict) -> dict:
    bits = tmp / f"{codec}.bin"
    start = time.perf_counter()
    res = encode_file(src, bits, codec, options=options)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    out = decode_file(bits, tmp / f"{codec}.mkv", lossless=True, reference=src)
    return {
        "codec": codec,
        "options": options,
        "bytes": res.bytes,
        "kbps": res.kbps,
        "encode_s": seconds,
        "decode_fps": out.frames / (time.perf_counter() - start),
    } | out.quality


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="samples/city.mp4")
    ap.add_argument("--budget", type=float, default=60.0, help="--time-budget of both neural codecs, seconds")
    ap.add_argument("--out", default="docs/bench/default_codec")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ncodec-default-") as tmp:
        stdo = run("stdo", args.clip, Path(tmp), {"time_budget": args.budget})
        rows.append(stdo)
        rows.append(run("hnerv", args.clip, Path(tmp), {"time_budget": args.budget}))
        x264 = [run("x264", args.clip, Path(tmp), {"crf": crf}) for crf in range(20, 46, 3)]
        rows.append(min(x264, key=lambda r: abs(r["bytes"] - stdo["bytes"])))
    result = {
        "date": datetime.date.today().isoformat(),
        "clip": args.clip,
        "rows": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads",
    }
    lines = [
        f"Date: {result['date']}. Machine: {result['machine']}. Clip: `{args.clip}`.",
        f"Reproduce: `python benchmarks/default_codec.py --clip {args.clip} --budget {args.budget:g}`",
        "",
        "| codec | options | bytes | kbit/s | PSNR dB | PSNR-Y dB | MS-SSIM | encode s | decode fps |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "defaults"
        lines.append(
            f"| {r['codec']} | {opts} | {r['bytes']:,} | {r['kbps']:.1f} | {r['psnr']:.2f} | "
            f"{r['psnr_y']:.2f} | {r['ms_ssim']:.4f} | {r['encode_s']:.0f} | {r['decode_fps']:.1f} |"
        )
    table = "\n".join(lines) + "\n"
    save_results(args.out, result, table)
    print(table)


if __name__ == "__main__":
    main()
