"""The STDO video codec, ncodec's default for videos: a classical base layer, a trained
enhancement network on its decoded frames, and per-segment overfitting sent only where
it pays for its bytes (after Li et al., "Towards High-Quality and Efficient Video
Super-Resolution via Spatial-Temporal Data Overfitting", CVPR 2023).

Encoder, per segment of at most ``segment_frames`` frames (bounded memory):
  1. code the frames with the base codec (SVT-AV1 by default, x265 or x264; through
     codec/classical.py) and decode them again: the 4:2:0 planes the client will see;
  2. run the shipped enhancement network (models/nets/enhance.py) on them, told the crf;
  3. overfit the network's biases to this segment (models/train/enhance.tune_biases)
     and keep the update only if it lowers D + lambda R, where lambda is the segment's
     own rate-distortion slope, measured by a second base encode at crf + LAMBDA_CRF_STEP;
  4. keep the network only if it lowers the segment's error below the base layer's.

One "SSEG" section per segment, a chunk list::

    record: flags (bit 0 network, bit 1 delta), crf, frames (varint); JSON in older files
    base stream: the base codec's section payloads, as a chunk list
    bias update: rANS-coded integers in DELTA_STEP units (empty when "delta" is false)

A segment the network does not improve (its error measured against the source) is sent
with "network": false and decodes to the base layer as its codec alone would.

The decoder runs the network in integer arithmetic carried exactly in float32, so
every machine decodes a file to the same pixels. ``--network espcn`` selects the
paper's setting instead (codec/stdo_espcn.py: chunk models over a downscaled stream);
files coded with it, and every STDO file from before the enhancement network, decode
through that module.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from . import stdo_espcn
from .classical import AV1, PACKET_SECTION, PRESET_X26X, X264, X265, ClassicalCodec, pad_to
from .colour import frame_planes, output_colour, planes_to_rgb, rgb_to_frame
from .container import StreamHeader, decode_varint, encode_varint, pack_chunks, parse_json, unpack_chunks
from .entropy import decode_symbols, encode_symbols
from .errors import BitstreamError, UsageError
from .options import SEED, TIME_BUDGET, Option
from .registry import Section, SegmentedCodec, register
from .weights import named_weights, writer

SEGMENT_TAG = "SSEG"
BASES: dict[str, ClassicalCodec] = {"av1": AV1, "x265": X265, "x264": X264}
NETWORKS = ("enhance", "espcn")
ENHANCE_WEIGHTS = "enhance_av1"  # the network encoders use (models/weights/)
LAMBDA_CRF_STEP = 4
DECODE_BATCH = 4
MAX_DELTA = 1 << 15
AV1_PRESETS = tuple(str(p) for p in range(14))
ESPCN_ONLY = ("chunks", "joint", "patch", "train_layers")  # options of the paper setting


def enhance_fingerprint(name: str) -> str:
    from ncodec.models.zoo import fingerprint

    return fingerprint(name)


class STDOCodec(SegmentedCodec):
    name, tag, segment_tag = "stdo", "stdo", SEGMENT_TAG
    description = "STDO: SVT-AV1/x265/x264 base layer + a trained enhancement network, overfitted where it pays"
    uses_torch = True
    quality_levels = {"low": {}, "medium": {}, "high": {}, "best": {}}  # the base codec's crf for the level
    default_quality = "medium"

    options = (
        Option("base", str, "av1", "classical codec of the base layer", choices=tuple(BASES)),
        Option(
            "network",
            str,
            "enhance",
            "enhance: the trained enhancement network at full resolution; espcn: the paper's "
            "ESPCN chunk models over a downscaled x264/x265 stream",
            choices=NETWORKS,
        ),
        Option("scale", int, 1, "downscaling factor of the base layer (espcn: 2, 3 or 4)", choices=(1, 2, 3, 4)),
        Option("crf", int, None, "base layer's constant rate factor (default: the --quality level's)", low=0, high=63),
        Option(
            "preset", str, None, "base encoder's speed preset", choices=AV1_PRESETS + PRESET_X26X, encoder_only=True
        ),
        Option(
            "overfit",
            str,
            "auto",
            "auto: send a segment's overfitted bias update when it lowers D + lambda R; off: never",
            choices=("auto", "off"),
            encoder_only=True,
        ),
        Option("chunks", int, None, "espcn: patch chunks, one overfitted model each", low=1, high=64),
        Option("joint", bool, None, "espcn: one jointly trained model for every chunk"),
        Option("patch", int, None, "espcn: patch side in low-resolution pixels", low=8, high=256),
        Option(
            "segment_frames",
            int,
            150,
            "frames per independently coded segment",
            low=1,
            high=stdo_espcn.MAX_SEGMENT_FRAMES,
        ),
        Option(
            "steps",
            int,
            None,
            "overfitting steps per segment when no time budget is given (default: enhance 150, espcn 300)",
            low=0,
            high=1_000_000,
            encoder_only=True,
        ),
        Option(
            "train_layers",
            str,
            None,
            "espcn: what overfitting trains, the last layer or all",
            choices=("last", "all"),
            encoder_only=True,
        ),
        TIME_BUDGET,
        SEED,
    )

    def settings(self, options: dict, quality: str | None = None) -> dict:
        s = super().settings(options, quality)
        base = BASES[s["base"]]
        if s["crf"] is None:
            s["crf"] = base.quality_levels[quality or self.default_quality]["crf"]
        high = 63 if s["base"] == "av1" else 51
        if s["crf"] > high:
            raise UsageError(f"--crf must be in 0..{high} for --base {s['base']}, not {s['crf']}")
        if s["preset"] is not None and (s["preset"] in AV1_PRESETS) != (s["base"] == "av1"):
            kind = "0..13" if s["base"] == "av1" else ", ".join(PRESET_X26X)
            raise UsageError(f"--preset for --base {s['base']} must be one of {kind}, not {s['preset']}")
        if s["network"] == "enhance":
            given = [o for o in ESPCN_ONLY if s[o] is not None]
            if given:
                raise UsageError(f"--{given[0].replace('_', '-')} applies to --network espcn only")
            if s["scale"] != 1:
                raise UsageError("--scale 2, 3 or 4 needs --network espcn (the enhancement network works at scale 1)")
            s["steps"] = 150 if s["steps"] is None else s["steps"]
        else:
            defaults = {"chunks": 4, "joint": False, "patch": 32, "train_layers": "last", "steps": 300}
            s |= {k: v for k, v in defaults.items() if s[k] is None}
        return s

    def params(self, width: int, height: int, fps, options: dict) -> dict:
        s = self.settings(options)
        if s["network"] == "espcn":
            return stdo_espcn.make_params(s, width, height, fps)
        return {
            "network": "enhance",
            "weights": ENHANCE_WEIGHTS,
            "fingerprint": enhance_fingerprint(ENHANCE_WEIGHTS),
            "base": s["base"],  # its stream has the picture's coded size (base_params in files before 1.1.0)
            "crf": s["crf"],
            "segment_frames": s["segment_frames"],
        } | writer()

    # -- shared by encoder and decoder ---------------------------------------------------

    def _layout(self, header: StreamHeader, frames: int | None = None) -> tuple[ClassicalCodec, StreamHeader]:
        """The base codec and the header of the base stream (of ``frames`` frames)."""
        p = header.params
        base = BASES.get(str(p.get("base")))
        if base is None:
            raise BitstreamError("STDO parameters are corrupted (base layer)")
        # files before release 1.1.0 carry the base codec's parameters; since then the base
        # stream is 4:2:0 at the coded size the base codec derives from the picture's
        params = p.get("base_params", base.params(header.width, header.height, header.fps, {}))
        if not isinstance(params, dict):
            raise BitstreamError("STDO parameters are corrupted (base layer)")
        n = header.frame_count if frames is None else frames
        inner = StreamHeader(base.tag, header.width, header.height, header.fps, n, header.colour, params=params)
        return base, inner.validate()

    @staticmethod
    def _network(header: StreamHeader):
        """The enhancement network the file names (by name and fingerprint)."""
        from ncodec.models.zoo import load_enhance

        name = str(header.params.get("weights"))
        return load_enhance(name, named_weights(name, header.params.get("fingerprint"), header.params))

    # -- encoder -------------------------------------------------------------------------

    def encode_segment(self, rgb: list[np.ndarray], header: StreamHeader, runtime: dict) -> bytes:
        run = runtime.get("settings") or self.encoder_settings({})
        if header.params.get("network") != "enhance":
            return stdo_espcn.encode_segment(rgb, header, run, runtime)
        from ncodec.models.nets.enhance import IntegerEnhancer
        from ncodec.models.train.enhance import tune_biases

        base, inner = self._layout(header, len(rgb))
        crf = int(header.params["crf"])
        model = self._network(header)
        generic = IntegerEnhancer(model)
        preset = run["preset"]
        sections, decoded = self._base_layer(base, inner, rgb, crf, preset)
        source = self._source_planes(base, inner, rgb)
        colour = output_colour(inner.colour, inner.height)

        def error(planes) -> float:  # what PSNR-RGB counts: the decoder's pictures against the source
            return rgb_sse(rgb_frames(planes, colour, header.width, header.height), rgb)

        # three ways to send the segment: the base layer alone, with the shipped network, or
        # with the network and a bias update; the last costs its bytes (D + lambda R)
        delta = None
        d_base, d_generic = error(decoded), error(generic(decoded, crf))
        d_free = min(d_base, d_generic)  # the best without an update: never worse than the base layer
        share = len(rgb) / max(header.frame_count, 1)
        seconds = run["time_budget"] * share if run["time_budget"] else None
        if run["overfit"] == "auto" and (seconds or run["steps"]):
            update = tune_biases(model, decoded, source, crf, steps=run["steps"], seconds=seconds, seed=run["seed"])
            coded = encode_symbols(update.numpy())
            d_tuned = error(IntegerEnhancer(model, update)(decoded, crf))
            if d_tuned < d_free:
                lam = self._slope(base, inner, rgb, crf, preset, error, generic, d_generic, sections)
                if delta_pays(d_free, d_tuned, lam, len(coded)):
                    delta = coded
        network = delta is not None or d_generic < d_base
        record = segment_record(len(rgb), crf, network, delta is not None)
        return pack_chunks([record, pack_chunks([pl for _, pl in sections]), delta or b""])

    @staticmethod
    def _base_layer(base: ClassicalCodec, inner: StreamHeader, rgb: list[np.ndarray], crf: int, preset: str | None):
        """The base stream's sections at ``crf`` and its decoded planes (packed, uint8)."""
        header = StreamHeader(
            inner.codec,
            inner.width,
            inner.height,
            inner.fps,
            len(rgb),
            inner.colour,
            params=inner.params | {"crf": crf, "preset": preset},
        )
        sections = list(base.encode(iter(rgb), header))
        return sections, packed_planes(base.decode_planes(iter(sections), header))

    @staticmethod
    def _source_planes(base: ClassicalCodec, inner: StreamHeader, rgb: list[np.ndarray]):
        """The planes the base encoder was given (padded to the coded size, same colour)."""
        cw, ch = base._geometry(inner)
        return source_planes([pad_to(f, cw, ch) for f in rgb], inner.colour)

    def _slope(self, base, inner, rgb, crf, preset, error, generic, d_generic, sections) -> float:
        """lambda: distortion bought per bit on this segment's own curve (base + generic
        network), from a second base encode LAMBDA_CRF_STEP crf coarser."""
        high = 63 if base is AV1 else 51
        coarser = min(crf + LAMBDA_CRF_STEP, high)
        if coarser == crf:
            return float("inf")
        other, planes = self._base_layer(base, inner, rgb, coarser, preset)
        bits = 8 * (sum(len(p) for _, p in sections) - sum(len(p) for _, p in other))
        d_other = error(generic(planes, coarser))
        return max(d_other - d_generic, 0.0) / bits if bits > 0 else float("inf")

    # -- decoder -------------------------------------------------------------------------

    def decode(self, sections: Iterable[Section], header: StreamHeader) -> Iterator[np.ndarray]:
        if header.params.get("network") != "enhance":
            p, inner, lr_header = stdo_espcn.layout(header)
            for _, payload in sections:
                yield from stdo_espcn.decode_segment(payload, header, p, inner, lr_header)
            return
        base, _ = self._layout(header)
        model = self._network(header)
        for _, payload in sections:
            yield from self._decode_segment(payload, header, base, model)

    def base_layer(
        self, sections: Iterable[Section], header: StreamHeader
    ) -> tuple[str, Iterator[tuple[np.ndarray, int]]] | None:
        if header.params.get("network") != "enhance":
            return None
        base = self._layout(header)[0]

        def frames() -> Iterator[tuple[np.ndarray, int]]:
            for _, payload in sections:
                chunks = unpack_chunks(payload)
                if len(chunks) != 3:
                    raise BitstreamError("corrupted STDO segment (counts out of range)")
                packets = unpack_chunks(chunks[1])
                n = parse_segment_record(chunks[0])[0]
                size = sum(len(p) for p in packets)
                for rgb in base.decode(((PACKET_SECTION, c) for c in packets), self._layout(header, n)[1]):
                    yield rgb, size
                    size = 0

        return base.name, frames()

    def _decode_segment(
        self, payload: bytes, header: StreamHeader, base: ClassicalCodec, model
    ) -> Iterator[np.ndarray]:
        import torch

        from ncodec.models.nets.enhance import IntegerEnhancer, bias_count

        chunks = unpack_chunks(payload)
        if len(chunks) != 3:
            raise BitstreamError("corrupted STDO segment (counts out of range)")
        n, crf, network, has_delta = parse_segment_record(chunks[0])
        update = None
        if has_delta:
            values = decode_symbols(chunks[2], bias_count(model.cfg))
            if np.abs(values).max() > MAX_DELTA:
                raise BitstreamError("corrupted STDO bias update")
            update = torch.from_numpy(values.astype(np.int64))
        elif chunks[2]:
            raise BitstreamError("corrupted STDO segment (an update it does not declare)")
        if has_delta and not network:
            raise BitstreamError("corrupted STDO segment (an update without the network)")
        net = IntegerEnhancer(model, update) if network else None
        _, inner = self._layout(header, n)
        colour = output_colour(inner.colour, inner.height)
        done, pending = 0, []

        def restore(batch):
            planes = packed_planes(batch)
            yield from rgb_frames(net(planes, crf) if net else planes, colour, header.width, header.height)

        packets = ((PACKET_SECTION, c) for c in unpack_chunks(chunks[1]))
        for planes in base.decode_planes(packets, inner):
            if done + len(pending) >= n:
                raise BitstreamError("STDO segment holds more frames than it declares")
            pending.append(planes)
            if len(pending) == DECODE_BATCH:
                yield from restore(pending)
                done, pending = done + len(pending), []
        if pending:
            yield from restore(pending)
            done += len(pending)
        if done != n:
            raise BitstreamError(f"STDO segment declares {n} frames, its stream holds {done}")


