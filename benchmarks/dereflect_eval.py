"""Reflection removal: quality on the CEILNet synthetic set and on synthetic UHD blends
of photos kept out of training, and wall time / peak memory for 4K and 8K photos, for the
untouched input, the classical method and the network (when its weights are installed).

    python benchmarks/dereflect_eval.py --data ../shared/data --out docs/bench/dereflect [--update-card]

CEILNet: each `*-input.png` against its `*-label1.png` (the transmission). UHD blends:
the last held-out photos of the training split (video/training.split_photos), resized to
3840x2160 and blended by the training recipe's own synthesis (fixed seed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from ncodec.models.dereflector import dereflect_network
from ncodec.models.nets.reflection_classic import suppress_reflection
from ncodec.models.train.drivers import split_photos
from ncodec.models.train.rrformer import synthesize
from ncodec.video import metrics
from ncodec.video.bench import save_results
from ncodec.video.dereflect import network_available
from ncodec.video.images import read_image

# the rows: `ncodec dereflect` flags of each method ("input" is the untouched blend)
CLI_FLAGS = {
    "classic": ["--method", "classic"],
    "net": ["--method", "net"],  # the default: bf16 where the CPU has it natively
    "net fp32": ["--method", "net", "--precision", "fp32"],
}


def methods() -> dict:
    out = {"input": lambda rgb: rgb, "classic": suppress_reflection}
    if network_available():
        from ncodec.models.zoo import load_rrformer

        model = load_rrformer()
        out["net"] = lambda rgb: dereflect_network(rgb, model)
        out["net fp32"] = lambda rgb: dereflect_network(rgb, model, precision="fp32")
    return out


def score(pairs: list[tuple[np.ndarray, np.ndarray]], fns: dict) -> dict:
    rows = {}
    for name, fn in fns.items():
        psnrs, ssims = [], []
        for blend, truth in pairs:
            out = fn(blend)
            psnrs.append(metrics.psnr(truth, out))
            ssims.append(metrics.ssim(truth, out))
        rows[name] = {
            "psnr": float(np.mean(psnrs)),
            "ssim": float(np.mean(ssims)),
            "psnr_each": [round(float(v), 3) for v in psnrs],
        }
    return rows


def uhd_blends(data: Path, count: int, size: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    _, val = split_photos(str(data / "train"))
    rng = np.random.default_rng(0)
    photos = [cv2.resize(read_image(f)[0], size, interpolation=cv2.INTER_CUBIC) for f in val[-(count + 1) :]]
    pairs = []
    for t, r in zip(photos[:-1], photos[1:]):
        blend, truth, _ = synthesize(_tensor(t), _tensor(r), rng)
        pairs.append((_uint8(blend), _uint8(truth)))
    return pairs


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def _uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def cli_run(src: Path, dst: Path, flags: list[str]) -> dict:
    """`ncodec dereflect` as a user runs it, in its own process: wall time (PNG read and
    write included) and the process's peak resident memory."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter();"
        "r = subprocess.run(sys.argv[1:]); s = time.perf_counter() - t;"
        "print(r.returncode, s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    cmd = [
        sys.executable,
        "-c",
        wrapper,
        sys.executable,
        "-m",
        "ncodec",
        "dereflect",
        str(src),
        str(dst),
        *flags,
        "--quiet",
        "--overwrite",
    ]
    code, seconds, rss_kib = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    if code != "0":
        raise RuntimeError(f"ncodec dereflect {' '.join(flags)} failed on {src.name}")
    return {"seconds": float(seconds), "peak_rss_mib": int(rss_kib) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="docs/bench/dereflect")
    ap.add_argument("--uhd-count", type=int, default=10, help="UHD blends, from this many + 1 held-out photos")
    ap.add_argument("--update-card", action="store_true", help="write the scores into the network's model card")
    args = ap.parse_args()
    data = Path(args.data)
    fns = methods()
    folder = data / "eval/reflection/ceilnet_synthetic"
    pairs = [
        (read_image(f)[0], read_image(f.with_name(f.name.replace("-input", "-label1")))[0])
        for f in sorted(folder.glob("*-input.png"))
    ]
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads",
        "ceilnet": score(pairs, fns),
        "ceilnet_images": len(pairs),
        "uhd_blends": score(uhd_blends(data, args.uhd_count, (3840, 2160)), fns),
    }
    speed = []
    photo = read_image(split_photos(str(data / "train"))[1][-1])[0]
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in (("4K", (3840, 2160)), ("8K", (7680, 4320))):
            src = Path(tmp) / f"{name}.png"
            cv2.imwrite(
                str(src), cv2.cvtColor(cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2BGR)
            )
            for method in fns:
                if method != "input":
                    run = cli_run(src, Path(tmp) / "out.png", CLI_FLAGS[method])
                    speed.append({"picture": name, "method": method} | run)
    result["speed"] = speed
    lines = [
        f"Date: {result['date']}. Machine: {result['machine']}.",
        "Reproduce: `python benchmarks/dereflect_eval.py --data ../shared/data --out docs/bench/dereflect`",
        "",
        "| method | CEILNet synthetic PSNR dB | SSIM | UHD blends PSNR dB | SSIM |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in fns:
        c, u = result["ceilnet"][m], result["uhd_blends"][m]
        lines.append(f"| {m} | {c['psnr']:.2f} | {c['ssim']:.4f} | {u['psnr']:.2f} | {u['ssim']:.4f} |")
    lines += ["", "| UHD blend | " + " | ".join(f"{m} PSNR dB" for m in fns) + " |", "|---|" + "---:|" * len(fns)]
    for i in range(args.uhd_count):
        lines.append(f"| {i + 1} | " + " | ".join(f"{result['uhd_blends'][m]['psnr_each'][i]:.2f}" for m in fns) + " |")
    lines += [
        "",
        "| picture | method | seconds (CLI, PNG in and out) | peak RSS of the process MiB |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {s['picture']} | {s['method']} | {s['seconds']:.1f} | {s['peak_rss_mib']:.0f} |" for s in speed]
    table = "\n".join(lines) + "\n"
    save_results(args.out, result, table)
    if args.update_card and "net" in fns:
        from ncodec.models.zoo import weights_path

        card_path = weights_path("rrformer").with_suffix(".json")
        card = json.loads(card_path.read_text())
        card["scores"] = {
            "date": result["date"],
            "ceilnet_synthetic": result["ceilnet"],
            "ceilnet_images": result["ceilnet_images"],
            "uhd_blends": result["uhd_blends"],
        }
        card_path.write_text(json.dumps(card, indent=2))
    print(table)


if __name__ == "__main__":
    main()
