"""The HNeRV video codec: encoding is fitting a network to the video.

The clip is cut into segments of at most ``segment_frames`` frames; each segment gets
its own model, fitted, pruned (global magnitude) and fine-tuned, then its decoder weights
are quantised per channel (8 bits) and its per-frame embeddings uniformly (8 bits), and
both are rANS-coded under fitted histograms (codec/weights.py, codec/entropy.py). One
"HSEG" section per segment::

    JSON  {"frames": n, "emb_min": a, "emb_step": b, "emb_bits": 8}
    coded decoder state (codec/weights.py)
    coded embedding symbols (codec/entropy.py), n x 16 x h x w

Segments are independent (bounded memory, any segment decodes alone) and the decoder
rebuilds the network from the architecture in the header. The encoder scores exactly
what :func:`decode_segment` produces, so the decoded file equals the encoder's own final
reconstruction.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Iterable, Iterator

import numpy as np

from .container import StreamHeader, pack_chunks, parse_json, unpack_chunks
from .entropy import decode_symbols, encode_symbols
from .errors import BitstreamError
from .options import SEED, TIME_BUDGET, Option
from .registry import Section, SegmentedCodec, register
from .weights import decode_state, dequantize, encode_state, quantize

# torch and the models load on first use, so that registering this codec stays cheap

SEGMENT_TAG = "HSEG"
MAX_SEGMENT_FRAMES = 1000
MAX_DECODER_PARAMETERS = 50_000_000  # --size's upper limit
MAX_ACTIVATION_ELEMENTS = 1 << 30  # 4 GiB of fp32 for one frame's largest feature map
# one frame per decoder call: results must not depend on which frames share a batch
# (oneDNN picks kernels by batch size), so random access equals sequential decoding
DECODE_BATCH = 1
# the decoder's arithmetic, fixed by the format: float64, whose sums differ between kernel
# paths (ISA, threads) by ~1e-13 of a value, so a rounded pixel moves only if it lies that
# close to a half-integer; float32 moved pixels under oneDNN's AVX2 path (tests/test_golden.py)
DECODE_DTYPE = "float64"


def _quantize_embeddings(emb, bits: int) -> tuple[np.ndarray, float, float]:
    import torch

    lo, hi = float(emb.min()), float(emb.max())
    step = (hi - lo) / (2**bits - 1) if hi > lo else 1.0
    q = torch.round((emb.double() - lo) / step).clamp_(0, 2**bits - 1).long()
    return q.numpy().ravel(), lo, step


def _dequantize_embeddings(q: np.ndarray, lo: float, step: float, shape: tuple[int, ...]):
    import torch

    return (
        torch.from_numpy((lo + q.astype(np.float64) * step).astype(np.float32))
        .reshape(shape)
        .to(getattr(torch, DECODE_DTYPE))
    )


def _frames_to_uint8(x, height: int, width: int) -> list[np.ndarray]:
    import torch

    x = (x[:, :, :height, :width].clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return list(x.permute(0, 2, 3, 1).contiguous().numpy())


def _segment_meta(chunks: list[bytes]) -> tuple[int, float, float, int]:
    if len(chunks) != 3:
        raise BitstreamError("corrupted HNeRV segment (expected 3 chunks)")
    try:
        meta = parse_json(chunks[0])
        n, lo, step, bits = int(meta["frames"]), float(meta["emb_min"]), float(meta["emb_step"]), int(meta["emb_bits"])
    except (ValueError, KeyError, TypeError) as e:
        raise BitstreamError(f"corrupted HNeRV segment header ({e})") from None
    if not (1 <= n <= MAX_SEGMENT_FRAMES and 2 <= bits <= 16 and math.isfinite(lo) and math.isfinite(step)):
        raise BitstreamError("corrupted HNeRV segment header (out of range)")
    return n, lo, step, bits


def segment_frame_count(payload: bytes) -> int:
    """Frames in one HSEG section, read from its small JSON chunk only."""
    return _segment_meta(unpack_chunks(payload))[0]


def decode_segment(payload: bytes, cfg, height: int, width: int, only: int | None = None) -> Iterator[np.ndarray]:
    """Frames of one HSEG section (uint8 RGB, cropped to ``height`` x ``width``); with
    ``only``, just that frame of the segment (its embedding alone goes through the decoder)."""
    import torch

    from ncodec.models.nets.hnerv import Decoder

    chunks = unpack_chunks(payload)
    n, lo, step, _ = _segment_meta(chunks)
    decoder = Decoder(cfg).to(getattr(torch, DECODE_DTYPE))
    expected = {k: tuple(v.shape) for k, v in decoder.state_dict().items()}
    decoder.load_state_dict(decode_state(chunks[1], expected))
    decoder.eval()
    eh, ew = cfg.embed_size
    if n * cfg.embed_channels * eh * ew > MAX_ACTIVATION_ELEMENTS:
        raise BitstreamError("HNeRV embeddings are larger than the format allows")
    q = decode_symbols(chunks[2], n * cfg.embed_channels * eh * ew)
    emb = _dequantize_embeddings(q, lo, step, (n, cfg.embed_channels, eh, ew))
    if only is not None:
        if not 0 <= only < n:
            raise BitstreamError(f"segment has {n} frames, no frame {only}")
        emb = emb[only : only + 1]
    with torch.inference_mode():
        for batch in emb.split(DECODE_BATCH):
            yield from _frames_to_uint8(decoder(batch), height, width)


def _prune_masks(model, fraction: float) -> dict:
    """Global magnitude pruning of the decoder's convolution weights."""
    import torch

    weights = {f"decoder.{k}": v for k, v in model.decoder.named_parameters() if k.endswith("weight")}
    if fraction <= 0:
        return {}
    magnitudes = torch.cat([w.detach().abs().ravel() for w in weights.values()])
    threshold = (
        torch.quantile(magnitudes, fraction)
        if magnitudes.numel() < 16_000_000
        else magnitudes.kthvalue(max(1, int(fraction * magnitudes.numel()))).values
    )
    masks = {name: (w.detach().abs() > threshold).float() for name, w in weights.items()}
    with torch.no_grad():
        named = dict(model.named_parameters())
        for name, mask in masks.items():
            named[name].mul_(mask)
    return masks


