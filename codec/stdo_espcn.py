"""STDO's paper setting (``ncodec encode -c stdo --network espcn``): a low-resolution
classical stream plus ESPCN models overfitted to spatial-temporal chunks of the video
(Li et al., "Towards High-Quality and Efficient Video Super-Resolution via
Spatial-Temporal Data Overfitting", CVPR 2023). codec/stdo.py is the codec; this module
is the design it used before the enhancement network, and every file coded with it
still decodes here.

Encoder, per segment of at most ``segment_frames`` frames (bounded memory):
  1. pad the frames to a multiple of the scale, downscale them (models/espcn.bicubic_resize,
     the kernel ESPCN was trained for) and code the LR frames with a classical codec
     (x264/x265 from codec/classical.py: this module never touches PyAV itself);
  2. decode that LR stream again: the models are trained on what the client will see;
  3. cut every LR luma plane into patches, score each patch by the generic (shipped)
     ESPCN's error against the original, and sort the segment's patches into k chunks
     of equal size by that score (chunk 0 the hardest);
  4. overfit one ESPCN per chunk from the generic weights, or with ``joint`` one model on
     all of the hardest chunk and geometrically fewer samples of the easier ones;
  5. code each model's weights (8-bit per channel, rANS) as they are or as a delta from
     the generic weights, whichever is smaller; entropy-code the chunk map.

One "SSEG" section per segment, a chunk list::

    JSON  {"frames": n, "models": m, "delta": [bool] * m}
    LR stream: the classical codec's section payloads, as a chunk list
    chunk map: rANS-coded model index per patch, n x rows x cols (empty when m == 1)
    m coded weight states (codec/weights.py), full or delta

The decoder upscales each frame's patches with their chunk's model, every patch with
its margin of real context, so no seams come from padding; chroma is bicubic.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Iterator

import numpy as np

from .classical import PACKET_SECTION, X264, X265, ClassicalCodec
from .container import StreamHeader, pack_chunks, parse_json, unpack_chunks
from .entropy import MAX_ALPHABET, decode_symbols, encode_symbols
from .errors import BitstreamError, UsageError
from .weights import decode_state, encode_state, named_weights, writer

MAX_SEGMENT_FRAMES = 1000
MAX_MODELS = 64
MAX_MAP_SYMBOLS = 1 << 24  # chunk-map entries per segment (frames x patches), checked before decoding
LR_CODECS: dict[str, ClassicalCodec] = {"x264": X264, "x265": X265}
DECODE_BATCH = 4
# fixed by the format, never by the CPU: the decoded pixels are the same on every machine
DECODE_PRECISION = "fp64"


def generic_fingerprint(scale: int) -> str:
    """Identity of the shipped ESPCN weights that deltas are taken against."""
    from ncodec.models.zoo import espcn_name, fingerprint

    return fingerprint(espcn_name(scale))


def _luma(rgb: np.ndarray):
    """N,H,W,3 uint8 RGB -> N,1,H,W uint8 full-range luma (the Upscaler's colour handling)."""
    import cv2
    import torch

    return torch.from_numpy(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb)[:, :, 0] for f in rgb]))[:, None]


