"""rANS entropy coding under a fitted histogram: exact round trips, near-entropy sizes,
deterministic tables, and hostile payloads that cannot crash the decoder."""

from __future__ import annotations

import numpy as np
import pytest

from ncodec.codec.entropy import (
    TOTAL,
    decode_blocks,
    decode_symbols,
    encode_blocks,
    encode_symbols,
    quantized_frequencies,
)
from ncodec.codec.errors import BitstreamError


@pytest.mark.parametrize(
    "values",
    [
        np.round(np.random.default_rng(0).normal(0, 6, 20000)).astype(int),
        np.full(1000, -7),
        np.array([0, 255, 255, 3]),
        np.random.default_rng(1).integers(-128, 128, (30, 40)),
    ],
)
def test_round_trip(values):
    data = encode_symbols(values)
    assert np.array_equal(decode_symbols(data, values.size), values.ravel())


def test_size_close_to_entropy():
    values = np.round(np.random.default_rng(0).normal(0, 4, 50000)).astype(int)
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    entropy_bytes = -(p * np.log2(p)).sum() * values.size / 8
    assert len(encode_symbols(values)) < entropy_bytes * 1.02 + 100


def test_frequencies_sum_and_keep_rare_symbols():
    freq = quantized_frequencies(np.array([10**9, 1, 0, 5]))
    assert freq.sum() == TOTAL and freq[1] >= 1 and freq[2] == 0 and freq[3] >= 1


def test_blocks():
    arrays = [np.arange(10), np.array([5, 5, 5]), np.array([-1, 1])]
    assert [a.tolist() for a in decode_blocks(encode_blocks(arrays), [10, 3, 2])] == [a.tolist() for a in arrays]
    with pytest.raises(BitstreamError):
        decode_blocks(encode_blocks(arrays), [10, 3])


def test_hostile_payloads_never_crash():
    rng = np.random.default_rng(2)
    good = encode_symbols(rng.integers(0, 16, 500))
    candidates = [good[: len(good) // 2], good[:5], good + b"\xff" * 50]
    head = good[: 2 + 16 * 2]  # min, n, frequencies (small varints)
    candidates += [head + bytes([0xFF]) * 400, head + rng.integers(0, 256, 300, dtype=np.uint8).tobytes()]
    for data in candidates:
        try:
            out = decode_symbols(data, 500)
        except BitstreamError:
            continue
        assert out.shape == (500,) and out.min() >= 0 and out.max() < 16  # garbage in, bounded garbage out
    with pytest.raises(BitstreamError):
        decode_symbols(b"\x00\x05\x01\x01", 10)  # frequencies that do not sum to 2^16
