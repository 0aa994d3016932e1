"""Entropy coding of integer symbols with compressai's rANS coder under a fitted
(histogram) probability model.

Format of one coded block (all varints are unsigned LEB128, ``zz`` = zigzag)::

    zz(min symbol)  n (alphabet size)  n x freq (16-bit precision, sum 65536)  rANS bytes

Determinism: the decoder rebuilds the CDF from the stored integer frequencies with
integer arithmetic only, so encoder and decoder use bit-identical tables on any machine.

Safety: compressai's decoder reads past its buffer and loops without bound if a crafted
stream reaches the escape ("bypass") symbol. Here the escape interval has zero width, so
it can never be decoded, and the payload is zero-padded to the most bytes the decoder can
consume (8 + 4 per symbol) before it is handed over.
"""

from __future__ import annotations

import warnings

import numpy as np

from .container import decode_varint, encode_varint, pack_chunks, unpack_chunks
from .errors import BitstreamError

PRECISION = 16
TOTAL = 1 << PRECISION
MAX_ALPHABET = 4096


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(z: int) -> int:
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


def quantized_frequencies(counts: np.ndarray) -> np.ndarray:
    """Integer frequencies summing to 2^16, >= 1 wherever a count is > 0 (integer math only).

    No symbol may take all 2^16 (compressai's coder keeps frequencies in 16 bits), so
    ``counts`` needs at least two entries; a lone symbol lends 1 to its neighbour."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    freq = (counts * TOTAL) // total
    freq[(counts > 0) & (freq == 0)] = 1
    diff = TOTAL - int(freq.sum())
    order = np.argsort(-freq, kind="stable")  # give or take from the most frequent symbols
    i = 0
    while diff != 0:
        j = order[i % len(order)]
        if diff > 0:
            freq[j] += diff
            diff = 0
        elif freq[j] > 1:
            step = min(-diff, int(freq[j]) - 1)
            freq[j] -= step
            diff += step
        i += 1
    if freq.max() == TOTAL:
        top = int(freq.argmax())
        freq[top] -= 1
        freq[1 if top == 0 else 0] += 1
    return freq


def _cdf(freq: np.ndarray) -> list[int]:
    # symbols 0..n-1, then the escape symbol with a zero-width interval (never decodable)
    cdf = np.concatenate([[0], np.cumsum(freq), [TOTAL]])
    return [int(v) for v in cdf]


def _ans():
    """compressai's rANS coder; importing compressai warns about torch.jit, which users need not see."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from compressai import ans
    return ans


def encode_symbols(values: np.ndarray) -> bytes:
    """Entropy-code an integer array (any shape; the decoder is told the count)."""
    RansEncoder = _ans().RansEncoder

    flat = np.asarray(values, dtype=np.int64).ravel()
    if flat.size == 0:
        return b""
    lo, hi = int(flat.min()), int(flat.max())
    n = max(hi - lo + 1, 2)  # see quantized_frequencies
    if n > MAX_ALPHABET:
        raise ValueError(f"alphabet of {n} symbols exceeds {MAX_ALPHABET}")
    freq = quantized_frequencies(np.bincount(flat - lo, minlength=n))
    coded = RansEncoder().encode_with_indexes(
        (flat - lo).astype(np.int32).tolist(), [0] * flat.size, [_cdf(freq)], [n + 2], [0]
    )
    head = encode_varint(_zigzag(lo)) + encode_varint(n) + b"".join(encode_varint(int(f)) for f in freq)
    return head + coded


def decode_symbols(data: bytes, count: int) -> np.ndarray:
    """Inverse of :func:`encode_symbols`; ``count`` comes from the caller's own header."""
    RansDecoder = _ans().RansDecoder

    if count == 0:
        return np.zeros(0, np.int64)
    z, pos = decode_varint(data, 0)
    n, pos = decode_varint(data, pos)
    if not 1 <= n <= MAX_ALPHABET:
        raise BitstreamError(f"corrupted entropy-coded block (alphabet of {n} symbols)")
    freq = np.zeros(n, np.int64)
    for i in range(n):
        freq[i], pos = decode_varint(data, pos)
    if int(freq.sum()) != TOTAL or freq.max() >= TOTAL:
        raise BitstreamError("corrupted entropy-coded block (frequencies do not sum to 2^16)")
    payload = data[pos:]
    payload += bytes(max(0, 8 + 4 * count - len(payload)))  # the decoder never reads past this
    symbols = RansDecoder().decode_with_indexes(payload, [0] * count, [_cdf(freq)], [n + 2], [0])
    return np.asarray(symbols, np.int64) + _unzigzag(z)


def encode_blocks(arrays: list[np.ndarray]) -> bytes:
    """Several arrays, each coded with its own histogram, in one payload."""
    return pack_chunks([encode_symbols(a) for a in arrays])


def decode_blocks(payload: bytes, counts: list[int]) -> list[np.ndarray]:
    blocks = unpack_chunks(payload)
    if len(blocks) != len(counts):
        raise BitstreamError(f"expected {len(counts)} coded blocks, found {len(blocks)}")
    return [decode_symbols(b, c) for b, c in zip(blocks, counts)]