def downscale(rgb: list[np.ndarray], scale: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Frames padded (edge) to a multiple of ``scale``, and their LR versions: antialiased
    bicubic (the kernel ESPCN is trained for), rounded to uint8."""
    import torch

    from ncodec.models.nets.espcn import bicubic_resize

    h, w = rgb[0].shape[:2]
    lh, lw = math.ceil(h / scale), math.ceil(w / scale)
    hr = np.stack([np.pad(f, ((0, lh * scale - h), (0, lw * scale - w), (0, 0)), mode="edge") for f in rgb])
    with torch.inference_mode():
        t = torch.from_numpy(hr).permute(0, 3, 1, 2)
        lr = [
            (bicubic_resize(b.float() / 255, 1 / scale).clamp(0, 1) * 255).round().to(torch.uint8) for b in t.split(8)
        ]
    return hr, list(torch.cat(lr).permute(0, 2, 3, 1).contiguous().numpy())


# Weight precision of the coded models: a fixed step, so that a model's output stays
# within ~56 dB PSNR of its float self (measured on the shipped x2/x3/x4 weights); a
# per-channel 8-bit range is far too coarse for ESPCN (15 dB: its pass-through weights
# are 100x larger than the detail weights sharing their channel).
WEIGHT_STEP = 2.0**-12
WEIGHT_BITS = 16  # symbol width recorded in the coded state; the entropy coder's alphabet is the real cap


def code_weights(state: dict, generic: dict) -> tuple[bool, bytes]:
    """(is_delta, coded state): the weights, or their difference from the generic model,
    whichever codes smaller at WEIGHT_STEP. A delta too large for the coder's alphabet at
    that step gets a coarser step (never seen with the shipped training settings)."""
    options = []
    diff = {n: v - generic[n] for n, v in state.items()}
    for is_delta, tensors in ((True, diff), (False, state)):
        try:
            options.append((is_delta, encode_state(tensors, WEIGHT_BITS, WEIGHT_STEP)))
        except ValueError:  # beyond the alphabet at this precision (full weights always are)
            pass
    if not options:
        largest = max(float(v.abs().max()) for v in diff.values())
        options.append((True, encode_state(diff, WEIGHT_BITS, largest / (MAX_ALPHABET // 2 - 1))))
    return min(options, key=lambda o: len(o[1]))


def make_params(settings: dict, width: int, height: int, fps) -> dict:
    """The header parameters of the paper setting from the codec's checked settings."""
    scale, patch, segment = settings["scale"], settings["patch"], settings["segment_frames"]
    if scale in (None, 1) or settings["base"] not in LR_CODECS:
        raise UsageError(
            "--network espcn codes a downscaled x264 or x265 stream: use --scale 2, 3 or 4 and --base x264 or x265"
        )
    lw, lh = math.ceil(width / scale), math.ceil(height / scale)
    if segment * math.ceil(lw / patch) * math.ceil(lh / patch) > MAX_MAP_SYMBOLS:
        raise UsageError("too many patches per segment for the format: use fewer --segment-frames")
    lr_params = LR_CODECS[settings["base"]].params(lw, lh, fps, {"crf": settings["crf"], "preset": settings["preset"]})
    return {
        "scale": scale,
        "lr_codec": settings["base"],
        "lr_size": [lw, lh],
        "lr_params": lr_params,
        "chunks": settings["chunks"],
        "joint": settings["joint"],
        "patch": patch,
        "segment_frames": segment,
        "generic": generic_fingerprint(scale),
    } | writer()


def layout(header: StreamHeader) -> tuple[dict, ClassicalCodec, StreamHeader]:
    """Validated parameters, the LR codec and the header of the LR stream."""
    p = header.params
    try:
        scale, patch, (lw, lh) = int(p["scale"]), int(p["patch"]), (int(v) for v in p["lr_size"])
        inner = LR_CODECS.get(str(p["lr_codec"]))
        lr_params = dict(p["lr_params"])
    except (KeyError, TypeError, ValueError) as e:
        raise BitstreamError(f"STDO parameters are corrupted ({e})") from None
    if scale not in (2, 3, 4) or not 8 <= patch <= 256 or inner is None:
        raise BitstreamError("STDO parameters are out of range")
    if (lw, lh) != (math.ceil(header.width / scale), math.ceil(header.height / scale)):
        raise BitstreamError("STDO low-resolution size does not match the picture size")
    lr_header = StreamHeader(inner.tag, lw, lh, header.fps, header.frame_count, header.colour, params=lr_params)
    return p, inner, lr_header.validate()


def _grid(lr_header: StreamHeader, patch: int) -> tuple[int, int]:
    from ncodec.models.nets.stdo import patch_grid

    return patch_grid(lr_header.height, lr_header.width, patch)


def encode_segment(rgb: list[np.ndarray], header: StreamHeader, run: dict, runtime: dict) -> bytes:
    """One segment's payload; ``run`` holds the encoder-only settings."""
    import torch
    from tqdm import tqdm

    from ncodec.models.nets import stdo
    from ncodec.models.train.stdo import overfit
    from ncodec.models.zoo import load_espcn

    p, inner, lr_header = layout(header)
    if p.get("generic") != generic_fingerprint(p["scale"]):
        raise UsageError("the shipped ESPCN weights changed since these parameters were made")
    s, patch, k = p["scale"], p["patch"], int(p["chunks"])
    torch.manual_seed(run["seed"])
    lw, lh = lr_header.width, lr_header.height
    hr, lr_frames = downscale(rgb, s)
    lr_header = StreamHeader(lr_header.codec, lw, lh, header.fps, len(rgb), header.colour, params=lr_header.params)
    lr_sections = list(inner.encode(iter(lr_frames), lr_header))
    seen = np.stack(list(inner.decode(iter(lr_sections), lr_header)))  # what the client will upscale
    win = stdo.windows(_luma(seen), patch)
    target = stdo.hr_patches(_luma(hr), patch, s)
    generic = load_espcn(s)
    k = min(k, len(win))  # a tiny segment has fewer patches than chunks: no empty chunk
    ids = stdo.chunk_by_difficulty(stdo.patch_errors(generic, win, target), k)
    share = len(rgb) / max(header.frame_count, 1)
    budget = run["time_budget"] * share if run["time_budget"] else 0.0
    if p["joint"] or k == 1:
        idx = stdo.joint_sample(ids, k, run["seed"])
        groups = [idx]
        ids = torch.zeros_like(ids)
    else:
        groups = [torch.nonzero(ids == c).flatten() for c in range(k)]
    coded, delta = [], []
    bar = tqdm(
        groups,
        desc=f"overfit {len(groups)} model(s), {len(rgb)} frames",
        unit="model",
        file=sys.stderr,
        leave=False,
        disable=not runtime.get("progress"),
    )
    for c, idx in enumerate(bar):
        model = generic
        if budget or run["steps"]:  # the time budget when given, else the step count
            model, _ = overfit(
                generic,
                win[idx],
                target[idx],
                seconds=budget / len(groups) or None,
                max_steps=run["steps"],
                seed=run["seed"] + c,
                layers=run["train_layers"],
                device=runtime.get("device", "cpu"),
            )
        is_delta, payload = code_weights(model.state_dict(), generic.state_dict())
        delta.append(is_delta)
        coded.append(payload)
    bar.close()
    meta = {"frames": len(rgb), "models": len(coded), "delta": delta}
    chunk_map = encode_symbols(ids.numpy()) if len(coded) > 1 else b""
    return pack_chunks([json.dumps(meta).encode(), pack_chunks([pl for _, pl in lr_sections]), chunk_map, *coded])


def decode_segment(
    payload: bytes, header: StreamHeader, p: dict, inner: ClassicalCodec, lr_header: StreamHeader
) -> Iterator[np.ndarray]:
    import torch

    from ncodec.models.nets import stdo
    from ncodec.models.nets.espcn import ESPCN, FastESPCN, to_uint8
    from ncodec.models.upscaler import upscale_rgb
    from ncodec.models.zoo import espcn_name, load_espcn

    chunks = unpack_chunks(payload)
    try:
        meta = parse_json(chunks[0])
        n, m, delta = int(meta["frames"]), int(meta["models"]), [bool(d) for d in meta["delta"]]
    except (IndexError, ValueError, KeyError, TypeError) as e:
        raise BitstreamError(f"corrupted STDO segment header ({e})") from None
    if not (1 <= n <= MAX_SEGMENT_FRAMES and 1 <= m <= MAX_MODELS and len(delta) == m and len(chunks) == 3 + m):
        raise BitstreamError("corrupted STDO segment (counts out of range)")
    s, patch = p["scale"], p["patch"]
    rows, cols = _grid(lr_header, patch)
    if n * rows * cols > MAX_MAP_SYMBOLS:
        raise BitstreamError("STDO segment has more patches than the format allows")
    if m > 1:
        ids = decode_symbols(chunks[2], n * rows * cols)
        if ids.min() < 0 or ids.max() >= m:
            raise BitstreamError("corrupted STDO chunk map")
        ids = torch.from_numpy(ids.astype(np.int64))
    else:
        ids = torch.zeros(n * rows * cols, dtype=torch.int64)
    # deltas are taken against the weights the file names; full models need only the shapes
    generic = load_espcn(s, named_weights(espcn_name(s), p.get("generic"), p) if any(delta) else None)
    expected = {k: tuple(v.shape) for k, v in generic.state_dict().items()}
    models = []
    for coded, is_delta in zip(chunks[3:], delta):
        state = decode_state(coded, expected)
        if is_delta:
            state = {k: v + generic.state_dict()[k] for k, v in state.items()}
        model = ESPCN(s)
        model.load_state_dict(state)
        models.append(FastESPCN(model.eval(), DECODE_PRECISION))
    lr_header = StreamHeader(
        lr_header.codec, lr_header.width, lr_header.height, header.fps, n, header.colour, params=lr_header.params
    )
    per_frame = rows * cols
    lr_sections = ((PACKET_SECTION, c) for c in unpack_chunks(chunks[1]))
    done = 0
    pending: list[np.ndarray] = []

    def upscale(batch: list[np.ndarray], first: int) -> Iterator[np.ndarray]:
        frame_ids = ids[first * per_frame : (first + len(batch)) * per_frame]

        @torch.inference_mode()
        def luma(y: np.ndarray) -> np.ndarray:
            win = stdo.windows(torch.from_numpy(y)[:, None], patch).float()
            out = torch.empty(len(win), 1, patch * s, patch * s, dtype=torch.uint8)
            for c, model in enumerate(models):
                sel = torch.nonzero(frame_ids == c).flatten()
                if len(sel):
                    out[sel] = to_uint8(stdo.upscale_windows(model, win[sel], s))
            big = stdo.assemble(out, len(y), lr_header.height * s, lr_header.width * s, patch, s)
            return big[:, 0].numpy()

        for f in upscale_rgb(np.stack(batch), s, luma):
            yield f[: header.height, : header.width]

    for rgb in inner.decode(lr_sections, lr_header):
        if done + len(pending) >= n:
            raise BitstreamError("STDO segment holds more frames than it declares")
        pending.append(rgb)
        if len(pending) == DECODE_BATCH:
            yield from upscale(pending, done)
            done, pending = done + len(pending), []
    if pending:
        yield from upscale(pending, done)
        done += len(pending)
    if done != n:
        raise BitstreamError(f"STDO segment declares {n} frames, its stream holds {done}")