def segment_record(frames: int, crf: int, network: bool, delta: bool) -> bytes:
    """A segment's record (since release 1.1.0): a flags byte (bit 0: the network runs,
    bit 1: a bias update follows), the crf byte, the frame count as a varint."""
    return bytes([int(network) | int(delta) << 1, crf]) + encode_varint(frames)


def parse_segment_record(chunk: bytes) -> tuple[int, int, bool, bool]:
    """(frames, crf, network, delta) of a segment record, binary or the JSON of files before
    release 1.1.0 (it starts with "{", which no flags byte equals), checked."""
    if chunk[:1] == b"{":
        try:
            meta = parse_json(chunk)
            n, crf, delta = int(meta["frames"]), int(meta["crf"]), bool(meta["delta"])
            network = bool(meta.get("network", True))  # records before "network" existed always ran it
        except (ValueError, KeyError, TypeError) as e:
            raise BitstreamError(f"corrupted STDO segment header ({e})") from None
    else:
        if len(chunk) < 3 or chunk[0] > 3:
            raise BitstreamError("corrupted STDO segment header")
        n, end = decode_varint(chunk, 2)
        if end != len(chunk):
            raise BitstreamError("corrupted STDO segment header (trailing bytes)")
        crf, network, delta = chunk[1], bool(chunk[0] & 1), bool(chunk[0] & 2)
    if not (1 <= n <= stdo_espcn.MAX_SEGMENT_FRAMES and 0 <= crf <= 63):
        raise BitstreamError("corrupted STDO segment (counts out of range)")
    return n, crf, network, delta