class HNeRVCodec(SegmentedCodec):
    name, tag, segment_tag = "hnerv", "hnrv", SEGMENT_TAG
    description = "HNeRV neural representation (fitted per segment; slow to encode, fast to decode)"
    uses_torch = True
    # The model's size follows the clip: parameters per pixel and frame of a segment. An
    # 8-bit parameter codes to about a byte, so "medium" spends about 0.05 bits per pixel
    # on the decoder, about what the classical codecs spend on a whole medium-quality clip.
    quality_levels = {
        "low": {"density": 0.002, "epochs": 60},
        "medium": {"density": 0.006, "epochs": 150},
        "high": {"density": 0.015, "epochs": 300},
        "best": {"density": 0.04, "epochs": 600},
    }

    options = (
        Option(
            "size",
            int,
            None,
            "decoder parameters (default: --density x the segment's pixels x its frames)",
            low=10_000,
            high=MAX_DECODER_PARAMETERS,
        ),
        Option(
            "density",
            float,
            0.006,
            "decoder parameters per pixel and frame of a segment, when no --size is given",
            low=1e-5,
            high=1.0,
            encoder_only=True,
        ),
        Option("segment_frames", int, 120, "frames per independently fitted segment", low=1, high=MAX_SEGMENT_FRAMES),
        Option("loss", str, "l2", "fitting loss", choices=("l2", "l1+ms-ssim")),
        Option(
            "epochs",
            int,
            150,
            "fitting epochs per segment when no time budget is given",
            low=1,
            high=100_000,
            encoder_only=True,
        ),
        Option(
            "prune",
            float,
            0.1,
            "share of the decoder's weights pruned before the final fine-tune",
            low=0.0,
            high=0.95,
            encoder_only=True,
        ),
        TIME_BUDGET,
        SEED,
    )

    def params(self, width: int, height: int, fps, options: dict) -> dict:
        from ncodec.models.nets.hnerv import make_config

        s = self.settings(options)
        size = s["size"] or round(s["density"] * width * height * s["segment_frames"])
        size = min(max(size, 10_000), MAX_DECODER_PARAMETERS)
        cfg = make_config(height, width, size)
        return {
            "config": cfg.to_json(),
            "size": size,
            "segment_frames": s["segment_frames"],
            "loss": s["loss"],
            "weight_bits": 8,
            "emb_bits": 8,
        }

    def _config(self, header: StreamHeader):
        from ncodec.models.nets.hnerv import HNeRVConfig

        try:
            cfg = HNeRVConfig.from_json(header.params["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise BitstreamError(f"HNeRV parameters are corrupted ({e})") from None
        if (cfg.height, cfg.width) != (
            math.ceil(header.height / math.prod(cfg.strides)) * math.prod(cfg.strides),
            math.ceil(header.width / math.prod(cfg.strides)) * math.prod(cfg.strides),
        ):
            raise BitstreamError("HNeRV architecture does not match the picture size")
        if (
            not 1 <= len(cfg.strides) <= 8
            or len(cfg.widths) != len(cfg.strides) + 1
            or len(cfg.kernels) != len(cfg.strides)
        ):
            raise BitstreamError("HNeRV architecture is inconsistent")
        if min(cfg.widths) < 1 or min(cfg.kernels) < 1 or not 1 <= cfg.embed_channels <= 64:
            raise BitstreamError("HNeRV architecture is corrupted")
        if max(cfg.widths) > 4096 or max(cfg.kernels) > 9 or min(cfg.strides) < 1 or max(cfg.strides) > 8:
            raise BitstreamError("HNeRV architecture exceeds the limits")
        # what decoding would allocate, checked before it does: the weights, and the largest
        # activation (a block's conv output, before its pixel shuffle) of one frame
        from ncodec.models.nets.hnerv import decoder_parameters

        if decoder_parameters(cfg.strides, cfg.widths, cfg.kernels, cfg.embed_channels) > MAX_DECODER_PARAMETERS:
            raise BitstreamError("HNeRV decoder is larger than the format allows")
        side = math.prod(cfg.strides)
        h, w = cfg.height // side, cfg.width // side
        for s, cout in zip(cfg.strides, cfg.widths[1:]):
            h, w = h * s, w * s
            if cout * h * w > MAX_ACTIVATION_ELEMENTS:
                raise BitstreamError("HNeRV decoder would need more memory than the format allows")
        return cfg

    def encode_segment(self, rgb: list[np.ndarray], header: StreamHeader, runtime: dict) -> bytes:
        """Fit one segment: fit, prune, fine-tune, quantise, entropy-code."""
        import torch
        from tqdm import tqdm

        from ncodec.models.nets.hnerv import HNeRV, pad_frames
        from ncodec.models.train.hnerv import fit

        p, cfg = header.params, self._config(header)
        run = runtime.get("settings") or self.encoder_settings({})
        device = torch.device(runtime.get("device", "cpu"))
        torch.manual_seed(run["seed"])
        frames = pad_frames(torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2), cfg).to(device)
        model = HNeRV(cfg).to(device)
        share = len(rgb) / max(header.frame_count, 1)
        budget = run["time_budget"] * share if run["time_budget"] else None
        bar = tqdm(
            total=100,
            desc=f"fit {len(rgb)} frames",
            unit="%",
            file=sys.stderr,
            leave=False,
            disable=not runtime.get("progress"),
            bar_format="{l_bar}{bar}| {postfix} [{elapsed}<{remaining}]",
        )

        def report(entry: dict, progress: float) -> None:
            bar.n = min(99, int(progress * 100))
            bar.set_postfix(epoch=entry["epoch"], psnr=f"{entry['psnr']:.2f}")

        loss = p.get("loss", "l2")
        fit(
            model,
            frames,
            epochs=run["epochs"],
            time_budget=budget * 0.9 if budget else None,
            seed=run["seed"],
            loss=loss,
            on_epoch=report,
        )
        masks = _prune_masks(model, run["prune"])
        if masks:  # a short fine-tune lets the remaining weights compensate
            fit(
                model,
                frames,
                epochs=max(1, run["epochs"] // 10),
                time_budget=budget * 0.1 if budget else None,
                lr=5e-4,
                seed=run["seed"] + 1,
                loss=loss,
                masks=masks,
            )
        bar.close()
        model.eval()
        with torch.inference_mode():
            emb = torch.cat([model.encoder(b.float() / 255) for b in frames.split(DECODE_BATCH)]).cpu()
        q, lo, step = _quantize_embeddings(emb, p["emb_bits"])
        state = {k: v.cpu() for k, v in model.decoder.state_dict().items()}
        if (reconstruction := runtime.get("reconstruction")) is not None:
            # what the encoder means to send, computed from its own model (not the payload)
            sent = model.decoder.cpu().to(getattr(torch, DECODE_DTYPE))
            sent.load_state_dict({k: dequantize(*quantize(v, p["weight_bits"]), v.shape) for k, v in state.items()})
            with torch.inference_mode():
                for e in _dequantize_embeddings(q, lo, step, emb.shape).split(DECODE_BATCH):
                    reconstruction.extend(_frames_to_uint8(sent(e), header.height, header.width))
        payload = pack_chunks(
            [
                json.dumps({"frames": len(rgb), "emb_min": lo, "emb_step": step, "emb_bits": p["emb_bits"]}).encode(),
                encode_state(state, p["weight_bits"]),
                encode_symbols(q),
            ]
        )
        return payload

    def decode(self, sections: Iterable[Section], header: StreamHeader) -> Iterator[np.ndarray]:
        cfg = self._config(header)
        for _, payload in sections:
            yield from decode_segment(payload, cfg, header.height, header.width)

    def frame_at(self, sections: Iterable[Section], header: StreamHeader, index: int) -> np.ndarray:
        """Random access: skip whole segments by their frame counts, then run one embedding."""
        cfg = self._config(header)
        first = 0
        for _, payload in sections:
            n = segment_frame_count(payload)
            if index < first + n:
                return next(decode_segment(payload, cfg, header.height, header.width, only=index - first))
            first += n
        raise BitstreamError(f"bitstream ends before frame {index}")


HNERV = register(HNeRVCodec())
