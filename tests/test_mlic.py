"""MLICv2-style image model and its rANS bitstream: shapes for the paper's and the small
configuration, variable-rate gains, bit-exact decode, corrupted streams rejected."""

from __future__ import annotations

import pytest
import torch

from ncodec.codec import mlic
from ncodec.codec.errors import BitstreamError
from ncodec.models.nets import count_parameters
from ncodec.models.nets.mlicv2 import PAPER, SMALL, MLICConfig, MLICv2

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
    mlic.prepare(model)
    x = mlic.pad_to_multiple(torch.rand(1, 3, 70, 100), model.PAD)
    assert x.shape[-2:] == (128, 128)
    result, recon = mlic.compress(model, x, 2.0)
    return model, result, recon


def test_decode_equals_the_encoders_reconstruction(coded):
    model, result, recon = coded
    assert len(result.y) > 0 and result.z_size == (2, 2)
    assert torch.equal(mlic.decompress(model, result, 2.0), recon)


def test_damaged_stream_is_detected(coded):
    model, result, _ = coded
    bad = mlic.CodedImage(result.z, result.y[:-3] + b"xyz", result.z_size, result.y_crc)
    with pytest.raises(BitstreamError):
        mlic.decompress(model, bad, 2.0)


def test_tiny_training_run_lowers_the_loss_and_resumes(tmp_path):
    import numpy as np

    from ncodec.models.train import mlic as recipe

    rng = np.random.default_rng(0)
    photo = (np.kron(rng.integers(0, 255, (24, 24, 3)), np.ones((8, 8, 1)))).astype(np.uint8)  # blocky 192 px
    x = torch.from_numpy(photo[:64, :64]).permute(2, 0, 1)[None].float() / 255
    level = torch.tensor([TINY.levels - 1])
    torch.manual_seed(0)  # train() seeds the same way before building its model
    with torch.no_grad():
        before, _ = recipe.rate_distortion(MLICv2(TINY).eval(), x, level)
    # fp32: oneDNN's bf16 kernels take seconds per shape to warm up, longer than this run
    cfg = recipe.MLICTrainConfig(minutes=10, steps=12, crop=64, batch=2, val_every=5.0, bf16=False)
    model, state = recipe.train(cfg, TINY, [photo], [photo[:64, :64]], tmp_path / "ck.safetensors")
    with torch.no_grad():
        after, _ = recipe.rate_distortion(model.eval(), x, level)
    assert state["step"] == 12 and float(after) < float(before)  # per-batch losses are too noisy to compare
    last = state["history"][-1]
    assert set(last["val"]) == {"0", "1", "2", "3"} and all(v["bpp"] > 0 for v in last["val"].values())
    cfg2 = recipe.MLICTrainConfig(minutes=10, steps=16, crop=64, batch=2, val_every=5.0, bf16=False)
    _, state2 = recipe.train(cfg2, TINY, [photo], [photo[:64, :64]], tmp_path / "ck.safetensors", resume=True)
    assert state2["step"] > state["step"]


def test_cli_train_mlic_writes_weights_and_card(tmp_path):
    import json
    import shutil

    from helpers import SAMPLES, run

    data = tmp_path / "photos"
    data.mkdir()
    shutil.copy(SAMPLES / "coffee.png", data)
    out = tmp_path / "mlic.safetensors"
    proc = run("train", "mlic", "--data", data, "--out", out, "--minutes", "0.1", "--crop", "64", "--batch", "2")
    assert proc.returncode == 0, proc.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] > 0 and card["config"]["M"] == 128 and card["recipe"]["lambdas"]

    wide = tmp_path / "wide.safetensors"  # those small weights grown into the wide config
    proc = run(
        "train",
        "mlic",
        "--data",
        data,
        "--out",
        wide,
        "--minutes",
        "0.1",
        "--crop",
        "64",
        "--batch",
        "2",
        "--config",
        "wide",
        "--init",
        out,
        "--zoom",
        "0.5",
    )
    assert proc.returncode == 0, proc.stderr
    card = json.loads(wide.with_suffix(".json").read_text())
    assert card["config"]["M"] == 192 and card["recipe"]["init"].startswith("widened from")
    assert card["recipe"]["zoom"] == 0.5 and "--zoom 0.5" in card["recipe"]["command"]

    from helpers import assert_one_line_error

    bad = tmp_path / "bad.safetensors"
    assert_one_line_error(run("train", "mlic", "--data", data, "--out", bad, "--zoom", "0.1"), 2, "--zoom")
    assert not bad.exists()