def packed_planes(planes: Iterable[tuple[np.ndarray, ...]]):
    """N,6,h,w uint8 packed planes (models/nets/enhance.pack) of (Y, Cb, Cr) tuples."""
    import torch

    from ncodec.models.nets.enhance import pack

    y, u, v = (torch.from_numpy(np.stack(p)) for p in zip(*planes))
    return pack(y, u, v)


def source_planes(rgb: list[np.ndarray], colour) -> "torch.Tensor":  # noqa: F821
    """N,6,h,w packed planes of RGB frames (even sizes), converted as the base encoders convert."""
    out = output_colour(colour, rgb[0].shape[0])
    return packed_planes(frame_planes(rgb_to_frame(f, "yuv420p", out)) for f in rgb)


def delta_pays(d_without: float, d_tuned: float, lam: float, nbytes: int) -> bool:
    """Whether a bias update of ``nbytes`` lowers D + lambda R against the best way to send
    the segment without one (D: squared error summed over the segment, lambda: its
    distortion per bit; one more byte for the segment's flag)."""
    return d_without - d_tuned > lam * 8 * (nbytes + 1)


def rgb_frames(planes, colour, width: int, height: int) -> Iterator[np.ndarray]:
    """The decoder's pictures of N,6,h,w packed planes: RGB converted as a base decoder's
    frame of ``colour`` would be, cropped to the picture."""
    from ncodec.models.nets.enhance import unpack

    y, u, v = unpack(planes)
    for i in range(len(planes)):
        yield planes_to_rgb((y[i].numpy(), u[i].numpy(), v[i].numpy()), colour)[:height, :width]


def rgb_sse(frames: Iterable[np.ndarray], rgb: list[np.ndarray]) -> float:
    """Squared error of pictures against the source frames, summed over the segment: the
    encoder's decisions use the error PSNR-RGB counts. (The planes' RGB-weighted error,
    which training uses, ignores how luma and chroma errors add up in R, G and B: on
    carphone at crf 54 it kept a network that cost 0.045 dB of PSNR-RGB.)"""
    return float(sum(np.sum(np.square(f.astype(np.int32) - s)) for f, s in zip(frames, rgb)))


STDO = register(STDOCodec())
