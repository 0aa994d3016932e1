"""Classical reflection suppression (DCT-domain closed form)."""

from __future__ import annotations

import cv2
import numpy as np

from helpers import SAMPLES
from ncodec.models.nets.reflection_classic import suppress_reflection
from ncodec.video.images import read_image


def test_keeping_every_gradient_returns_the_input():
    rgb = read_image(SAMPLES / "coffee.png")[0][:120, :160]
    out = suppress_reflection(rgb, threshold=-1.0)
    assert np.abs(out.astype(int) - rgb).max() <= 1


def test_weak_gradients_go_strong_edges_stay():
    h, w = 96, 128
    edge = np.zeros((h, w), np.float32)
    edge[:, w // 2 :] = 160.0  # a sharp, strong edge: the transmission
    rng = np.random.default_rng(0)
    blob = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 6)
    blob *= 25 / np.abs(blob).max()  # a defocused, weak layer: the reflection
    blend = np.clip(40 + edge + blob, 0, 255).astype(np.uint8)
    out = suppress_reflection(np.dstack([blend] * 3), threshold=0.05)[..., 0].astype(np.float32)
    truth = 40 + edge + blob.mean()
    assert np.abs(out - truth).mean() < 0.5 * np.abs(blend - truth).mean()
    assert out[:, w // 2 + 2 :].mean() - out[:, : w // 2 - 2].mean() > 150  # the edge keeps its height


def test_grayscale_and_shape():
    gray = np.tile(np.linspace(0, 255, 50, dtype=np.float32), (30, 1)).astype(np.uint8)
    out = suppress_reflection(gray)
    assert out.shape == gray.shape and out.dtype == np.uint8


# -- the network, its training data, tiled inference and the CLI ---------------------------

import pytest  # noqa: E402
import torch  # noqa: E402

from ncodec.models.nets.rrformer import RRConfig, RRFormer  # noqa: E402
from ncodec.models.train import rrformer as rr_recipe  # noqa: E402

SMALL_RR = RRConfig(width=8, blocks=2, heads=2)


def _perturbed(cfg: RRConfig = SMALL_RR, seed: int = 0) -> RRFormer:
    """A model whose output head is not the identity it starts as (so tests see real outputs)."""
    torch.manual_seed(seed)
    model = RRFormer(cfg).eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.05)
    return model


def test_model_shapes_and_identity_start():
    x = torch.rand(2, 3, 70, 90)
    with torch.no_grad():
        t, r = RRFormer(SMALL_RR).eval()(x)
        assert t.shape == r.shape == x.shape and torch.equal(t, x) and not r.any()  # untrained: T = I, R = 0
        t2, _ = _perturbed()(x)
    assert t2.shape == x.shape and not torch.equal(t2, x)


def test_synthesized_blends_follow_the_model():
    rng = np.random.default_rng(0)
    t = torch.rand(1, 3, 64, 64) * 0.5
    r = torch.rand(1, 3, 64, 64)
    blend, t_out, refl = rr_recipe.synthesize(t, r, rng)
    assert torch.equal(t_out, t) and blend.min() >= 0 and blend.max() <= 1
    assert torch.allclose(blend - t, refl) and refl.mean() > 0.01  # a visible, additive reflection
    assert _high_pass(refl) < 0.5 * _high_pass(r)  # defocused: little fine detail left


def _high_pass(x: torch.Tensor) -> float:
    return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean())


def test_exclusion_loss_prefers_separate_edges():
    a = torch.zeros(1, 3, 64, 64)
    a[..., :, 32:] = 1.0  # a vertical edge
    b = torch.zeros(1, 3, 64, 64)
    b[..., 32:, :] = 1.0  # a horizontal edge elsewhere
    assert rr_recipe.exclusion_loss(a, b) < rr_recipe.exclusion_loss(a, a.clone())


def test_tiny_training_run_lowers_the_loss(tmp_path):
    rng = np.random.default_rng(0)
    photos = [cv2.GaussianBlur(rng.integers(0, 255, (96, 96, 3)).astype(np.uint8), (0, 0), 2) for _ in range(4)]
    photos.append(read_image(SAMPLES / "coffee.png")[0][:160, :160])
    sampler = rr_recipe.BlendSampler(photos, 64, seed=5)
    fixed = sampler.batch(4)
    torch.manual_seed(0)
    with torch.no_grad():
        before, _ = rr_recipe.losses(RRFormer(SMALL_RR).eval(), *fixed)
    cfg = rr_recipe.RRTrainConfig(minutes=10, steps=12, crop=64, batch=4, val_every=5.0, bf16=False)
    model, state = rr_recipe.train(cfg, SMALL_RR, photos, photos[:2], tmp_path / "ck.safetensors")
    with torch.no_grad():
        after, _ = rr_recipe.losses(model.eval(), *fixed)
    assert state["step"] == 12 and float(after) < float(before)
    assert {"input", "net"} <= set(state["history"][-1]["val_psnr"])


def test_tiles_join_without_seams():
    from ncodec.models.dereflector import dereflect_network

    rgb = read_image(SAMPLES / "astronaut.png")[0][:300, :280]
    model = _perturbed()
    whole = dereflect_network(rgb, model, tile=512)
    tiled = dereflect_network(rgb, model, tile=128, overlap=32)
    diff = np.abs(whole.astype(int) - tiled)
    changed = np.abs(whole.astype(int) - rgb).mean()
    assert changed > 1.0  # the network really changes the picture
    assert diff.mean() < 0.1 and diff.max() <= 4, (diff.mean(), diff.max())  # measured 0.03 / 3 (no overlap: 0.07 / 6)


def test_cli_dereflect_classic_and_net(tmp_path):
    from helpers import run
    from ncodec.video.dereflect import network_available

    out = tmp_path / "out.png"
    proc = run("dereflect", SAMPLES / "coffee.png", out, "--method", "classic")
    assert proc.returncode == 0 and out.exists(), proc.stderr
    assert read_image(out)[0].shape == read_image(SAMPLES / "coffee.png")[0].shape
    net = tmp_path / "net.png"
    proc = run("dereflect", SAMPLES / "coffee.png", net, "--method", "net", "-q")
    if network_available():
        assert proc.returncode == 0 and net.exists(), proc.stderr
    else:
        assert proc.returncode == 2 and "--method classic" in proc.stderr and not net.exists()


@pytest.mark.parametrize("kind", ["not-image", "empty", "16-bit", "too-large"])
def test_cli_dereflect_bad_inputs(tmp_path, kind):
    from helpers import assert_one_line_error, run

    src, extra = tmp_path / "in.png", []
    if kind == "not-image":
        src.write_text("hello")
    elif kind == "empty":
        src.write_bytes(b"")
    elif kind == "16-bit":
        cv2.imwrite(str(src), np.full((32, 32, 3), 40000, np.uint16))
    else:
        cv2.imwrite(str(src), np.zeros((100, 100, 3), np.uint8))
        extra = ["--max-pixels", "5000"]
    out = tmp_path / "out.png"
    proc = run("dereflect", src, out, "--method", "classic", *extra)
    assert_one_line_error(
        proc, 1, {"not-image": "not", "empty": "empty", "16-bit": "16-bit", "too-large": "over the limit"}[kind]
    )
    assert not out.exists()
