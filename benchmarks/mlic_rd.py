"""The learned image codec against JPEG, WebP, HEVC-intra (x265) and AV1-intra (SVT-AV1):
RD curves through the project's harness (`ncodec bench`, real bitstreams, one run) on
Set14 and on ten photos kept out of training, BD-rate of mlic against each peer, the
model's size, what per-image refinement (SGA) buys and costs, and the training curve
from the model card.

    python benchmarks/mlic_rd.py --data ../shared/data --out docs/bench/mlic [--update-card]
    python benchmarks/mlic_rd.py --per-image webp     # Set14 picture by picture
    python benchmarks/mlic_rd.py --refine-curve 100   # RD curves with --refine 100 beside the plain ones
    python benchmarks/mlic_rd.py --protocol 0 --out docs/bench/mlic_protocol   # the evaluation protocol's tables
    python benchmarks/mlic_rd.py --protocol 100 --every 4 --out docs/bench/mlic_protocol   # and refined, a quarter

Held-out photos: the last ten of the training recipe's validation split
(models/train/drivers.split_photos), centre-cropped to at most 768x512 so that the float64
codec finishes in minutes on two cores. They steered which weights shipped.

The protocol (``--protocol``): the test split (models/train/drivers.heldout_test_photos, a
fixed hash rule; no training run or choice made after 2026-12-07 reads it) and Set14, each
with JPEG, WebP, HEVC-intra, AV1-intra at preset 4 and mlic with and without ``--refine 100``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ncodec.codec.mlic import compress, pad_to_multiple, shipped_model, to_tensor, to_uint8
from ncodec.models.nets import count_parameters
from ncodec.models.nets.mlicv2 import refine_latents
from ncodec.models.train.drivers import heldout_test_photos, split_photos
from ncodec.models.zoo import weights_path
from ncodec.video import bench, metrics
from ncodec.video.images import read_image

PEERS = ["jpeg", "webp", "x265", "av1"]


def heldout_folder(data: Path, dst: Path, count: int = 10) -> Path:
    """The last ``count`` validation photos, centre-cropped, as PNGs in ``dst``."""
    return cropped_folder(split_photos(str(data / "train"))[1][-count:], dst)


def cropped_folder(files: list[Path], dst: Path) -> Path:
    """``files`` centre-cropped to at most 768x512, as PNGs in ``dst``."""
    for f in files:
        rgb = read_image(f)[0]
        h, w = rgb.shape[:2]
        top, left = max(0, (h - 512) // 2), max(0, (w - 768) // 2)
        cv2.imwrite(
            str(dst / f"{f.stem}.png"), cv2.cvtColor(rgb[top : top + 512, left : left + 768], cv2.COLOR_RGB2BGR)
        )
    return dst


def bd_against_peers(result: dict, codec: str = "mlic") -> dict:
    rows = result["rows"]
    curve = {
        c: ([r["bpp"] for r in rows if r["codec"] == c], [r["psnr"] for r in rows if r["codec"] == c])
        for c in PEERS + [codec]
    }
    out = {}
    for peer in PEERS:
        try:
            out[peer] = metrics.bd_rate(*curve[peer], *curve[codec])
        except ValueError:
            out[peer] = None
    return out


def per_image(folder: Path, peer: str, dst: Path) -> dict:
    """BD-rate of mlic against ``peer`` picture by picture (each through the harness alone),
    to see which pictures a set's BD-rate comes from."""
    out = {}
    for f in sorted(folder.glob("*.png")):
        one = dst / f.stem
        one.mkdir()
        (one / f.name).symlink_to(f.resolve())
        bench.run(one, [peer, "mlic"], points=4, out_dir=one / "out")
        rows = json.loads((one / "out" / "results.json").read_text())["rows"]
        curve = {
            c: ([r["bpp"] for r in rows if r["codec"] == c], [r["psnr"] for r in rows if r["codec"] == c])
            for c in (peer, "mlic")
        }
        try:
            bd = metrics.bd_rate(*curve[peer], *curve["mlic"])
        except ValueError:
            bd = None
        out[f.name] = {"bd_rate": bd, "mlic": curve["mlic"], peer: curve[peer]}
    return out


