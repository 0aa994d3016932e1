"""Codecs stand on their own and declare typed options: the registry works from
``ncodec.codec`` alone, and every option's bad values are refused up front (exit 2, one
line, no output file)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from helpers import SAMPLES, assert_one_line_error, run
from ncodec.codec import registry
from ncodec.codec.options import Option

FRESH_ROUND_TRIP = """
import sys
from fractions import Fraction
import numpy as np
import ncodec.codec as c

small = {"stdo": {"steps": 1}, "hnerv": {"size": 10_000, "epochs": 1}}
y, x = np.mgrid[0:48, 0:64]
frames = [np.stack([(x * 3 + i) % 256, (y * 5) % 256, (x + y) % 256], -1).astype(np.uint8) for i in range(3)]
for name in c.names():
    codec = c.get(name)
    count = 1 if codec.media == "image" else len(frames)
    options = small.get(name, {})
    header = c.StreamHeader(codec.tag, 64, 48, Fraction(25), count, params=codec.params(64, 48, 25, options))
    runtime = {"settings": codec.encoder_settings(options)}
    sections = list(codec.encode(iter(frames[:count]), header, runtime))
    decoded = list(codec.decode(iter(sections), header))
    assert len(decoded) == count and decoded[0].shape == (48, 64, 3), name
    print(name, sum(len(p) for _, p in sections))
assert "ncodec.video" not in sys.modules and "ncodec.app" not in sys.modules
"""


def test_codec_package_alone_encodes_and_decodes_with_every_codec():
    proc = subprocess.run([sys.executable, "-c", FRESH_ROUND_TRIP], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    coded = dict(line.split() for line in proc.stdout.splitlines())
    assert set(coded) == set(registry.names()) and all(int(n) > 0 for n in coded.values())


def _bad_values(option: Option) -> list[str]:
    """Values the option must refuse, as a user would type them."""
    if option.type is bool:
        return []
    if option.choices is not None and option.type is str:
        return ["no-such-choice"]
    bad = ["nan", "inf", "-inf", "-1"] if option.type is float else ["-1", "1.5", "nan"]
    if option.high is not None:
        bad.append(str(option.high + 1 if option.type is int else option.high * 2 + 1))
    if option.low is not None and option.low > 0:
        bad.append(str(option.low - 1 if option.type is int else option.low / 2))
    if option.choices is not None:
        bad.append(str(max(option.choices) + 1))
    return [v for v in bad if not (v == "-1" and option.low is not None and option.low < 0)]


CASES = [
    (name, option, value)
    for name in registry.names()
    for option in registry.get(name).options
    for value in _bad_values(option)
]


@pytest.mark.parametrize("codec, option, value", CASES, ids=[f"{c}{o.flag}={v}" for c, o, v in CASES])
def test_every_option_refuses_bad_values(tmp_path, codec, option, value):
    src = SAMPLES / ("coffee.png" if registry.get(codec).media == "image" else "city.mp4")
    out = tmp_path / "out.bin"
    from ncodec.app.cli import main

    try:
        code = main(["encode", str(src), str(out), "-c", codec, option.flag, value])
    except SystemExit as e:  # argparse's own type errors (e.g. nan for an integer)
        code = e.code
    assert code == 2
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_option_through_the_real_command(tmp_path):
    out = tmp_path / "out.bin"
    assert_one_line_error(
        run("encode", SAMPLES / "city.mp4", out, "-c", "hnerv", "--time-budget", "nan"), 2, "--time-budget must be"
    )
    assert_one_line_error(
        run("encode", SAMPLES / "city.mp4", out, "-c", "stdo", "--train-layers", "some"),
        2,
        "--train-layers must be one of last, all",
    )
    assert_one_line_error(
        run("encode", SAMPLES / "city.mp4", out, "-c", "x264", "--level", "2"), 2, "--level does not apply to x264"
    )
    assert not out.exists()


def test_errors_are_one_line_and_name_the_flag(capsys, tmp_path):
    from ncodec.app.cli import main

    assert main(["encode", str(SAMPLES / "city.mp4"), str(tmp_path / "o.bin"), "-c", "stdo", "--steps", "-5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == "ncodec: error: --steps must be in 0..1,000,000, not -5"


def test_encoder_only_options_stay_out_of_the_header():
    for name in registry.names():
        codec = registry.get(name)
        params = codec.params(64, 48, 25, {})
        for option in codec.options:
            if option.encoder_only:
                assert option.name not in params, (name, option.name)


def test_shared_options_agree_on_their_type():
    seen: dict[str, type] = {}
    for name in registry.names():
        for option in registry.get(name).options:
            assert seen.setdefault(option.name, option.type) is option.type, option.name
            assert option.default is None or option.check(option.default) == option.default


def test_hnerv_loss_choices_are_the_models():
    from ncodec.models.train.hnerv import LOSSES

    loss = next(o for o in registry.get("hnerv").options if o.name == "loss")
    assert loss.choices == tuple(LOSSES)


def test_option_check_converts_and_refuses():
    budget = Option("b", float, None, "", low=1.0, high=10.0)
    assert budget.check("2.5") == 2.5 and budget.check(None) is None
    for bad in (math.nan, math.inf, -1.0, 0.5, 11, "x", True):
        with pytest.raises(Exception, match="--b must be in 1..10"):
            budget.check(bad)
    count = Option("n", int, 1, "", low=1, high=5)
    assert count.check(3.0) == 3
    with pytest.raises(Exception, match="--n must be"):
        count.check(2.5)
