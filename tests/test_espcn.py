"""ESPCN: the model's shape, its bicubic initialisation, a tiny training run, the frame-level
Upscaler (batching, seamless tiles)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from helpers import SAMPLES
from ncodec.models.nets import count_parameters
from ncodec.models.nets.espcn import ESPCN, RECEPTIVE_RADIUS, bicubic_resize
from ncodec.models.train import espcn as recipe
from ncodec.models.upscaler import Upscaler
from ncodec.models.zoo import load_espcn
from ncodec.video.images import read_image


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_and_paper_architecture(scale):
    m = ESPCN(scale)
    assert m(torch.rand(2, 1, 17, 23)).shape == (2, 1, 17 * scale, 23 * scale)
    assert [tuple(c.weight.shape) for c in (m.conv1, m.conv2, m.conv3)] == [
        (64, 1, 5, 5),
        (32, 64, 3, 3),
        (scale * scale, 32, 3, 3),
    ]
    assert count_parameters(m) == 64 * 25 + 64 + 64 * 32 * 9 + 32 + 32 * 9 * scale**2 + scale**2
    with pytest.raises(ValueError):
        ESPCN(5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_training_windows_compute_what_forward_computes(scale):
    # every training pair must be forward's own input/output, at the picture's edges too
    torch.manual_seed(scale)
    m = ESPCN(scale)
    for conv in (m.conv1, m.conv2, m.conv3):
        conv.weight.data.mul_(4)  # far from linear, so that padding differences show
    lr = torch.rand(1, 11, 13)
    pair = recipe.Pair(hr=torch.zeros(1, 11 * scale, 13 * scale), lr=lr)
    with torch.no_grad():
        pair.hr = m(lr[None])[0]  # the target is the model itself: the loss must be zero
        sampler = recipe.PatchSampler([pair], scale, patch=2 * RECEPTIVE_RADIUS + 5, seed=0)
        windows, targets = sampler.batch(2000)  # 63 window positions: each is drawn
        assert targets.shape == (2000, 1, 5 * scale, 5 * scale)
        # a pair is a flip/rotation of (window, forward's outputs there): undo each of the 8
        undo = [lambda t, k=k, f=f: torch.rot90(t.flip(3) if f else t, -k, (2, 3)) for k in range(4) for f in (0, 1)]
        match = torch.zeros(len(windows), dtype=torch.bool)
        corner = pair.hr[:, : 5 * scale, : 5 * scale]
        corner_seen = False
        for g in undo:
            hr = g(targets)
            match |= (m.interior(g(windows)) - hr).abs().amax(dim=(1, 2, 3)) < 1e-5
            corner_seen |= any(torch.equal(t, corner) for t in hr)
    assert bool(match.all())
    assert corner_seen  # the windows reach past the edges: corner outputs are trained too


@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_initialisation_equals_bicubic(scale, compact):
    torch.manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 64, 64), 3, 1, 1)  # smooth-ish content
    noise = torch.rand(1, 1, 64, 64)  # every frequency: each phase filter tap must be right
    model = ESPCN(scale).init_bicubic(compact=compact)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # borders: replicate vs PIL-style edges
    with torch.no_grad():
        assert (model(x) - bicubic_resize(x, scale))[inner].abs().max() < 2e-3
        assert (model(noise) - bicubic_resize(noise, scale))[inner].abs().max() < 3e-3
    # the compact form carries the picture in 4 of the second layer's 32 channels, not scale^2
    passthrough = (model.conv2.weight[:, :, 1, 1].abs() == 1).sum()
    assert passthrough == (4 if compact else scale * scale)


def test_tiny_training_run_lowers_the_loss(tmp_path):
    rgb = read_image(SAMPLES / "coffee.png")[0]
    pairs = [recipe.make_pair(rgb, 3)]
    cfg = recipe.TrainConfig(scale=3, minutes=10, steps=40, batch=8, patch=24, val_every=3.0)
    model, state = recipe.train(cfg, pairs, pairs, tmp_path / "ck.safetensors")
    assert state["step"] == 40 and state["best_val"] > state["bicubic_val"]
    assert (tmp_path / "ck.safetensors").exists()
    # resuming continues the step count from the checkpoint
    cfg2 = recipe.TrainConfig(scale=3, minutes=10, steps=50, batch=8, patch=24, val_every=3.0)
    _, state2 = recipe.train(cfg2, pairs, pairs, tmp_path / "ck.safetensors", resume=True)
    assert state2["step"] > state["step"]


@pytest.fixture(scope="module")
def bicubic_upscaler():
    return lambda scale, **kw: Upscaler(scale, model=ESPCN(scale).init_bicubic(), **kw)


def test_upscaler_batch_and_single(bicubic_upscaler):
    up = bicubic_upscaler(2)
    frames = np.random.default_rng(0).integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    batch = up.upscale_batch(frames)
    assert batch.shape == (3, 40, 60, 3) and batch.dtype == np.uint8
    assert np.array_equal(batch[1], up.upscale(frames[1]))
    with pytest.raises(ValueError):
        up.upscale_batch(np.zeros((2, 4, 4), np.uint8))


def test_tiles_leave_no_seams(bicubic_upscaler):
    rgb = read_image(SAMPLES / "coffee.png")[0][:150, :200]
    whole = bicubic_upscaler(3, tile=0).upscale(rgb)
    tiled = bicubic_upscaler(3, tile=64).upscale(rgb)
    assert whole.shape == tiled.shape == (450, 600, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_yuv420_planes_go_through_the_network_as_trained():
    """Studio-range Y planes reach the network unconverted (the range is folded into its
    weights), chroma is bicubic, and tiled planes equal whole ones."""
    model = load_espcn(3)
    rng = np.random.default_rng(1)
    y = cv2.GaussianBlur(rng.integers(16, 236, (40, 60), dtype=np.uint8), (0, 0), 1.5)
    u, v = (rng.integers(16, 241, (20, 30), dtype=np.uint8) for _ in range(2))
    big_y, big_u, big_v = Upscaler(3, precision="fp32", tile=0).upscale_yuv420([y, u, v])
    with torch.no_grad():
        ref = model(torch.from_numpy(y)[None, None].double().div(255).float())[0, 0] * 255
    assert big_y.shape == (120, 180) and np.abs(big_y - ref.numpy()).max() <= 0.51
    assert np.array_equal(big_u, cv2.resize(u, (90, 60), interpolation=cv2.INTER_CUBIC))
    assert np.array_equal(big_v, cv2.resize(v, (90, 60), interpolation=cv2.INTER_CUBIC))
    tiled = Upscaler(3, precision="fp32", tile=16).upscale_yuv420([y, u, v])
    assert np.abs(tiled[0].astype(int) - big_y).max() <= 1
    with pytest.raises(ValueError):
        Upscaler(3, tile=0).upscale_yuv420([y[:, :59], u, v])


def test_bf16_close_to_fp32(bicubic_upscaler):
    rgb = read_image(SAMPLES / "coffee.png")[0][:64, :64]
    a = bicubic_upscaler(2).upscale(rgb).astype(int)
    b = bicubic_upscaler(2, precision="bf16").upscale(rgb).astype(int)
    assert np.abs(a - b).mean() < 1.0


def test_train_command_writes_weights_and_card(tmp_path):
    import json
    import shutil

    from helpers import run
    from ncodec.models.zoo import load_espcn

    data = tmp_path / "photos"
    data.mkdir()
    shutil.copy(SAMPLES / "coffee.png", data)
    out = tmp_path / "w.safetensors"
    proc = run("train", "espcn", "--scale", "2", "--data", data, "--out", out, "--minutes", "0.1", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["scale"] == 2 and card["steps"] > 0 and card["recipe"]["lr"] == 3e-4
    assert card["recipe"]["compact_init"] and "compact" in card["recipe"]["init"]
    assert "--threads 1" in card["recipe"]["command"]  # the command reproduces the run
    model = load_espcn(2, out)
    assert model(torch.rand(1, 1, 8, 8)).shape == (1, 1, 16, 16)
    # a continued run lists the run it continues and sums the steps
    more = tmp_path / "w2.safetensors"
    proc = run(
        "train",
        "espcn",
        "--scale",
        "2",
        "--data",
        data,
        "--out",
        more,
        "--minutes",
        "0.05",
        "--threads",
        "1",
        "--init",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    card2 = json.loads(more.with_suffix(".json").read_text())
    assert card2["previous_runs"][0]["steps"] == card["steps"]
    assert card2["previous_runs"][0]["history"] == card["history"]  # the learning curve spans the runs
    assert card2["steps_total"] == card["steps"] + card2["steps"]
    assert_usage = run("train", "espcn", "--scale", "5", "--data", data, "--out", out)
    assert assert_usage.returncode == 2


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_auto_precision_follows_the_model_card(scale):

    from ncodec.models.nets.precision import native_bf16
    from ncodec.models.upscaler import BF16_MAX_COST_DB, auto_precision
    from ncodec.models.zoo import espcn_name, read_card

    set5 = read_card(espcn_name(scale))["scores_psnr_y"]["Set5"]
    worst = min(set5["espcn_bf16"], set5.get("espcn_bf16_compiled", set5["espcn_bf16"]))
    cheap = set5["espcn_fp32"] - worst <= BF16_MAX_COST_DB
    assert auto_precision(scale) == ("bf16" if cheap and native_bf16() else "fp32")
    assert auto_precision(scale, "cuda") == "fp32"
