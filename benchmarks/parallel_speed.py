"""Scale-out on this machine: `ncodec encode --workers 2` against one process, for the
codecs that encode in segments (HNeRV, STDO), measured in one run; and, from the
measured per-segment time, what a cluster would do to a 2-hour film.

Each encode is a fresh `ncodec encode` process, timed wall-clock:
  1 worker    the single process with torch's default threads (all CPUs): what a user
              gets without --workers;
  2 workers   --workers 2, one torch thread each (the CPUs shared out);
  1 thread    the single process with --threads 1: the reference the 2-worker bitstream
              must equal byte for byte.

    python benchmarks/parallel_speed.py --clip samples/city.mp4 --out docs/bench/parallel
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ncodec.video import probe
from ncodec.video.bench import save_results
from ncodec.video.parallel import available_cpus

CODECS = {  # fixed epochs/steps, not a time budget: the work per segment is the same in every run
    "hnerv": ["--size", "100000", "--epochs", "20", "--segment-frames", "10"],
    "stdo": ["--steps", "100", "--chunks", "4", "--segment-frames", "10"],
}
RUNS = {"1 worker": [], "2 workers": ["--workers", "2"], "1 thread": ["--threads", "1"]}
FILM = {"minutes": 120, "fps": 24, "width": 1920, "height": 1080, "segment_frames": 120}
CLUSTER = {"machines": 100, "cpus_per_machine": 2}


def encode(clip: Path, out: Path, codec: str, extra: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ncodec",
            "encode",
            str(clip),
            str(out),
            "-c",
            codec,
            *CODECS[codec],
            *extra,
            "-q",
            "-y",
        ],
        check=True,
    )
    return time.perf_counter() - start


def film_projection(seconds_per_frame: float, width: int, height: int) -> dict:
    """Wall time of a 2-hour 1080p film on the cluster, from the measured single-worker
    time per frame at the clip's size, scaled by pixel count (fitting cost grows with the
    pixels of every layer) and assuming one 2-thread task per machine."""
    frames = FILM["minutes"] * 60 * FILM["fps"]
    segments = math.ceil(frames / FILM["segment_frames"])
    per_segment = seconds_per_frame * FILM["segment_frames"] * (FILM["width"] * FILM["height"]) / (width * height)
    rounds = math.ceil(segments / CLUSTER["machines"])
    return {
        "frames": frames,
        "segments": segments,
        "tasks": segments,
        "seconds_per_segment": per_segment,
        "rounds": rounds,
        "cluster_hours": rounds * per_segment / 3600,
        "one_machine_hours": segments * per_segment / 3600,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="samples/city.mp4")
    ap.add_argument("--out", default="docs/bench/parallel")
    args = ap.parse_args()
    info = probe(args.clip)
    rows, result = (
        [],
        {
            "clip": args.clip,
            "frames": info.frame_count,
            "width": info.width,
            "height": info.height,
            "cpus": available_cpus(),
            "machine": platform.processor() or platform.machine(),
            "date": datetime.date.today().isoformat(),
            "codecs": {},
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        for codec in CODECS:
            seconds, bits = {}, {}
            for run, extra in RUNS.items():
                out = Path(tmp) / f"{codec}-{run.replace(' ', '-')}.bin"
                seconds[run] = encode(Path(args.clip), out, codec, extra)
                bits[run] = out.read_bytes()
                print(f"{codec} {run}: {seconds[run]:.1f} s", file=sys.stderr)
            segments = math.ceil(info.frame_count / int(CODECS[codec][CODECS[codec].index("--segment-frames") + 1]))
            film = film_projection(seconds["1 worker"] / info.frame_count, info.width, info.height)
            result["codecs"][codec] = {
                "options": CODECS[codec],
                "segments": segments,
                "seconds": seconds,
                "bytes": len(bits["2 workers"]),
                "speedup": seconds["1 worker"] / seconds["2 workers"],
                "identical_to_1_thread": bits["2 workers"] == bits["1 thread"],
                "film": film,
            }
            rows.append(
                f"| {codec} `{' '.join(CODECS[codec])}` | {segments} | {seconds['1 worker']:.1f} | "
                f"{seconds['2 workers']:.1f} | **{seconds['1 worker'] / seconds['2 workers']:.2f}×** | "
                f"{seconds['1 thread']:.1f} | {'yes' if bits['2 workers'] == bits['1 thread'] else 'NO'} |"
            )
    head = [
        f"Measured {result['date']} on {result['cpus']} CPUs, {args.clip} ({info.width}×{info.height}, "
        f"{info.frame_count} frames); `python benchmarks/parallel_speed.py --clip {args.clip} --out {args.out}`",
        "",
        "| codec, options | segments | 1 worker (2 threads) s | `--workers 2` s | speed-up | `--threads 1` s | "
        "2-worker bytes = 1-thread bytes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    film_rows = [
        "",
        f"A {FILM['minutes']}-minute {FILM['width']}×{FILM['height']} film at {FILM['fps']} fps on "
        f"{CLUSTER['machines']} machines like this one ({CLUSTER['cpus_per_machine']} CPUs, one 2-thread task each), "
        f"{FILM['segment_frames']}-frame segments, projected from the 1-worker time per frame above scaled by "
        "pixel count (same options):",
        "",
        "| codec | frames | segments = Ray tasks | s per segment (projected) | one machine | 100 machines |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for codec, r in result["codecs"].items():
        f = r["film"]
        film_rows.append(
            f"| {codec} | {f['frames']:,} | {f['segments']:,} | {f['seconds_per_segment']:,.0f} | "
            f"{f['one_machine_hours']:,.0f} h | {f['cluster_hours']:,.1f} h ({f['rounds']} rounds) |"
        )
    table = "\n".join(head + rows + film_rows) + "\n"
    save_results(args.out, result, table)
    print(table)


if __name__ == "__main__":
    main()
