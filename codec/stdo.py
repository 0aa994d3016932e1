"""The STDO video codec, ncodec's default for videos: a classical base layer, a trained
enhancement network on its decoded frames, and per-segment overfitting sent only where
it pays for its bytes (after Li et al., "Towards High-Quality and Efficient Video
Super-Resolution via Spatial-Temporal Data Overfitting", CVPR 2023).

Encoder, per segment of at most ``segment_frames`` frames (bounded memory):
  1. code the frames with the base codec (SVT-AV1 by default, x265 or x264; through
     codec/classical.py) and decode them again: the 4:2:0 planes the client will see;
  2. run the shipped enhancement network (models/nets/enhance.py) on them, told the crf;
  3. (--scale unset) code the frames downscaled by 2 too (AUTO_SCALES), at LR_CRF_OFFSETS
     finer crfs, and restore and upscale them with the x2 network of UPSCALE_WEIGHTS;
     keep whichever way of sending
     the segment has the least D + lambda R, where lambda is the segment's own
     rate-distortion slope at full size, measured by two more base encodes
     LAMBDA_CRF_STEP crf finer and coarser (a per-segment choice on the convex hull);
  4. overfit the chosen network's biases to this segment (models/train/enhance.tune_biases)
     and keep the update only if it lowers D + lambda R;
  5. keep the network only if it lowers the segment's error below the base layer's.

One "SSEG" section per segment, a chunk list::

    record: flags (bit 0 network, bit 1 delta, bits 2-3 scale - 1), crf, frames (varint);
            JSON in files before 1.1.0
    base stream: the base codec's section payloads, as a chunk list
    bias update: rANS-coded integers in DELTA_STEP units (empty when "delta" is false)

A segment the network does not improve (its error measured against the source) is sent
with "network": false and decodes to the base layer as its codec alone would (at reduced
size: upscaled by the fixed bilinear filter the upscaling networks add to).

The decoder runs the network in integer arithmetic carried exactly in float32, so
every machine decodes a file to the same pixels. ``--network espcn`` selects the
paper's setting instead (codec/stdo_espcn.py: chunk models over a downscaled stream);
files coded with it, and every STDO file from before the enhancement network, decode
through that module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from . import stdo_espcn
from .classical import AV1, PACKET_SECTION, PRESET_X26X, X264, X265, ClassicalCodec, pad_to
from .colour import Colour, frame_planes, output_colour, planes_to_rgb, rgb_to_frame
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
# restore-and-upscale networks of reduced-size segments, by scale
UPSCALE_WEIGHTS = {2: "enhance_av1_x2", 3: "enhance_av1_x3", 4: "enhance_av1_x4"}
# the sizes --scale unset chooses among, per segment. x3 and x4 only on request: even x2
# was never chosen at the quality levels' rates, and each size tried costs two more base
# encodes per segment and its weights' names in the header
AUTO_SCALES = (1, 2)
LAMBDA_CRF_STEP = 4
# A reduced-size segment is tried this much finer than the full-size crf: the base stream
# then costs about what the full-size one does (SVT-AV1 on bikes: full crf 58/54/46 ~ half
# crf 49/43/32 in bytes); the RD decision, not this grid, picks.
LR_CRF_OFFSETS = {2: {"av1": (8, 14), "x265": (4, 7), "x264": (4, 7)}}
DECODE_BATCH = 4
MAX_DELTA = 1 << 15
AV1_PRESETS = tuple(str(p) for p in range(14))
SCALES = (1, 2, 3, 4)  # what a segment record can say; a file's header says which it uses
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
        Option(
            "scale",
            int,
            None,
            "downscaling factor of the base layer (enhance: 1, 2, 3 or 4, unset: 1 or 2 chosen per "
            "segment by rate-distortion cost; espcn: 2, 3 or 4)",
            choices=(1, 2, 3, 4),
        ),
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
            s["steps"] = 150 if s["steps"] is None else s["steps"]
        else:
            defaults = {"chunks": 4, "joint": False, "patch": 32, "train_layers": "last", "steps": 300}
            s |= {k: v for k, v in defaults.items() if s[k] is None}
        return s

    def params(self, width: int, height: int, fps, options: dict) -> dict:
        s = self.settings(options)
        if s["network"] == "espcn":
            return stdo_espcn.make_params(s, width, height, fps)
        params = {
            "network": "enhance",
            "weights": ENHANCE_WEIGHTS,
            "fingerprint": enhance_fingerprint(ENHANCE_WEIGHTS),
            "base": s["base"],  # its stream has the picture's coded size (base_params in files before 1.1.0)
            "crf": s["crf"],
            "segment_frames": s["segment_frames"],
        }
        if s["scale"] != 1:  # reduced-size segments may follow (since release 1.3.0; absent: full size only)
            params["scales"] = [s["scale"]] if s["scale"] else list(AUTO_SCALES)
            for scale in (s for s in params["scales"] if s > 1):
                name = UPSCALE_WEIGHTS[scale]
                params |= {f"x{scale}_weights": name, f"x{scale}_fingerprint": enhance_fingerprint(name)}
        return params | writer()

    # -- shared by encoder and decoder ---------------------------------------------------

    def _layout(
        self, header: StreamHeader, frames: int | None = None, scale: int = 1
    ) -> tuple[ClassicalCodec, StreamHeader]:
        """The base codec and the header of the base stream (of ``frames`` frames), coded at
        the picture's size or, for ``scale`` s > 1, at 1/s of it (rounded up)."""
        p = header.params
        base = BASES.get(str(p.get("base")))
        if base is None:
            raise BitstreamError("STDO parameters are corrupted (base layer)")
        n = header.frame_count if frames is None else frames
        if scale > 1:
            # a reduced-size stream is converted with the picture's colour, its matrix explicit:
            # the size-based default matrix could differ between the two sizes
            w, h = (-(-v // scale) for v in (header.width, header.height))  # as stdo_espcn.downscale makes them
            params = base.params(w, h, header.fps, {})
            inner = StreamHeader(base.tag, w, h, header.fps, n, picture_colour(header), params=params)
            return base, inner.validate()
        # files before release 1.1.0 carry the base codec's parameters; since then the base
        # stream is 4:2:0 at the coded size the base codec derives from the picture's
        params = p.get("base_params", base.params(header.width, header.height, header.fps, {}))
        if not isinstance(params, dict):
            raise BitstreamError("STDO parameters are corrupted (base layer)")
        inner = StreamHeader(base.tag, header.width, header.height, header.fps, n, header.colour, params=params)
        return base, inner.validate()

    @staticmethod
    def _scales(header: StreamHeader) -> tuple[int, ...]:
        """The base layer's scales the file's segments may use (full size only before 1.3.0)."""
        scales = header.params.get("scales", [1])
        if (
            not isinstance(scales, list)
            or not scales
            or not set(scales) <= set(SCALES)
            or len(set(scales)) != len(scales)
        ):
            raise BitstreamError("STDO parameters are corrupted (scales)")
        if any(f"x{s}_weights" not in header.params for s in scales if s > 1):
            raise BitstreamError("STDO parameters are corrupted (reduced-size segments without their network)")
        return tuple(scales)

    @classmethod
    def _networks(cls, header: StreamHeader) -> dict:
        """The enhancement networks the file names (by name and fingerprint), by scale."""
        from ncodec.models.zoo import load_enhance

        p, networks = header.params, {}
        for scale in sorted({1, *cls._scales(header)}):
            key = "" if scale == 1 else f"x{scale}_"
            name = str(p.get(key + "weights"))
            networks[scale] = load_enhance(name, named_weights(name, p.get(key + "fingerprint"), p))
            if networks[scale].cfg.scale != scale:
                raise BitstreamError(f"STDO parameters are corrupted ({name} does not work at scale {scale})")
        return networks

    # -- encoder -------------------------------------------------------------------------

    def encode_segment(self, rgb: list[np.ndarray], header: StreamHeader, runtime: dict) -> bytes:
        run = runtime.get("settings") or self.encoder_settings({})
        if header.params.get("network") != "enhance":
            return stdo_espcn.encode_segment(rgb, header, run, runtime)
        from ncodec.models.nets.enhance import IntegerEnhancer, upsample
        from ncodec.models.train.enhance import tune_biases

        networks, scales = self._networks(header), self._scales(header)
        colour, preset = picture_colour(header), run["preset"]
        high = 63 if header.params["base"] == "av1" else 51
        reduced: dict[int, list[np.ndarray]] = {1: rgb}  # the frames downscaled by each scale, made once

        def error(planes) -> float:  # what PSNR-RGB counts: the decoder's pictures against the source
            return rgb_sse(rgb_frames(planes, colour, header.width, header.height), rgb)

        def coded(scale: int, crf: int) -> Candidate:
            base, inner = self._layout(header, len(rgb), scale)
            if scale not in reduced:
                reduced[scale] = stdo_espcn.downscale(rgb, scale)[1]
            sections, decoded = self._base_layer(base, inner, reduced[scale], crf, preset)
            d_network = error(IntegerEnhancer(networks[scale])(decoded, crf))
            return Candidate(scale, crf, inner, sections, decoded, error(upsample(decoded, scale)), d_network)

        def chord(a: Candidate, b: Candidate) -> float:
            """Distortion bought per bit between two ways of sending the segment (inf when
            the finer one is not larger)."""
            fine, coarse = sorted((a, b), key=lambda c: c.crf)
            bits = 8 * (fine.nbytes - coarse.nbytes)
            return max(coarse.distortion - fine.distortion, 0.0) / bits if bits > 0 else float("inf")

        def step(crf: int, direction: int) -> int:
            other = crf + direction * LAMBDA_CRF_STEP
            return other if 0 <= other <= high else crf - direction * LAMBDA_CRF_STEP

        # the ways to send the segment: full size at the level's crf, or reduced size at finer
        # crfs (about the same bytes); each with or without its network. The least D + lambda R
        # wins, lambda the slope of the segment's own full-size curve at the crf, measured
        # across it (crf - 4 to crf + 4): the curve is convex, so a chord to one side only
        # would tilt the choice (the coarser side, towards fewer bytes: on bikes at crf 58 it
        # chose half size 0.13 dB below the full-size curve).
        crf, coarser = int(header.params["crf"]), None
        if 1 not in scales:  # one reduced size asked for
            best = coded(scales[0], crf)
        else:
            best = coded(1, crf)
            if len(scales) > 1:
                coarser = coded(1, step(crf, +1))
                lam = chord(coded(1, step(crf, -1)), coarser)
                if lam < float("inf"):
                    ways = [best]
                    for scale in scales[1:]:
                        finer = sorted({max(crf - k, 0) for k in LR_CRF_OFFSETS[scale][header.params["base"]]})
                        ways += [coded(scale, c) for c in finer]
                    best = min(ways, key=lambda c: c.cost(lam))

        # then an update of the chosen network's biases, sent only where it pays for its bytes
        delta = None
        share = len(rgb) / max(header.frame_count, 1)
        seconds = run["time_budget"] * share if run["time_budget"] else None
        if run["overfit"] == "auto" and (seconds or run["steps"]):
            model = networks[best.scale]
            source = self._source_planes(BASES[header.params["base"]], best, rgb, colour)
            update = tune_biases(
                model, best.decoded, source, best.crf, steps=run["steps"], seconds=seconds, seed=run["seed"]
            )
            update_bytes = encode_symbols(update.numpy())
            d_tuned = error(IntegerEnhancer(model, update)(best.decoded, best.crf))
            if d_tuned < best.distortion:
                # lambda towards fewer bytes: it overstates what bits buy, so an update must
                # more than pay for itself (never worse than the segment without one)
                if coarser is None or best.scale != 1:
                    coarser = coded(best.scale, step(best.crf, +1))
                lam = chord(best, coarser)
                if delta_pays(best.distortion, d_tuned, lam, len(update_bytes)):
                    delta = update_bytes
        network = delta is not None or best.network
        record = segment_record(len(rgb), best.crf, network, delta is not None, best.scale)
        return pack_chunks([record, pack_chunks([pl for _, pl in best.sections]), delta or b""])

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
    def _source_planes(base: ClassicalCodec, way: "Candidate", rgb: list[np.ndarray], colour: Colour):
        """The planes the network's output is trained towards: the source, padded as the
        base stream's coded size (times its scale) needs, converted with the picture's colour."""
        cw, ch = base._geometry(way.inner)
        return source_planes([pad_to(f, way.scale * cw, way.scale * ch) for f in rgb], colour)

    # -- decoder -------------------------------------------------------------------------

    def decode(self, sections: Iterable[Section], header: StreamHeader) -> Iterator[np.ndarray]:
        if header.params.get("network") != "enhance":
            p, inner, lr_header = stdo_espcn.layout(header)
            for _, payload in sections:
                yield from stdo_espcn.decode_segment(payload, header, p, inner, lr_header)
            return
        self._layout(header)
        networks = self._networks(header)
        for _, payload in sections:
            yield from self._decode_segment(payload, header, networks)

    def base_layer(
        self, sections: Iterable[Section], header: StreamHeader
    ) -> tuple[str, Iterator[tuple[np.ndarray, int, bool]]] | None:
        if header.params.get("network") != "enhance":
            return None
        base = self._layout(header)[0]
        colour = picture_colour(header)

        def frames() -> Iterator[tuple[np.ndarray, int, bool]]:
            from ncodec.models.nets.enhance import upsample

            for _, payload in sections:
                chunks = unpack_chunks(payload)
                if len(chunks) != 3:
                    raise BitstreamError("corrupted STDO segment (counts out of range)")
                packets = unpack_chunks(chunks[1])
                record = parse_segment_record(chunks[0])
                scale = record.scale
                inner = self._layout(header, record.frames, scale)[1]
                size = sum(len(p) for p in packets)
                coded = ((PACKET_SECTION, c) for c in packets)
                if scale == 1:
                    pictures = base.decode(coded, inner)
                else:  # a reduced-size layer is shown upscaled by the fixed bilinear filter
                    pictures = (
                        next(rgb_frames(upsample(packed_planes([p]), scale), colour, header.width, header.height))
                        for p in base.decode_planes(coded, inner)
                    )
                for rgb in pictures:
                    yield rgb, size, scale > 1
                    size = 0

        return base.name, frames()

    def _decode_segment(self, payload: bytes, header: StreamHeader, networks: dict) -> Iterator[np.ndarray]:
        import torch

        from ncodec.models.nets.enhance import IntegerEnhancer, bias_count, upsample

        chunks = unpack_chunks(payload)
        if len(chunks) != 3:
            raise BitstreamError("corrupted STDO segment (counts out of range)")
        record = parse_segment_record(chunks[0])
        n, crf, scale = record.frames, record.crf, record.scale
        if scale not in self._scales(header):
            raise BitstreamError(f"corrupted STDO segment (scale {scale}, which the file's header does not allow)")
        model = networks[scale]
        update = None
        if record.delta:
            values = decode_symbols(chunks[2], bias_count(model.cfg))
            if np.abs(values).max() > MAX_DELTA:
                raise BitstreamError("corrupted STDO bias update")
            update = torch.from_numpy(values.astype(np.int64))
        elif chunks[2]:
            raise BitstreamError("corrupted STDO segment (an update it does not declare)")
        if record.delta and not record.network:
            raise BitstreamError("corrupted STDO segment (an update without the network)")
        net = IntegerEnhancer(model, update) if record.network else None
        base, inner = self._layout(header, n, scale)
        colour = picture_colour(header)
        done, pending = 0, []

        def restore(batch):
            planes = packed_planes(batch)
            yield from rgb_frames(
                net(planes, crf) if net else upsample(planes, scale), colour, header.width, header.height
            )

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


@dataclass
class Candidate:
    """One way to send a segment: its base stream at ``scale`` and ``crf``, the planes it
    decodes to, and the error (squared, summed over the segment's pictures) without and
    with the network."""

    scale: int
    crf: int
    inner: StreamHeader
    sections: list[Section]
    decoded: "torch.Tensor"  # noqa: F821
    d_plain: float
    d_network: float

    @property
    def nbytes(self) -> int:
        return sum(len(p) for _, p in self.sections)

    @property
    def network(self) -> bool:
        return self.d_network < self.d_plain

    @property
    def distortion(self) -> float:
        return min(self.d_plain, self.d_network)

    def cost(self, lam: float) -> float:
        """D + lambda R, R in bits (one byte more for the segment's record is the same for all)."""
        return self.distortion + lam * 8 * self.nbytes


class SegmentRecord(NamedTuple):
    frames: int
    crf: int
    network: bool
    delta: bool
    scale: int


def segment_record(frames: int, crf: int, network: bool, delta: bool, scale: int = 1) -> bytes:
    """A segment's record (since release 1.1.0): a flags byte (bit 0: the network runs,
    bit 1: a bias update follows, bits 2-3: the base stream's downscaling factor minus 1,
    since 1.3.0), the crf byte, the frame count as a varint."""
    return bytes([int(network) | int(delta) << 1 | (scale - 1) << 2, crf]) + encode_varint(frames)


def parse_segment_record(chunk: bytes) -> SegmentRecord:
    """A segment record, binary or the JSON of files before release 1.1.0 (it starts with
    "{", which no flags byte equals), checked."""
    scale = 1
    if chunk[:1] == b"{":
        try:
            meta = parse_json(chunk)
            n, crf, delta = int(meta["frames"]), int(meta["crf"]), bool(meta["delta"])
            network = bool(meta.get("network", True))  # records before "network" existed always ran it
        except (ValueError, KeyError, TypeError) as e:
            raise BitstreamError(f"corrupted STDO segment header ({e})") from None
    else:
        if len(chunk) < 3 or chunk[0] > 15:
            raise BitstreamError("corrupted STDO segment header")
        n, end = decode_varint(chunk, 2)
        if end != len(chunk):
            raise BitstreamError("corrupted STDO segment header (trailing bytes)")
        crf, network, delta = chunk[1], bool(chunk[0] & 1), bool(chunk[0] & 2)
        scale = (chunk[0] >> 2) + 1
    if not (1 <= n <= stdo_espcn.MAX_SEGMENT_FRAMES and 0 <= crf <= 63):
        raise BitstreamError("corrupted STDO segment (counts out of range)")
    return SegmentRecord(n, crf, network, delta, scale)


def picture_colour(header: StreamHeader) -> Colour:
    """The colour the decoder's pictures are converted with: the file's, matrix explicit."""
    return output_colour(header.colour, header.height)


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