def test_zoomed_crops_carry_denser_detail():
    import numpy as np

    from ncodec.models.train.samplers import CropSampler

    ramp = np.broadcast_to(np.arange(600, dtype=np.float64)[None, :, None] * 0.4, (400, 600, 3)).astype(np.uint8)

    def steepest(sampler):  # the largest horizontal step inside any crop of the batch
        crops = sampler.batch(64)
        return round(float((crops[..., 1:] - crops[..., :-1]).abs().max()) * 255)

    plain, zoomed = CropSampler([ramp], 64, seed=0), CropSampler([ramp], 64, seed=0, zoom=0.25)
    assert plain.batch(3).shape == zoomed.batch(3).shape == (3, 3, 64, 64)
    assert steepest(plain) <= 1  # the ramp rises 0.4 per pixel: steps of 0 or 1
    assert steepest(zoomed) >= 2  # shrunk from regions up to 4x larger: up to 1.6 per pixel


def test_int8_storage_round_trips_within_half_a_step(tmp_path):
    """The MLIC weights ship with their large tensors as int8 plus per-channel scales:
    they load back within half a quantisation step, the rest as fp16, the file is under
    0.6x the all-fp16 size, and scales that do not fit their tensor are refused."""
    import json

    from safetensors.torch import save_file

    from ncodec.models.nets.mlicv2 import stored_int8
    from ncodec.models.zoo import INT8_SCALES, load_model, read_weights, storage_tensors

    state = MLICv2(SMALL).state_dict()
    tensors = storage_tensors(state, stored_int8)
    picked = [k for k, v in state.items() if stored_int8(k, v)]
    assert picked and not any(k.startswith("dct.") for k in picked)
    assert all(tensors[k].dtype == torch.int8 for k in picked)
    assert all(t.dtype == torch.float16 for k, t in tensors.items() if k not in picked and not k.endswith(INT8_SCALES))
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path), metadata={"config": json.dumps(SMALL.to_json())})
    fp16 = sum(v.numel() * 2 for v in state.values())
    assert path.stat().st_size < 0.6 * fp16
    loaded = read_weights(path)
    for k, v in state.items():
        if k in picked:
            rows = v.reshape(v.shape[0], -1)
            step = rows.abs().amax(dim=1, keepdim=True) / 127
            assert ((loaded[k] - v).reshape(v.shape[0], -1).abs() <= step / 2 + 1e-7).all(), k
        else:
            assert torch.equal(loaded[k], v.half().float()), k
    model = load_model(path, lambda cfg: MLICv2(MLICConfig(**cfg)))
    assert torch.equal(model.state_dict()[picked[0]], loaded[picked[0]])

    tensors[picked[0] + INT8_SCALES] = tensors[picked[0] + INT8_SCALES][:-1]
    save_file(tensors, str(path), metadata={"config": json.dumps(SMALL.to_json())})
    with pytest.raises(ValueError, match="not weights of this model"):
        load_model(path, lambda cfg: MLICv2(MLICConfig(**cfg)))


def test_untrained_small_model_starts_as_a_block_dct_coder():
    """The warm start: before any training the codec reconstructs a photo well (the DCT
    path), so training starts from a working transform coder, not from noise."""
    import cv2

    from helpers import SAMPLES

    rgb = cv2.cvtColor(cv2.imread(str(SAMPLES / "astronaut.png")), cv2.COLOR_BGR2RGB)[:256, :256]
    x = mlic.to_tensor(rgb)
    torch.manual_seed(0)
    with torch.no_grad():
        out = MLICv2(SMALL).eval()(x, 3.0)
    psnr = 10 * torch.log10(1 / torch.mean((out["x_hat"].clamp(0, 1) - x) ** 2))
    assert psnr > 27.0, psnr
    with torch.no_grad():  # a model without the DCT path reconstructs nothing useful at first
        plain = MLICv2(MLICConfig(N=64, M=128, slices=4, depth=1, hyper=64, attn=32)).eval()(x, 3.0)
    assert 10 * torch.log10(1 / torch.mean((plain["x_hat"].clamp(0, 1) - x) ** 2)) < 15.0


