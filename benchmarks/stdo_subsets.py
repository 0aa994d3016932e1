"""Which part of the enhancement network should STDO overfit to a segment? Gain per
transmitted byte of four parameter subsets, on segments nobody evaluates on.

Segments: pans over the validation photos of ../shared/data/train (video/enhance_training:
the photos the shipped network was never trained on), 24 frames of up to 480x320, coded
by SVT-AV1 (preset 8) at crf 36, 44 and 52 in turn. For each segment and subset the
update is trained on the segment's own decoded planes against its source (as the encoder
does: Adam, cosine schedule, 150 steps of 8 crops of 64 px, the best of two learning
rates), quantised to what a bitstream would carry and rANS-coded (codec/entropy.py):

- biases: every layer's biases (126 values; what the codec sends today), step 2^-12;
- multipliers: one gain per output channel of every layer (126 values; in the integer
  decoder a change of each channel's scale), step 2^-12;
- last layer: the last convolution's weights and biases (1,302 values), weights in units
  of their int8 step, biases at 2^-12;
- all: every weight and bias (23,670 values), the same units.

The network runs in its quantised form throughout. D is the RGB-weighted squared error
of the segment's planes (the training loss's); lambda is the segment's own slope, from a
second SVT-AV1 encode 4 crf coarser, as the codec measures it. An update "pays" when it lowers
D + lambda R counting its bytes.

    python benchmarks/stdo_subsets.py --data ../shared/data/train --out docs/bench/stdo_subsets
"""

from __future__ import annotations

import argparse
import datetime
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call

from ncodec.codec import StreamHeader, get
from ncodec.codec.entropy import encode_symbols
from ncodec.codec.stdo import packed_planes, source_planes
from ncodec.models.nets.enhance import DELTA_STEP, weight_steps
from ncodec.models.train.drivers import split_photos
from ncodec.models.train.enhance import Clip, ClipSampler, weighted_mse
from ncodec.models.train.loop import cosine_lr
from ncodec.models.zoo import load_enhance
from ncodec.video.enhance_training import UNTAGGED, pan
from ncodec.video.images import read_image

SUBSETS = ("biases", "multipliers", "last layer", "all")
LRS = {"biases": (3e-4, 1e-3), "multipliers": (1e-3, 3e-3), "last layer": (1e-4, 3e-4), "all": (3e-5, 1e-4)}
CRFS = (36, 44, 52)
LAMBDA_CRF_STEP = 4


def coded(rgb: list[np.ndarray], crf: int) -> tuple[torch.Tensor, int]:
    """Packed decoded planes of an SVT-AV1 encode (preset 8) of ``rgb`` at ``crf``, and its bytes."""
    codec = get("av1")
    h, w = rgb[0].shape[:2]
    fps = Fraction(25)
    header = StreamHeader(codec.tag, w, h, fps, len(rgb), UNTAGGED, params=codec.params(w, h, fps, {"crf": crf}))
    sections = list(codec.encode(iter(rgb), header))
    return packed_planes(codec.decode_planes(iter(sections), header)), sum(len(p) for _, p in sections)


class Update:
    """A trainable change of one subset of the model's parameters."""

    def __init__(self, model, subset: str):
        self.base = {k: v.detach() for k, v in model.named_parameters()}
        n = len(model.convs)
        if subset == "biases":
            names = [f"convs.{i}.bias" for i in range(n)]
        elif subset == "multipliers":
            names = [f"convs.{i}.weight" for i in range(n)]
        elif subset == "last layer":
            names = [f"convs.{n - 1}.weight", f"convs.{n - 1}.bias"]
        else:
            names = list(self.base)
        self.subset = subset
        shape = (lambda t: (t.shape[0],)) if subset == "multipliers" else (lambda t: t.shape)
        self.delta = {k: torch.zeros(shape(self.base[k]), requires_grad=True) for k in names}

    def params(self, delta: dict | None = None) -> dict:
        delta = self.delta if delta is None else delta
        if self.subset == "multipliers":  # a gain per output channel scales that channel's weights
            return {k: self.base[k] * (1 + d).view(-1, 1, 1, 1) for k, d in delta.items()}
        return {k: self.base[k] + d for k, d in delta.items()}

    def quantised(self) -> tuple[dict, np.ndarray]:
        """The update as a bitstream would carry it: (its values after rounding, the integers)."""
        values, ints = {}, []
        for k, d in self.delta.items():
            step = DELTA_STEP
            if k.endswith("weight") and self.subset != "multipliers":
                step = weight_steps(self.base[k]).view(-1, 1, 1, 1)  # in units of the int8 step
            q = torch.round(d.detach() / step)
            values[k] = q * step
            ints.append(q.flatten().long().numpy())
        return values, np.concatenate(ints)