def per_image_table(result: dict, peer: str) -> list[str]:
    lines = [
        f"| picture | BD-rate of mlic vs {peer} | mlic bpp / dB, levels 0..3 | {peer} bpp / dB |",
        "|---|---:|---|---|",
    ]
    for name, r in sorted(result.items(), key=lambda kv: -1e9 if kv[1]["bd_rate"] is None else kv[1]["bd_rate"]):
        bd = "–" if r["bd_rate"] is None else f"{r['bd_rate']:+.1f}%"
        curve = lambda c: ", ".join(f"{b:.2f} / {p:.1f}" for b, p in zip(*r[c]))  # noqa: E731
        lines.append(f"| {name} | {bd} | {curve('mlic')} | {curve(peer)} |")
    return lines


def refinement(folder: Path, level: float, steps: int, count: int) -> list[dict]:
    """RD cost with and without SGA refinement on the first ``count`` images (real rANS bytes)."""
    model64, model32 = shipped_model(), shipped_model("float32")
    rows = []
    for path in sorted(folder.glob("*.png"))[:count]:
        rgb = read_image(path)[0]
        h, w = rgb.shape[:2]
        x = pad_to_multiple(to_tensor(rgb), model64.PAD)
        entry = {"image": path.name}
        for name, n in (("plain", 0), ("refined", steps)):
            start = time.perf_counter()
            y = refine_latents(model32, x, level, n).double() if n else None
            seconds = time.perf_counter() - start
            coded, recon = compress(model64, x.double(), level, y)
            entry[name] = {
                "bpp": 8 * (len(coded.y) + len(coded.z)) / (h * w),
                "psnr": metrics.psnr(rgb, to_uint8(recon, h, w)),
                "refine_s": seconds,
            }
        rows.append(entry)
    return rows