def test_float64_decode_is_identical_with_one_and_two_threads():
    torch.manual_seed(1)
    model = MLICv2(TINY).double().eval()
    mlic.prepare(model)
    x = torch.rand(1, 3, 128, 192, dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        coded, _ = mlic.compress(model, x, 1.5)
        one = mlic.decompress(model, coded, 1.5)
        torch.set_num_threads(2)
        again, _ = mlic.compress(model, x, 1.5)
        two = mlic.decompress(model, coded, 1.5)
    finally:
        torch.set_num_threads(threads)
    assert again.y == coded.y and again.z == coded.z
    assert torch.equal((one * 255).round(), (two * 255).round())


def test_refinement_keeps_the_decoder_and_lowers_the_objective():
    from ncodec.models.nets.mlicv2 import refine_latents

    torch.manual_seed(2)
    model = MLICv2(TINY).eval()
    mlic.prepare(model)
    x = torch.rand(1, 3, 64, 64).mul(0.3).add(torch.linspace(0, 0.6, 64)[None, None, None, :])  # a smooth ramp + noise
    lam = model.lambda_at(2.0)

    def cost(y) -> float:  # the true objective: hard rounding, real rANS bytes
        coded, recon = mlic.compress(model, x, 2.0, y)
        return lam * 255**2 * float(torch.mean((recon - x) ** 2)) + 8 * (len(coded.y) + len(coded.z)) / x[0, 0].numel()

    with torch.no_grad():
        y0 = model.analysis(x) * model.gain(model.y_gain, 2.0)
    y = refine_latents(model, x, 2.0, steps=60, lr=0.05)
    assert not torch.equal(y, y0) and cost(y) < cost(y0)
    coded, recon = mlic.compress(model, x, 2.0, y)
    assert torch.equal(mlic.decompress(model, coded, 2.0), recon)  # decoder unchanged


def test_shipped_weights_keep_the_likelihood_bound():
    """fp16 (the shipped storage of small tensors) holds compressai's 1e-9 likelihood
    bound as 0; loading must restore it, or a latent far from its mean gives a rate of
    inf and refinement turns the latents NaN (seen on Set14's barbara)."""
    from ncodec.models.nets.mlicv2 import LIKELIHOOD_BOUND, sga_round
    from ncodec.models.zoo import load_mlic

    model = load_mlic()
    for p in model.parameters():
        p.requires_grad_(False)
    assert float(model.gaussian_conditional.likelihood_lower_bound.bound) == pytest.approx(LIKELIHOOD_BOUND)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y = model.analysis(x) * model.gain(model.y_gain, 1.0)
    y[0, 0, 0, 0] += 1e4  # a latent the model gives probability 0 in float32
    y.requires_grad_(True)
    out = model.code_latents(y, 1.0, soft_round=lambda v: sga_round(v, 0.1))
    rate = sum(-lik.log2().sum() for lik in out["likelihoods"].values())
    rate.backward()
    assert torch.isfinite(rate) and torch.isfinite(y.grad).all()


def test_compress_refuses_latents_it_cannot_code():
    model = MLICv2(TINY).eval()
    mlic.prepare(model)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y = model.analysis(x) * model.gain(model.y_gain, 1.0)
    y[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="latents out of range"):
        mlic.compress(model, x, 1.0, y)


# -- the shipped codec through the CLI ---------------------------------------------------


@pytest.fixture(scope="module")
def photo_rgba(tmp_path_factory):
    """A 200x150 RGBA photo crop (odd size: padding and cropping back) with a gradient alpha."""
    import cv2
    import numpy as np

    from helpers import SAMPLES

    bgr = cv2.imread(str(SAMPLES / "astronaut.png"))[100:250, 150:350]
    alpha = np.tile(np.linspace(0, 255, 200).astype(np.uint8), (150, 1))
    path = tmp_path_factory.mktemp("mlic") / "photo.png"
    cv2.imwrite(str(path), np.dstack([bgr, alpha]))
    return path


def test_cli_codes_a_photo_with_its_alpha(tmp_path, photo_rgba):
    import cv2
    import numpy as np

    from helpers import run

    bits, out = tmp_path / "p.bin", tmp_path / "p.png"
    proc = run("encode", photo_rgba, bits, "--quality", "best", "-q")  # images default to mlic
    assert proc.returncode == 0, proc.stderr
    info = run("info", bits)
    assert "mlic" in info.stdout and "ALPH" in info.stdout
    proc = run("decode", bits, out, "--reference", photo_rgba)
    assert proc.returncode == 0, proc.stderr
    src, dec = cv2.imread(str(photo_rgba), cv2.IMREAD_UNCHANGED), cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert dec.shape == (150, 200, 4) and np.array_equal(dec[:, :, 3], src[:, :, 3])  # alpha is lossless
    psnr = 10 * np.log10(255**2 / np.mean((dec[:, :, :3].astype(float) - src[:, :, :3]) ** 2))
    assert psnr > 27.0, psnr
    bad = run("decode", bits, tmp_path / "p.jpg")  # JPEG cannot hold the alpha
    assert bad.returncode != 0 and "transparency" in bad.stderr and not (tmp_path / "p.jpg").exists()


def test_cli_keeps_grayscale_and_rates_follow_the_level(tmp_path, photo_rgba):
    import cv2

    from helpers import run

    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), cv2.cvtColor(cv2.imread(str(photo_rgba)), cv2.COLOR_BGR2GRAY))
    sizes = []
    for level in ("0", "2.5"):
        bits = tmp_path / f"g{level}.bin"
        assert run("encode", gray, bits, "--codec", "mlic", "--level", level, "-q").returncode == 0
        sizes.append(bits.stat().st_size)
    assert sizes[0] < sizes[1]
    out = tmp_path / "g.png"
    assert run("decode", bits, out, "-q").returncode == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (150, 200)


