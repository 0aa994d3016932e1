"""encode -> bitstream -> decode, end to end, with audio, for every classical codec."""

from __future__ import annotations

import av
import pytest

from helpers import SAMPLES, make_video, moving_frames, read_audio
from ncodec.codec.container import ContainerReader
from ncodec.codec.errors import BitstreamError
from ncodec.video import MediaReader, decode_file, describe, encode_file
from ncodec.video.metrics import psnr


@pytest.mark.parametrize("codec", ["x264", "x265", "av1"])
def test_round_trip_each_codec(tmp_path, clip, codec):
    res = encode_file(clip, tmp_path / "a.bin", codec, options={"crf": 20})
    assert res.bytes == (tmp_path / "a.bin").stat().st_size and res.frames == 12
    out = decode_file(tmp_path / "a.bin", tmp_path / "a.mkv", lossless=True, reference=clip)
    assert out.frames == 12 and out.quality["psnr"] > 30
    with MediaReader(clip) as a, MediaReader(tmp_path / "a.mkv") as b:
        assert all(psnr(x, y) > 30 for x, y in zip(a.frames(), b.frames()))


def test_quality_controls_size(tmp_path, clip):
    low = encode_file(clip, tmp_path / "low.bin", "x264", quality="low").bytes
    best = encode_file(clip, tmp_path / "best.bin", "x264", quality="best").bytes
    assert low < best


def test_audio_and_video_round_trip(tmp_path, av_file):
    bits = tmp_path / "av.bin"
    res = encode_file(av_file, bits, "x264")
    assert res.audio_bytes > 0 and describe(bits)["has_audio"]
    out = tmp_path / "av_out.mp4"
    decode_file(bits, out)
    with av.open(str(av_file)) as c:
        src_packets = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        assert c.streams.audio[0].codec_context.name == "aac"
        out_packets = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
    assert out_packets == src_packets  # the audio is copied, never re-encoded
    src, dst = read_audio(av_file), read_audio(out)
    assert abs(len(dst) - len(src)) <= 1024
    with MediaReader(out) as r:
        assert r.info.frame_count == 25 and r.info.duration == pytest.approx(1.0, abs=0.05)


def test_odd_size_round_trips_through_the_bitstream(tmp_path):
    src = make_video(tmp_path / "odd.mkv", 177, 99, frames=6, codec="ffv1", pix_fmt="yuv444p")
    encode_file(src, tmp_path / "odd.bin", "x264", options={"crf": 12})
    assert describe(tmp_path / "odd.bin")["params"]["coded_size"] == [178, 100]
    decode_file(tmp_path / "odd.bin", tmp_path / "odd.mkv2.mkv", lossless=True)
    with MediaReader(tmp_path / "odd.mkv2.mkv") as r:
        frames = list(r.frames())
    assert len(frames) == 6 and frames[0].shape == (99, 177, 3)  # padded for coding, cropped back
    originals = moving_frames(177, 99, 6)
    assert min(psnr(a, b) for a, b in zip(originals, frames)) > 33


def test_image_round_trip(tmp_path):
    encode_file(SAMPLES / "coffee.png", tmp_path / "c.bin", "x265")
    res = decode_file(tmp_path / "c.bin", tmp_path / "c.png", reference=SAMPLES / "coffee.png")
    assert res.frames == 1 and res.quality["psnr"] > 30 and res.quality["ms_ssim"] > 0.95


def test_frame_count_mismatch_is_an_error(tmp_path, clip):
    bits = tmp_path / "a.bin"
    encode_file(clip, bits, "x264")
    data = bytearray(bits.read_bytes())
    data[26:30] = (13).to_bytes(4, "little")  # frame count field, then fix the header CRC
    import struct
    import zlib

    params_len = struct.unpack_from("<H", data, 36)[0]
    end = 38 + params_len
    data[end : end + 4] = struct.pack("<I", zlib.crc32(bytes(data[:end])))
    bits.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match="12 frames, its header declares 13"):
        decode_file(bits, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_corrupted_packet_payload_with_valid_crc_is_a_bitstream_error(tmp_path, clip):
    from ncodec.codec.container import ContainerWriter

    bits = tmp_path / "a.bin"
    encode_file(clip, bits, "x264")
    with ContainerReader(bits) as r:
        header, sections = r.header, list(r.sections())
    forged = tmp_path / "forged.bin"
    with ContainerWriter(forged, header) as w:
        for tag, payload in sections:
            w.write(tag, payload[:3] + bytes(len(payload) - 3))  # chunk lengths kept, data zeroed
        w.close()
    with pytest.raises(BitstreamError):
        decode_file(forged, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_default_codec_by_input_kind():
    from ncodec.video import default_codec

    assert default_codec("clip.mp4") == "stdo" and default_codec("holiday.MKV") == "stdo"
    assert default_codec("photo.png") == "mlic" and default_codec("photo.JPG") == "mlic"