def sse(model, params: dict, decoded: torch.Tensor, source: torch.Tensor, crf: int) -> float:
    """The codec's D: RGB-weighted squared error in pixel units, summed over the segment."""
    with torch.no_grad():
        out = torch.cat([functional_call(model, params, (d[None].float(), crf)) for d in decoded]).round().clamp(0, 255)
    n, _, h, w = decoded.shape
    return float(weighted_mse(out, source.float())) * n * h * w * 4


def train(model, update: Update, decoded, source, crf: int, lr: float, steps: int = 150) -> None:
    torch.manual_seed(0)
    opt = torch.optim.Adam(update.delta.values(), lr=lr)
    sampler = ClipSampler([Clip(decoded, source, crf)], min(64, *decoded.shape[-2:]), 0)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(lr, step / steps)
        d, s, c = sampler.batch(8)
        loss = weighted_mse(functional_call(model, update.params(), (d, c)), s)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/train")
    ap.add_argument("--out", default="docs/bench/stdo_subsets")
    ap.add_argument("--segments", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_enhance()
    for p in model.parameters():
        p.requires_grad_(False)
    rng = np.random.default_rng(0)
    rows = []
    for i, path in enumerate(split_photos(args.data)[1][: args.segments]):
        rgb = read_image(path)[0]
        h, w = rgb.shape[:2]
        width, height = min(w - 16, 480) // 2 * 2, min(h - 16, 320) // 2 * 2
        frames = pan(rgb, width, height, 24, rng)
        crf = CRFS[i % len(CRFS)]
        decoded, nbytes = coded(frames, crf)
        coarser, coarser_bytes = coded(frames, crf + LAMBDA_CRF_STEP)
        source = source_planes(frames, UNTAGGED)
        generic = {k: v.detach() for k, v in model.named_parameters()}
        d_generic = sse(model, generic, decoded, source, crf)
        d_coarser = sse(model, generic, coarser, source, crf + LAMBDA_CRF_STEP)
        lam = max(d_coarser - d_generic, 0.0) / (8 * max(nbytes - coarser_bytes, 1))
        for subset in SUBSETS:
            best = None
            for lr in LRS[subset]:
                update = Update(model, subset)
                train(model, update, decoded, source, crf, lr)
                values, ints = update.quantised()
                d_tuned = sse(model, update.params(values), decoded, source, crf)
                size = len(encode_symbols(ints)) if np.any(ints) else 0
                row = {
                    "segment": i,
                    "photo": path.name,
                    "size": f"{width}x{height}x24",
                    "crf": crf,
                    "base_bytes": nbytes,
                    "subset": subset,
                    "lr": lr,
                    "values": int(ints.size),
                    "bytes": size,
                    "gain_db": 10 * np.log10(d_generic / d_tuned),
                    "d_saved": d_generic - d_tuned,
                    "lambda": lam,
                    "pays": d_generic - d_tuned > lam * 8 * (size + 1),
                }
                if best is None or row["d_saved"] - lam * 8 * row["bytes"] > best["d_saved"] - lam * 8 * best["bytes"]:
                    best = row
            rows.append(best)
            print(
                f"segment {i} crf {crf} {subset:12s} lr {best['lr']:.0e}: +{best['gain_db']:.3f} dB for "
                f"{best['bytes']} bytes (base {nbytes}), pays: {best['pays']}",
                flush=True,
            )
    lines = [
        f"Date: {datetime.date.today().isoformat()}. Reproduce: `python benchmarks/stdo_subsets.py --data "
        f"{args.data} --out {args.out}`",
        "",
        "| subset | values | mean bytes | mean gain dB | dB per kB | segments where it pays | "
        "mean D saved - lambda R |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for subset in SUBSETS:
        r = [row for row in rows if row["subset"] == subset]
        net = np.mean([(x["d_saved"] - x["lambda"] * 8 * x["bytes"]) for x in r])
        gain = np.mean([x["gain_db"] for x in r])
        size = np.mean([x["bytes"] for x in r])
        lines.append(
            f"| {subset} | {r[0]['values']:,} | {size:,.0f} | {gain:+.3f} | {gain / max(size, 1) * 1000:.3f} | "
            f"{sum(x['pays'] for x in r)} of {len(r)} | {net:,.0f} |"
        )
    lines += ["", "| segment | crf | base bytes | " + " | ".join(f"{s}: dB / bytes" for s in SUBSETS) + " |"]
    lines.append("|---:|---:|---:|" + "---:|" * len(SUBSETS))
    for i in sorted({row["segment"] for row in rows}):
        r = {row["subset"]: row for row in rows if row["segment"] == i}
        first = r[SUBSETS[0]]
        cells = " | ".join(f"{r[s]['gain_db']:+.3f} / {r[s]['bytes']}{' ✓' if r[s]['pays'] else ''}" for s in SUBSETS)
        lines.append(f"| {i} | {first['crf']} | {first['base_bytes']:,} | {cells} |")
    table = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2, default=float))
    (out / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