def test_cli_rejects_bad_mlic_requests(tmp_path, photo_rgba):
    from helpers import assert_one_line_error, run

    out = tmp_path / "x.bin"
    assert_one_line_error(run("encode", photo_rgba, out, "--level", "7"), 2, "--level")
    assert_one_line_error(run("encode", photo_rgba, out, "--refine", "-1"), 2, "--refine")
    assert not out.exists()


def test_a_file_naming_weights_this_release_lacks_says_which_and_which_release(tmp_path, photo_rgba):
    from helpers import run
    from ncodec.codec.container import ContainerReader, ContainerWriter

    bits = tmp_path / "p.bin"
    assert run("encode", photo_rgba, bits, "--level", "0", "-q").returncode == 0
    with ContainerReader(bits) as r:
        header, sections = r.header, list(r.sections())
    header.params.update(weights="0" * 16, release="9.1.0")  # as if from a later release
    forged = tmp_path / "forged.bin"
    with ContainerWriter(forged, header) as w:
        for tag, payload in sections:
            w.write(tag, payload)
        w.close(frame_count=1)
    proc = run("decode", forged, tmp_path / "f.png")
    assert proc.returncode != 0 and "mlic weights 0000000000000000" in proc.stderr, proc.stderr
    assert "ncodec 9.1.0 or later" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "f.png").exists()


def test_tiled_transforms_equal_the_whole_picture(monkeypatch):
    """Large photos go through the transforms in tiles; the seams must not show."""
    torch.manual_seed(3)
    model = MLICv2(TINY).double().eval()
    x = torch.rand(1, 3, 192, 320, dtype=torch.float64)
    with torch.no_grad():
        y, x_hat = model.analysis(x), model.synthesis(model.analysis(x))
        monkeypatch.setattr(MLICv2, "TILE", 3)  # 48-px tiles: several per side, with margins
        y_tiled = model.analysis_tiled(x)
        x_tiled = model.synthesis_tiled(y)
    assert torch.allclose(y_tiled, y, atol=1e-10) and torch.allclose(x_tiled, x_hat, atol=1e-10)


