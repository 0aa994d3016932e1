"""The default video codec against the classical peers, one command, one run.

Per clip, with ``ncodec bench`` (real bitstreams, whole ``.bin`` sizes, quality of the
decoded frames): SVT-AV1 (the base layer's encoder and preset, the anchor), x265, x264,
STDO at full size only with its update switched off (base + the generic enhancement
network), the full STDO codec (per segment: full or half size by rate-distortion cost,
and the update where it pays), each at the same four crfs (av1 and stdo: 54/46/38/30),
and with ``--hnerv SECONDS`` HNeRV at its four quality levels with that much fitting per
point on the CPU (where it stands on this machine; on a GPU it is run with ``--device
cuda``; on this CPU its encoder and decoder take ~30 minutes for bikes' four points
whatever the fitting budget).
Then per clip the BD-rate against SVT-AV1 on PSNR-RGB and PSNR-Y, and each point's
distance to the SVT-AV1 curve at the same rate (log-rate interpolation; negative = below
it, nan = outside SVT-AV1's range of rates).

    python benchmarks/video_rd.py --out docs/bench/video

The clips are evaluation clips: nothing in training or in any choice read them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from ncodec.video import bench, metrics

REPO = Path(__file__).resolve().parents[1]
CLIPS = [
    REPO.parent / "shared/data/eval/video/bikes.mp4",
    REPO.parent / "shared/data/eval/video/carphone_pristine.mp4",
    REPO.parent / "shared/data/eval/video/cityCC0.mpg",
    REPO / "samples/city.mp4",
]
CODECS = ["av1", "x265", "x264", "stdo:overfit=off:scale=1", "stdo"]


def _curve(rows: list[dict], codec: str, key: str) -> tuple[list[float], list[float]]:
    picked = sorted((r for r in rows if r["codec"] == codec), key=lambda r: r["kbps"])
    return [r["kbps"] for r in picked], [r[key] for r in picked]


def gap_to_anchor(rows: list[dict], codec: str, anchor: str = "av1") -> list[float]:
    """PSNR of each ``codec`` point minus the anchor's PSNR at the same rate (linear in
    log-rate between the anchor's points; nan outside its range)."""
    ar, ap = _curve(rows, anchor, "psnr")
    tr, tp = _curve(rows, codec, "psnr")
    at = np.interp(np.log10(tr), np.log10(ar), ap, left=np.nan, right=np.nan)
    return [float(p - a) for p, a in zip(tp, at)]


def summarise(results: list[dict], command: str, codecs: list[str] = CODECS) -> str:
    lines = [
        f"Date: {datetime.date.today().isoformat()}. Reproduce: `{command}`",
        "",
        "BD-rate against SVT-AV1 (preset 8, the base layer's), negative = fewer bits for the same quality;"
        " gap = each point's PSNR-RGB minus SVT-AV1's at the same rate, low to high rate:",
        "",
        "| clip | codec | BD-rate PSNR-RGB | BD-rate PSNR-Y | gap to SVT-AV1 (dB) | decode fps |",
        "|---|---|---:|---:|---|---:|",
    ]
    means: dict[str, list[float]] = {}
    for result in results:
        rows, name = result["rows"], Path(result["input"]).name
        for codec in codecs[1:]:
            bd = {}
            for key in ("psnr", "psnr_y"):
                try:
                    bd[key] = metrics.bd_rate(*_curve(rows, "av1", key), *_curve(rows, codec, key))
                except ValueError:
                    bd[key] = float("nan")
            means.setdefault(codec, []).append(bd["psnr"])
            gaps = " / ".join(f"{g:+.2f}" for g in gap_to_anchor(rows, codec))
            fps = min(r["decode_fps"] for r in rows if r["codec"] == codec)
            lines.append(f"| {name} | {codec} | {bd['psnr']:+.1f}% | {bd['psnr_y']:+.1f}% | {gaps} | {fps:.1f} |")
    lines += ["", "| mean over the clips | BD-rate PSNR-RGB |", "|---|---:|"]
    lines += [f"| {codec} | {np.mean(v):+.1f}% |" for codec, v in means.items()]
    hnerv = [c for c in codecs if c.startswith("hnerv")]
    if hnerv:
        lines += [
            "",
            f"{hnerv[0]}: fitted on this machine's CPU, its model size set by the quality level (parameters per"
            " pixel and frame); nan = no rate in SVT-AV1's range. Fitting is what a GPU is for: `ncodec encode"
            " IN OUT -c hnerv --device cuda --quality high --time-budget S` writes the same bitstream.",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", help="comma-separated clips (default: the four evaluation clips)")
    p.add_argument("--frames", type=int, help="only the first N frames of each clip")
    p.add_argument("--out", default="docs/bench/video")
    p.add_argument("--hnerv", type=float, help="also HNeRV, with this many seconds of fitting per point")
    args = p.parse_args()
    codecs = CODECS + ([f"hnerv:time_budget={args.hnerv:g}"] if args.hnerv else [])
    clips = [Path(c) for c in args.clips.split(",")] if args.clips else CLIPS
    command = shlex.join(["python", "benchmarks/video_rd.py", *sys.argv[1:]])
    results = []
    for clip in clips:
        out = Path(args.out) / clip.stem
        bench.run(clip, codecs, points=4, out_dir=out, max_frames=args.frames, progress=True, command=command)
        results.append(json.loads((out / "results.json").read_text()))
        print(f"{clip.name}: done", file=sys.stderr, flush=True)
    summary = summarise(results, command, codecs)
    (Path(args.out) / "summary.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
