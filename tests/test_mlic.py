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


def test_tiny_training_run_lowers_the_loss_and_resumes(tmp_path):
    import numpy as np

    from ncodec.models import train_mlic as recipe

    rng = np.random.default_rng(0)
    photo = (np.kron(rng.integers(0, 255, (24, 24, 3)), np.ones((8, 8, 1)))).astype(np.uint8)  # blocky 192 px
    x = torch.from_numpy(photo[:64, :64]).permute(2, 0, 1)[None].float() / 255
    level = torch.tensor([TINY.levels - 1])
    torch.manual_seed(0)  # train() seeds the same way before building its model
    with torch.no_grad():
        before, _ = recipe.rate_distortion(MLICv2(TINY).eval(), x, level)
    cfg = recipe.MLICTrainConfig(minutes=0.25, crop=64, batch=2, val_every=5.0)
    model, state = recipe.train(cfg, TINY, [photo], [photo[:64, :64]], tmp_path / "ck.safetensors")
    with torch.no_grad():
        after, _ = recipe.rate_distortion(model.eval(), x, level)
    assert state["step"] > 5 and float(after) < float(before)  # per-batch losses are too noisy to compare
    last = state["history"][-1]
    assert set(last["val"]) == {"0", "1", "2", "3"} and all(v["bpp"] > 0 for v in last["val"].values())
    cfg2 = recipe.MLICTrainConfig(minutes=0.3, crop=64, batch=2, val_every=5.0)
    _, state2 = recipe.train(cfg2, TINY, [photo], [photo[:64, :64]], tmp_path / "ck.safetensors", resume=True)
    assert state2["step"] > state["step"]


def test_cli_train_mlic_writes_weights_and_card(tmp_path):
    import json
    import shutil

    from conftest import SAMPLES
    from test_cli import run

    data = tmp_path / "photos"
    data.mkdir()
    shutil.copy(SAMPLES / "coffee.png", data)
    out = tmp_path / "mlic.safetensors"
    proc = run("train", "mlic", "--data", data, "--out", out, "--minutes", "0.1", "--crop", "64", "--batch", "2")
    assert proc.returncode == 0, proc.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] > 0 and card["config"]["M"] == 128 and card["recipe"]["lambdas"]
