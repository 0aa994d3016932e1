"""Network weights in a bitstream: symmetric per-channel quantisation (zero stays exactly
zero, so pruned weights cost almost nothing) and rANS coding of all symbols under one
fitted histogram. Layout of a coded state (a chunk list, see container.pack_chunks)::

    JSON  [[name, shape, bits], ...]     (tensor order and shapes)
    f32   one scale per output channel of every tensor, in order
    rANS  all integer symbols, in order (codec/entropy.py)
"""

from __future__ import annotations

import json

import numpy as np

from .container import pack_chunks, parse_json, unpack_chunks
from .entropy import decode_symbols, encode_symbols
from .errors import BitstreamError

MAX_TENSOR_ELEMENTS = 64 * 1024 * 1024


def quantize(t, bits: int, step: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric quantisation of a torch tensor: (int symbols, float32
    scale per channel). With ``step``, every channel uses that fixed step instead of its
    own range (for weight deltas, whose precision must not depend on their size)."""
    import torch

    from ncodec.models.zoo import quantize_rows

    if step is None:
        q, scale = quantize_rows(t, bits)
        return q.numpy().ravel(), scale.numpy()
    w = t.detach().double().reshape(t.shape[0], -1) if t.ndim > 1 else t.detach().double().reshape(1, -1)
    scale = torch.full((w.shape[0],), float(np.float32(step)))
    q = torch.round(w / scale.double()[:, None])
    if q.abs().max() > 2 ** (bits - 1) - 1:
        raise ValueError(f"values exceed {bits}-bit symbols at step {step}")
    return q.long().numpy().ravel(), scale.float().numpy()


def dequantize(q: np.ndarray, scale: np.ndarray, shape: tuple[int, ...]):
    import torch

    from ncodec.models.zoo import dequantize_rows

    return dequantize_rows(torch.from_numpy(q.astype(np.int64).reshape(shape)), torch.from_numpy(scale))


def encode_state(state: dict, bits: int = 8, step: float | None = None) -> bytes:
    """Code a state dict (see :func:`quantize` for ``bits`` and ``step``); ValueError when
    the symbols do not fit ``bits`` or the entropy coder's alphabet."""
    meta, scales, symbols = [], [], []
    for name, t in state.items():
        q, s = quantize(t, bits, step)
        meta.append([name, list(t.shape), bits])
        scales.append(s.astype("<f4"))
        symbols.append(q)
    return pack_chunks(
        [
            json.dumps(meta, separators=(",", ":")).encode(),
            np.concatenate(scales).tobytes(),
            encode_symbols(np.concatenate(symbols)),
        ]
    )


def decode_state(payload: bytes, expected: dict[str, tuple[int, ...]]) -> dict:
    """Decode a state whose tensor names and shapes must equal ``expected`` (from the
    architecture the header describes); anything else is a BitstreamError."""
    chunks = unpack_chunks(payload)
    if len(chunks) != 3:
        raise BitstreamError("corrupted weights (expected 3 chunks)")
    try:
        meta = parse_json(chunks[0])
        entries = [(str(n), tuple(int(d) for d in shape), int(bits)) for n, shape, bits in meta]
    except (ValueError, TypeError) as e:
        raise BitstreamError(f"corrupted weights metadata ({e})") from None
    if [(n, s) for n, s, _ in entries] != list(expected.items()):
        raise BitstreamError("weights do not match the architecture in the header")
    rows = [s[0] if len(s) > 1 else 1 for _, s, _ in entries]
    counts = [int(np.prod(s)) for _, s, _ in entries]
    if sum(counts) > MAX_TENSOR_ELEMENTS or len(chunks[1]) != 4 * sum(rows):
        raise BitstreamError("corrupted weights (sizes do not add up)")
    if any(not 2 <= b <= 16 for _, _, b in entries):
        raise BitstreamError("corrupted weights (bit depth)")
    scales = np.frombuffer(chunks[1], "<f4").astype(np.float32)
    if not np.all(np.isfinite(scales)):
        raise BitstreamError("corrupted weights (non-finite scale)")
    symbols = decode_symbols(chunks[2], sum(counts))
    state, pos, spos = {}, 0, 0
    for (name, shape, _), n, r in zip(entries, counts, rows):
        state[name] = dequantize(symbols[pos : pos + n], scales[spos : spos + r], shape)
        pos, spos = pos + n, spos + r
    return state


# -- shipped weights that a bitstream names ------------------------------------------------


def writer() -> dict:
    """The header entry that names the ncodec release writing a file: when a later file
    names weights an older installation lacks, its error can say which release to get."""
    from ncodec import __version__

    return {"release": __version__}


def named_weights(name: str, fingerprint, params: dict):
    """The file of the shipped weights ``name`` with ``fingerprint``, as a bitstream whose
    header ``params`` names them; BitstreamError saying which weights and which release
    when this installation does not ship them."""
    from ncodec import __version__
    from ncodec.models.zoo import UnknownWeights, weights_path

    try:
        return weights_path(name, str(fingerprint))
    except UnknownWeights:
        release = params.get("release")
        by = f"ncodec {release}" if isinstance(release, str) else "an ncodec release before 1.0.0"
        get = f"ncodec {release} or later" if isinstance(release, str) else "the release that coded it"
        raise BitstreamError(
            f"this file was coded by {by} with the {name} weights {str(fingerprint)[:16]}, which ncodec "
            f"{__version__} does not ship: decode it with {get}"
        ) from None
