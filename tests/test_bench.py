"""The benchmark harness writes JSON, a markdown table and an RD plot from real encodes."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import SAMPLES, make_video
from ncodec.codec.errors import UsageError
from ncodec.video import bench


def test_clip_bench(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", 96, 64, frames=8)
    table = bench.run(clip, ["x264", "x265"], points=2, out_dir=tmp_path / "out")
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = result["rows"]
    assert [(r["codec"], r["setting"]) for r in rows] == [
        ("x264", "crf=37"),
        ("x264", "crf=22"),
        ("x265", "crf=39"),
        ("x265", "crf=24"),
    ]
    for r in rows:
        assert r["frames"] == 8 and r["bytes"] > 0 and r["psnr"] > 20 and r["decode_fps"] > 0
    assert rows[1]["bytes"] > rows[0]["bytes"] and rows[1]["psnr"] > rows[0]["psnr"]
    assert "BD-rate against x264" in table and "| x265 |" in table
    assert (tmp_path / "out" / "rd.png").stat().st_size > 10_000


def test_image_folder_bench(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(SAMPLES / "coffee.png", folder)
    bench.run(folder, ["jpeg", "webp", "x265"], points=2, out_dir=tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert {r["codec"] for r in rows} == {"jpeg", "webp", "x265"}
    jpeg_q90 = next(r for r in rows if r["setting"] == "q=90" and r["codec"] == "jpeg")
    assert jpeg_q90["psnr"] > 33 and 0.5 < jpeg_q90["bpp"] < 6


def test_bench_rejects_unknown_codec(tmp_path):
    with pytest.raises(UsageError):
        bench.run(SAMPLES / "city.mp4", ["nope"], out_dir=tmp_path)


def test_codec_options_are_held_over_the_sweep(tmp_path, monkeypatch):
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    rgb = cv2.imread(str(SAMPLES / "coffee.png"))[:64, :96]
    cv2.imwrite(str(folder / "crop.png"), rgb)
    calls, encode = [], bench.encode_file

    def recording(src, dst, codec, **kw):  # the real encoder, its arguments kept
        calls.append((codec, kw["quality"], kw["options"]))
        return encode(src, dst, codec, **kw)

    monkeypatch.setattr(bench, "encode_file", recording)
    bench.run(folder, ["mlic", "mlic:refine=3"], points=2, out_dir=tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [(r["codec"], r["setting"]) for r in rows] == [
        ("mlic", "quality=low"),
        ("mlic", "quality=medium"),
        ("mlic:refine=3", "quality=low"),
        ("mlic:refine=3", "quality=medium"),
    ]
    assert calls == [
        ("mlic", "low", {}),
        ("mlic", "medium", {}),
        ("mlic", "low", {"refine": 3}),
        ("mlic", "medium", {"refine": 3}),
    ]
    assert all(r["bytes"] > 0 and r["psnr"] > 25 for r in rows)


@pytest.mark.parametrize("spec", ["mlic:refine", "mlic:nope=1", "webp:q=3", "x265:=4"])
def test_bench_rejects_bad_codec_options(tmp_path, spec):
    with pytest.raises(UsageError):
        bench.run(SAMPLES, [spec], out_dir=tmp_path)