def test_widening_keeps_the_old_code_and_lifts_the_ceiling():
    """train_mlic.widen: the grown model codes the old channels exactly as the narrow one
    (same likelihoods for them and for z), its unquantized reconstruction is closer to the
    picture, and its bitstream still decodes to the encoder's reconstruction."""
    from dataclasses import replace

    import cv2

    from helpers import SAMPLES
    from ncodec.models.train import mlic as recipe

    narrow_cfg = MLICConfig(N=16, M=32, slices=4, depth=1, hyper=16, attn=8, half_res_blocks=False, dct_start=True)
    wide_cfg = replace(narrow_cfg, M=48, slices=6, context=narrow_cfg.context_channels)
    torch.manual_seed(0)
    narrow = MLICv2(narrow_cfg).eval()
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLES / "astronaut.png")), cv2.COLOR_BGR2RGB)
    wide = recipe.widen(narrow.state_dict(), wide_cfg, [rgb[:256, :256], rgb[256:, 256:]]).eval()
    assert len(wide.slices) == 6 and wide.y_gain.shape == (4, 48)

    x = mlic.to_tensor(rgb[:128, 256:384])
    top = float(narrow_cfg.levels - 1)
    with torch.no_grad():
        a, b = narrow(x, 1.0), wide(x, 1.0)
        assert torch.equal(a["likelihoods"]["z"], b["likelihoods"]["z"])
        assert torch.allclose(a["likelihoods"]["y"], b["likelihoods"]["y"][:, :32])

        def ceiling_mse(model):
            y = model.analysis(x) * model.gain(model.y_gain, top) * model.gain(model.y_inverse, top)
            return float(((model.synthesis(y) - x) ** 2).mean())

        assert ceiling_mse(wide) < 0.8 * ceiling_mse(narrow)

    # widened weights grow again (as WIDE into WIDER), still coding what they coded
    wider = recipe.widen(wide.state_dict(), replace(wide_cfg, M=64, slices=8), [rgb[:256, :256]]).eval()
    with torch.no_grad():
        c = wider(x, 1.0)
        assert torch.equal(b["likelihoods"]["z"], c["likelihoods"]["z"])
        assert torch.allclose(b["likelihoods"]["y"], c["likelihoods"]["y"][:, :48])

    mlic.prepare(wide)
    result, recon = mlic.compress(wide, x, 2.0)
    assert torch.equal(mlic.decompress(wide, result, 2.0), recon)
    with pytest.raises(ValueError, match="cannot be widened"):
        recipe.widen(wide.state_dict(), wide_cfg, [rgb])
    with pytest.raises(ValueError, match="cannot be widened"):  # another transform width
        recipe.widen(narrow.state_dict(), replace(wide_cfg, N=24), [rgb])


def test_the_three_splits_are_disjoint_and_adding_photos_moves_none(tmp_path):
    """The evaluation protocol: validation = every 25th photo, the test split = a hash rule
    on the path, training = the rest; a photo added later leaves every old photo's part."""
    import cv2
    import numpy as np

    from ncodec.models.train.drivers import heldout_test_photos, split_photos

    tile = np.full((8, 8, 3), 128, np.uint8)
    for i in range(200):
        cv2.imwrite(str(tmp_path / f"p{i:03d}.png"), tile)
    train, val = split_photos(str(tmp_path))
    test = heldout_test_photos(str(tmp_path))
    assert len(val) == 8 and 3 <= len(test) <= 25 and len(train) + len(val) + len(test) == 200
    assert not (set(train) & set(test)) and not (set(val) & set(test)) and not (set(train) & set(val))
    cv2.imwrite(str(tmp_path / "z-added.png"), tile)  # sorts last: validation indices stay
    assert set(heldout_test_photos(str(tmp_path))) - {tmp_path / "z-added.png"} == set(test)