def refinement_table(refine: list[dict], steps: int, count: int) -> list[str]:
    lines = [
        f"Refinement (`--refine {steps}`, level 1, first {count} Set14 images; encode time of the "
        "refinement alone, float32, this machine's 2 threads):",
        "",
        "| image | bpp | PSNR dB | refined bpp | refined PSNR dB | bpp change | PSNR change | refinement s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in refine:
        p, q = r["plain"], r["refined"]
        lines.append(
            f"| {r['image']} | {p['bpp']:.3f} | {p['psnr']:.2f} | {q['bpp']:.3f} | {q['psnr']:.2f} | "
            f"{100 * (q['bpp'] / p['bpp'] - 1):+.1f}% | {q['psnr'] - p['psnr']:+.2f} dB | {q['refine_s']:.0f} |"
        )
    return lines


def refine_curves(data: Path, out: Path, steps: int, sets: list[str]) -> None:
    """The harness with a second mlic row refined by SGA, and both rows' BD-rate against the peers."""
    codecs = PEERS + ["mlic", f"mlic:refine={steps}"]
    with tempfile.TemporaryDirectory(prefix="ncodec-mlic-") as tmp:
        for name in sets:
            folder = data / "eval/sr/Set14" if name == "set14" else heldout_folder(data, Path(tmp))
            dst = out / f"{name}_refine{steps}"
            command = (
                f"ncodec bench {folder} --codecs {','.join(codecs)} --points 4"
                if name == "set14"
                else f"python benchmarks/mlic_rd.py --data {data} --refine-curve {steps} --sets heldout"
            )  # temp folder
            table = bench.run(folder, codecs, points=4, out_dir=dst, command=command, progress=True)
            result = json.loads((dst / "results.json").read_text())
            bd = {c: bd_against_peers(result, c) for c in codecs[-2:]}
            (dst / "results.json").write_text(json.dumps(result | {"bd_rate_vs_peers": bd}, indent=2))
            lines = [
                "",
                "BD-rate against each peer (PSNR; negative = fewer bits than the peer):",
                "",
                "| codec | " + " | ".join(PEERS) + " |",
                "|---|" + "---:|" * len(PEERS),
            ]
            lines += [
                f"| {c} | " + " | ".join("–" if v is None else f"{v:+.1f}%" for v in bd[c].values()) + " |" for c in bd
            ]
            (dst / "results.md").write_text(table + "\n".join(lines) + "\n")
            print(table + "\n".join(lines))


PROTOCOL_PEERS = ["jpeg", "webp", "x265", "av1:preset=4"]


def protocol(data: Path, out: Path, refine: int, every: int) -> None:
    """The evaluation protocol's tables: the test split (every ``every``-th photo of it) and,
    on the whole split, Set14; every peer and mlic (with ``--refine`` too when ``refine`` > 0)
    in one run per set, BD-rate of mlic against each peer."""
    peers = PROTOCOL_PEERS
    codecs = peers + ["mlic"] + ([f"mlic:refine={refine}"] if refine else [])
    summary = ["| set | codec | " + " | ".join(peers) + " |", "|---|---|" + "---:|" * len(peers)]
    with tempfile.TemporaryDirectory(prefix="ncodec-mlic-") as tmp:
        test = heldout_test_photos(str(data / "train"))[::every]
        sets = {"test" if every == 1 else f"test_every{every}": cropped_folder(test, Path(tmp))}
        if every == 1:
            sets["set14"] = data / "eval/sr/Set14"
        for name, folder in sets.items():
            command = f"python benchmarks/mlic_rd.py --data {data} --protocol {refine} --every {every} --out {out}"
            table = bench.run(folder, codecs, points=4, out_dir=out / name, command=command, progress=True)
            result = json.loads((out / name / "results.json").read_text())
            rows = result["rows"]
            curve = {
                c: ([r["bpp"] for r in rows if r["codec"] == c], [r["psnr"] for r in rows if r["codec"] == c])
                for c in {r["codec"] for r in rows}
            }
            bd = {}
            for codec in codecs[len(peers) :]:
                bd[codec] = {}
                for peer in peers:
                    try:
                        bd[codec][peer] = metrics.bd_rate(*curve[peer], *curve[codec])
                    except (ValueError, KeyError):
                        bd[codec][peer] = None
                summary.append(
                    f"| {name} | {codec} | "
                    + " | ".join("–" if v is None else f"{v:+.1f}%" for v in bd[codec].values())
                    + " |"
                )
            (out / name / "results.json").write_text(json.dumps(result | {"bd_rate_vs_peers": bd}, indent=2))
            print(table)
    lines = [
        f"Date: {datetime.date.today().isoformat()}. "
        f"Reproduce: `python benchmarks/mlic_rd.py --protocol {refine} --every {every} --out {out}`",
        "",
        "BD-rate (PSNR-RGB) of mlic against each peer; negative = mlic needs fewer bits:",
        "",
        *summary,
    ]
    (out / ("summary.md" if every == 1 else f"summary_every{every}.md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="docs/bench/mlic")
    ap.add_argument("--refine-steps", type=int, default=100)
    ap.add_argument("--refine-images", type=int, default=3)
    ap.add_argument("--refine-only", action="store_true", help="measure only the refinement (refine.json, refine.md)")
    ap.add_argument("--update-card", action="store_true", help="write the BD-rates into the shipped model card")
    ap.add_argument("--per-image", metavar="PEER", help="only Set14's BD-rate against PEER picture by picture")
    ap.add_argument(
        "--refine-curve",
        type=int,
        metavar="STEPS",
        help="only the RD curves with and without --refine STEPS (into SET_refineSTEPS/)",
    )
    ap.add_argument("--sets", default="set14,heldout", help="--refine-curve: which sets (default set14,heldout)")
    ap.add_argument(
        "--protocol",
        type=int,
        metavar="REFINE",
        help="only the test split's and Set14's tables, with a --refine REFINE row unless 0",
    )
    ap.add_argument("--every", type=int, default=1, help="--protocol: every K-th photo of the test split only")
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    if args.protocol is not None:
        out.mkdir(parents=True, exist_ok=True)
        protocol(data, out, args.protocol, args.every)
        return
    if args.refine_curve:
        refine_curves(data, out, args.refine_curve, args.sets.split(","))
        return
    if args.per_image:
        with tempfile.TemporaryDirectory(prefix="ncodec-mlic-") as tmp:
            result = per_image(data / "eval/sr/Set14", args.per_image, Path(tmp))
        (out / "set14_per_image.json").write_text(json.dumps(result, indent=2))
        table = "\n".join(per_image_table(result, args.per_image)) + "\n"
        (out / "set14_per_image.md").write_text(table)
        print(table)
        return
    if args.refine_only:
        refine = refinement(data / "eval/sr/Set14", 1.0, args.refine_steps, args.refine_images)
        (out / "refine.json").write_text(json.dumps(refine, indent=2))
        table = "\n".join(refinement_table(refine, args.refine_steps, args.refine_images)) + "\n"
        (out / "refine.md").write_text(table)
        print(table)
        return
    codecs = PEERS + ["mlic"]
    lines, scores = [], {"date": datetime.date.today().isoformat()}
    with tempfile.TemporaryDirectory(prefix="ncodec-mlic-") as tmp:
        sets = {"set14": data / "eval/sr/Set14", "heldout": heldout_folder(data, Path(tmp))}
        titles = {"set14": "Set14", "heldout": "Ten held-out photos"}
        for name, folder in sets.items():
            command = (
                f"ncodec bench {folder} --codecs {','.join(codecs)} --points 4"
                if name == "set14"
                else f"python benchmarks/mlic_rd.py --data {data} --out {out}"
            )  # the held-out folder is temporary
            bench.run(folder, codecs, points=4, out_dir=out / name, command=command, progress=True)
            result = json.loads((out / name / "results.json").read_text())
            bd = bd_against_peers(result)
            result["bd_rate_mlic_vs"] = bd
            scores[f"bd_rate_psnr_vs_peers_{name}"] = bd
            (out / name / "results.json").write_text(json.dumps(result, indent=2))
            lines += [
                f"### {titles[name]}",
                "",
                (out / name / "results.md").read_text(),
                "BD-rate of mlic against each peer (PSNR; negative = mlic needs fewer bits):",
                "",
                "| peer | BD-rate of mlic |",
                "|---|---:|",
            ]
            lines += [f"| {p} | {'–' if v is None else format(v, '+.1f') + '%'} |" for p, v in bd.items()] + [""]
        refine = refinement(data / "eval/sr/Set14", 1.0, args.refine_steps, args.refine_images)
    size = weights_path("mlic").stat().st_size
    card = json.loads(weights_path("mlic").with_suffix(".json").read_text())
    lines += [
        f"Model: {count_parameters(shipped_model()):,} parameters, weights file {size / 2**20:.1f} MiB "
        f"({card['weights']}).",
        "",
    ]
    refine_lines = refinement_table(refine, args.refine_steps, args.refine_images)
    lines += refine_lines
    lines += [
        "",
        "Training curve (validation crops of the held-out photos, bpp/PSNR from the likelihoods; "
        "minutes and steps count from the first run, each continued run (`--init`) starting where the "
        "previous one ended):",
        "",
        "| run | minutes | step | " + " | ".join(f"level {lv} bpp / dB" for lv in range(4)) + " |",
        "|---:|---:|---:|" + "---:|" * 4,
    ]
    minutes = steps = 0
    for number, run in enumerate(card.get("previous_runs", []) + [card], 1):
        for h in run.get("history", []):  # cards written before 2026-12-02 kept no history of earlier runs
            lines.append(
                f"| {number} | {minutes + h['seconds'] / 60:.0f} | {steps + h['step']} | "
                + " | ".join(f"{h['val'][str(lv)]['bpp']:.3f} / {h['val'][str(lv)]['psnr']:.2f}" for lv in range(4))
                + " |"
            )
        minutes, steps = minutes + run["wall_seconds"] / 60, steps + run["steps"]
    if args.update_card:
        weights_path("mlic").with_suffix(".json").write_text(json.dumps(card | {"scores": scores}, indent=2))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "refine.json").write_text(json.dumps(refine, indent=2))
    (out / "refine.md").write_text("\n".join(refine_lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
