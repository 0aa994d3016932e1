"""HNeRV model: stride plans for any size, the parameter budget, shapes."""

from __future__ import annotations

import math

import pytest
import torch

from ncodec.models.nets.hnerv import HNeRV, HNeRVConfig, decoder_parameters, make_config, pad_frames, plan_strides


@pytest.mark.parametrize("size", [(270, 480), (272, 640), (99, 177), (1080, 1920), (144, 176)])
def test_stride_plan_covers_the_frame(size):
    h, w = size
    strides, ph, pw = plan_strides(h, w)
    p = math.prod(strides)
    assert ph >= h and pw >= w and ph % p == 0 and pw % p == 0
    assert ph - h < p and pw - w < p  # never a whole stride of padding
    assert list(strides) == sorted(strides, reverse=True)


@pytest.mark.parametrize("budget", [100_000, 300_000, 1_500_000])
def test_width_solved_from_budget(budget):
    cfg = make_config(270, 480, budget)
    n = decoder_parameters(cfg.strides, cfg.widths, cfg.kernels)
    assert 0.8 * budget <= n <= budget
    assert n == sum(p.numel() for p in HNeRV(cfg).decoder.parameters())
    assert cfg.kernels[:3] == (1, 3, 5)


def test_shapes_and_config_round_trip():
    cfg = make_config(99, 177, 150_000)
    model = HNeRV(cfg, encoder_dim=16)
    frames = pad_frames(torch.rand(2, 3, 99, 177), cfg)
    out, emb = model(frames)
    assert out.shape == (2, 3, cfg.height, cfg.width) and emb.shape == (2, 16, *cfg.embed_size)
    assert 0 <= out.min() and out.max() <= 1
    assert HNeRVConfig.from_json(cfg.to_json()) == cfg
