"""MLICv2-style image model and its rANS bitstream: shapes for the paper's and the small
configuration, variable-rate gains, bit-exact decode, corrupted streams rejected."""

from __future__ import annotations

import pytest
import torch

from ncodec.codec import image
from ncodec.codec.errors import BitstreamError
from ncodec.models.mlicv2 import PAPER, SMALL, MLICConfig, MLICv2, count_parameters

TINY = MLICConfig(N=16, M=32, slices=4, depth=1, hyper=16, attn=8)


def test_paper_configuration_builds_and_runs():
    model = MLICv2(PAPER)
    assert (PAPER.N, PAPER.M, PAPER.slices) == (192, 320, 10)
    assert len(model.slices) == 10 and count_parameters(model) > count_parameters(MLICv2(SMALL))
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64), 1.0)
    assert out["x_hat"].shape == (1, 3, 64, 64)
    assert out["likelihoods"]["y"].shape == (1, 320, 4, 4) and out["likelihoods"]["z"].shape == (1, 192, 1, 1)


def test_training_pass_has_gradients_everywhere():
    torch.manual_seed(0)
    model = MLICv2(TINY)
    out = model(torch.rand(2, 3, 64, 128), torch.tensor([0, 3]))
    bpp = sum(-lik.log2().sum() for lik in out["likelihoods"].values()) / (2 * 64 * 128)
    loss = bpp + 100 * torch.nn.functional.mse_loss(out["x_hat"], torch.zeros(2, 3, 64, 128))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None and "quantiles" not in n]
    assert not missing, missing


@pytest.fixture(scope="module")
def coded():
    torch.manual_seed(0)
    model = MLICv2(TINY).eval()
    image.prepare(model)
    x = image.pad_to_multiple(torch.rand(1, 3, 70, 100), model.PAD)
    assert x.shape[-2:] == (128, 128)
    result, recon = image.compress(model, x, 2.0)
    return model, result, recon


def test_decode_equals_the_encoders_reconstruction(coded):
    model, result, recon = coded
    assert len(result.y) > 0 and result.z_size == (2, 2)
    assert torch.equal(image.decompress(model, result, 2.0), recon)


def test_damaged_stream_is_detected(coded):
    model, result, _ = coded
    bad = image.CodedImage(result.z, result.y[:-3] + b"xyz", result.z_size, result.y_crc)
    with pytest.raises(BitstreamError):
        image.decompress(model, bad, 2.0)
