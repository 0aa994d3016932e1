"""STDO decode speed at 640x360 output, side by side with SVT-AV1's own decoder, in one run.

Rows (frames per second, 2 torch threads, best of three; the input is the first frames
of a real clip scaled to 640x360 and coded by SVT-AV1 at crf 40):
  - SVT-AV1 stream decoded by dav1d to RGB (what the base layer costs alone),
  - the enhancement network alone on packed 4:2:0 planes (IntegerEnhancer, batches of 4),
  - the whole STDO decoder (base decode + network + YUV->RGB), through the codec registry;
  - the same for a segment coded at reduced size, for each scale a network ships for
    (``--scale 2``: a 320x180 SVT-AV1 stream at the same crf, restored and upscaled to
    640x360 by the x2 network; x3, x4 alike);
  - other forms of the network (``--forms CHANNELS:LAYERS:QUARTER[:LUMA:LUMA_LAYERS],...``,
    the last two a full-resolution luma branch; untrained: the time does not depend on
    the weights), to size a successor at the same decode cost.

    python benchmarks/enhance_speed.py --clip ../shared/data/eval/video/bikes.mp4 [--forms 24:7:4,24:6:0:12:5]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from fractions import Fraction

import av
import numpy as np
import torch

from ncodec.codec import Colour, StreamHeader, get
from ncodec.codec.container import unpack_chunks
from ncodec.codec.stdo import PACKET_SECTION, STDO, UPSCALE_WEIGHTS, packed_planes, parse_segment_record
from ncodec.models.nets import count_parameters
from ncodec.models.nets.enhance import EnhanceConfig, Enhancer, IntegerEnhancer
from ncodec.models.zoo import load_enhance

WIDTH, HEIGHT = 640, 360


def frames_of(clip: str, count: int) -> list[np.ndarray]:
    out = []
    with av.open(clip) as c:
        for f in c.decode(video=0):
            out.append(f.reformat(width=WIDTH, height=HEIGHT, format="rgb24").to_ndarray())
            if len(out) == count:
                break
    return out


def timed(fn, frames: int, repeat: int = 3) -> float:
    """Best of ``repeat`` runs, in frames per second."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return frames / best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", required=True)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--crf", type=int, default=40)
    p.add_argument(
        "--forms", default="", help="more network forms to time, CHANNELS:LAYERS:QUARTER[:LUMA:LUMA_LAYERS],..."
    )
    args = p.parse_args()
    torch.set_num_threads(2)
    rgb = frames_of(args.clip, args.frames)
    n = len(rgb)
    fps = Fraction(25)
    untagged = Colour(2, 2, 2, 0)
    av1 = get("av1")
    base_header = StreamHeader(
        av1.tag, WIDTH, HEIGHT, fps, n, untagged, params=av1.params(WIDTH, HEIGHT, fps, {"crf": args.crf})
    )
    base_sections = list(av1.encode(iter(rgb), base_header))
    options = STDO.settings({"crf": args.crf, "overfit": "off", "segment_frames": n, "scale": 1})
    header = StreamHeader(STDO.tag, WIDTH, HEIGHT, fps, n, untagged, params=STDO.params(WIDTH, HEIGHT, fps, options))
    sections = list(STDO.encode(iter(rgb), header, {"settings": STDO.encoder_settings(options)}))
    used = parse_segment_record(unpack_chunks(sections[0][1])[0]).network
    planes = packed_planes(av1.decode_planes(iter(base_sections), base_header))
    shipped = load_enhance()

    def reduced_size(scale: int):
        """A segment coded at 1/scale size: its STDO file, its decoded base planes, its network."""
        opts = options | {"scale": scale}
        head = StreamHeader(STDO.tag, WIDTH, HEIGHT, fps, n, untagged, params=STDO.params(WIDTH, HEIGHT, fps, opts))
        secs = list(STDO.encode(iter(rgb), head, {"settings": STDO.encoder_settings(opts)}))
        record, stream, _ = unpack_chunks(secs[0][1])
        lr_header = STDO._layout(head, n, scale)[1]
        lr_planes = packed_planes(av1.decode_planes(((PACKET_SECTION, c) for c in unpack_chunks(stream)), lr_header))
        return (
            head,
            secs,
            parse_segment_record(record).network,
            lr_header,
            lr_planes,
            load_enhance(UPSCALE_WEIGHTS[scale]),
        )

    def network_alone(model, inputs=planes):
        net = IntegerEnhancer(model)
        return lambda: [net(batch, args.crf) for batch in inputs.split(4)]

    rows = [
        ("SVT-AV1 stream, dav1d decode to RGB", timed(lambda: list(av1.decode(iter(base_sections), base_header)), n)),
        (
            f"enhancement network alone (packed planes in and out; {count_parameters(shipped):,} parameters)",
            timed(network_alone(shipped), n),
        ),
        ("STDO decoder: base + network + RGB", timed(lambda: list(STDO.decode(iter(sections), header)), n)),
    ]
    for scale in UPSCALE_WEIGHTS:
        head, secs, network_on, lr_header, lr_planes, upscaler = reduced_size(scale)
        size = f"{lr_header.width}x{lr_header.height}"
        rows += [
            (
                f"x{scale} network alone on {size} planes ({count_parameters(upscaler):,} parameters)",
                timed(network_alone(upscaler, lr_planes), n),
            ),
            (
                f"STDO decoder, segment at 1/{scale} size: base + x{scale} network + RGB "
                f"(network {'on' if network_on else 'off'})",
                timed(lambda: list(STDO.decode(iter(secs), head)), n),
            ),
        ]
    for form in filter(None, args.forms.split(",")):
        c, layers, quarter, luma, luma_layers = ([int(v) for v in form.split(":")] + [0, 5])[:5]
        model = Enhancer(EnhanceConfig(c, layers, quarter, luma=luma, luma_layers=luma_layers))
        model.quantised = True
        name = f"network form {c} ch, {layers} layers, {quarter} at 1/4 resolution"
        name += f", luma branch {luma} ch x {luma_layers} layers" if luma else ""
        name += f" ({count_parameters(model):,} parameters)"
        rows.append((name, timed(network_alone(model), n)))
    print(
        f"Date: {datetime.date.today().isoformat()}. Machine: {platform.machine()}, 2 torch threads. "
        f"{n} frames of `{args.clip}` at {WIDTH}x{HEIGHT}, SVT-AV1 crf {args.crf}; the STDO "
        f"segment {'uses' if used else 'does not use'} the network.\n"
        f"Reproduce: `python benchmarks/enhance_speed.py --clip {args.clip}"
        + (f" --forms {args.forms}`\n" if args.forms else "`\n")
    )
    print("| decoder | fps at 640x360 | x SVT-AV1's time |")
    print("|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.1f} | {rows[0][1] / value:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
