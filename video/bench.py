"""Rate-distortion benchmark: every codec on the same input, in one process, side by side.

For a clip: each registered codec (``ncodec.codec.registry``) encodes to a real bitstream
file at several quality points; its size is the file's byte length and its quality is
measured on the frames decoded from that file. For a folder of images: the same codecs
code each image as a one-frame stream (x265 = HEVC-intra, the BPG stand-in; av1 =
AV1-intra, the AVIF stand-in), next to JPEG and WebP files from OpenCV.

Writes results.json, results.md (table + BD-rate against the first codec) and rd.png.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ncodec.codec import registry
from ncodec.codec.container import ContainerReader
from ncodec.codec.errors import UsageError

from . import metrics
from .images import IMAGE_SUFFIXES
from .pipeline import encode_file, progress_bar
from .reader import MediaReader
from .writer import VideoWriter

# quality settings swept per codec, from low to high quality
SWEEPS: dict[str, tuple[str, list[int]]] = {
    "x264": ("crf", [37, 32, 27, 22]),
    "x265": ("crf", [39, 34, 29, 24]),
    "av1": ("crf", [54, 46, 38, 30]),
    "stdo": ("crf", [54, 46, 38, 30]),  # its SVT-AV1 base layer at the av1 row's crfs
    "jpeg": ("q", [30, 50, 70, 90]),
    "webp": ("q", [30, 50, 70, 90]),
}
DEFAULT_SWEEP = ("quality", ["low", "medium", "high", "best"])


def _cv2_peer(ext: str, flag: int) -> Callable[[np.ndarray, int], tuple[bytes, np.ndarray]]:
    def code(rgb: np.ndarray, q: int) -> tuple[bytes, np.ndarray]:
        ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [flag, q])
        data = buf.tobytes()
        return data, cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    return code


# image file formats measured as peers (plain files, no ncodec container)
IMAGE_PEERS = {
    "jpeg": _cv2_peer(".jpg", cv2.IMWRITE_JPEG_QUALITY),
    "webp": _cv2_peer(".webp", cv2.IMWRITE_WEBP_QUALITY),
}


class PeakMemory:
    """Peak resident memory above the starting level while the block runs (MiB), sampled
    from /proc every 5 ms so native allocations (encoders, decoders) count too."""

    def __init__(self):
        self.peak_mib: float | None = None

    @staticmethod
    def _rss() -> int | None:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return None

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = self._rss()
            if rss is not None:
                self._max = max(self._max, rss)
            self._stop.wait(0.005)

    def __enter__(self) -> "PeakMemory":
        self._base = self._rss()
        self._max = self._base or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._base is not None:
            self.peak_mib = max(self._max - self._base, 0) / 2**20


def codec_spec(spec: str) -> tuple[str, dict]:
    """``name`` or ``name:key=value[:key=value]`` (e.g. ``mlic:refine=100``): a registered
    codec and encoder options held fixed over its quality sweep (the row keeps the spec).
    UsageError for a malformed spec or an option the codec does not take."""
    name, *pairs = spec.split(":")
    fixed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"--codecs: {spec!r}: options are written name:key=value")
        fixed[key] = int(value) if value.lstrip("-").isdigit() else value
    if name in IMAGE_PEERS:
        if fixed:
            raise UsageError(f"--codecs: {name} takes no options")
        return name, fixed
    registry.get(name).settings(fixed)  # unknown codecs and options, bad values: fail before any work
    return name, fixed


def _jobs(codecs: list[str], points: int) -> list[tuple[str, str, dict, str, list]]:
    """(spec, codec, fixed options, swept key, swept values) per codec spec."""
    jobs = []
    for spec in codecs:
        name, fixed = codec_spec(spec)
        jobs.append((spec, name, fixed, *_settings(name, points)))
    return jobs


def _options(fixed: dict, key: str, value) -> dict:
    return fixed if key == "quality" else fixed | {key: value}


def _settings(codec: str, points: int) -> tuple[str, list]:
    key, values = SWEEPS.get(codec, DEFAULT_SWEEP)
    if points == len(values) or key == "quality":
        return key, values[:points]
    lo, hi = values[0], values[-1]
    return key, [int(round(v)) for v in np.linspace(lo, hi, points)]


def _decode_and_measure(bits: Path, reference_frames, meter: metrics.QualityMeter) -> tuple[int, float]:
    """Decode a bitstream frame by frame, timing only the decoder, measuring each frame."""
    with ContainerReader(bits) as r:
        codec = registry.by_tag(r.header.codec)
        frames = codec.decode(r.sections(*codec.section_tags()), r.header)
        n, seconds = 0, 0.0
        for ref in reference_frames:
            t = time.perf_counter()
            out = next(frames, None)
            seconds += time.perf_counter() - t
            if out is None:
                break
            meter.add(ref, out)
            n += 1
    return n, seconds


def _bench_clip(clip: Path, codecs: list[str], points: int, max_frames: int | None, progress: bool) -> dict:
    with MediaReader(clip) as r:
        info = r.info
    src = clip
    rows = []
    with tempfile.TemporaryDirectory(prefix="ncodec-bench-") as tmp:
        if max_frames:  # cut the clip losslessly once, so every codec sees the same frames
            src = Path(tmp) / "clip.mkv"
            with MediaReader(clip) as r, VideoWriter(src, info.width, info.height, info.fps, lossless=True) as w:
                for i, f in enumerate(r.frames()):
                    if i >= max_frames:
                        break
                    w.write(f)
        jobs = _jobs(codecs, points)
        bar = progress_bar(sum(len(job[-1]) for job in jobs), "bench", progress, unit="point")
        for spec, codec, fixed, key, values in jobs:
            for value in values:
                bits = Path(tmp) / f"{codec}-{value}.bin"
                with PeakMemory() as mem:
                    res = encode_file(
                        src,
                        bits,
                        codec,
                        quality=value if key == "quality" else None,
                        options=_options(fixed, key, value),
                    )
                meter = metrics.QualityMeter()
                with MediaReader(src) as ref:
                    n, dec_seconds = _decode_and_measure(bits, ref.frames(), meter)
                q = meter.result()
                rows.append(
                    {
                        "codec": spec,
                        "setting": f"{key}={value}",
                        "bytes": res.bytes,
                        "frames": n,
                        "kbps": res.kbps,
                        "bpp": res.bpp,
                        "psnr": q["psnr"],
                        "psnr_y": q["psnr_y"],
                        "ms_ssim": q["ms_ssim"],
                        "encode_fps": n / res.seconds,
                        "decode_fps": n / dec_seconds,
                        "encode_peak_mib": mem.peak_mib,
                    }
                )
                bar.update(1)
        bar.close()
    return {
        "input": str(clip),
        "kind": "video",
        "width": info.width,
        "height": info.height,
        "fps": float(info.fps),
        "frames": rows[0]["frames"] if rows else 0,
        "rows": rows,
    }


def _bench_images(folder: Path, codecs: list[str], points: int, progress: bool) -> dict:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UsageError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    pictures = []
    for p in images:
        with MediaReader(p) as r:
            pictures.append((p, next(r.frames())))
    rows = []
    jobs = _jobs(codecs, points)
    bar = progress_bar(sum(len(job[-1]) for job in jobs) * len(images), "bench", progress, unit="image")
    with tempfile.TemporaryDirectory(prefix="ncodec-bench-") as tmp:
        for spec, codec, fixed, key, values in jobs:
            for value in values:
                total_bytes, pixels, meter, enc_s, dec_s, peak = 0, 0, metrics.QualityMeter(), 0.0, 0.0, 0.0
                for path, rgb in pictures:
                    with PeakMemory() as mem:
                        if codec in IMAGE_PEERS:
                            t = time.perf_counter()
                            data, out = IMAGE_PEERS[codec](rgb, value)
                            enc_s += time.perf_counter() - t  # OpenCV codes both ways in one call
                            size = len(data)
                        else:
                            bits = Path(tmp) / "img.bin"
                            res = encode_file(
                                path,
                                bits,
                                codec,
                                quality=value if key == "quality" else None,
                                options=_options(fixed, key, value),
                            )
                            enc_s, size = enc_s + res.seconds, res.bytes
                    peak = max(peak, mem.peak_mib or 0.0)
                    if codec in IMAGE_PEERS:
                        meter.add(rgb, out)
                    else:
                        dec_s += _decode_and_measure(bits, iter([rgb]), meter)[1]
                    total_bytes += size
                    pixels += rgb.shape[0] * rgb.shape[1]
                    bar.update(1)
                q = meter.result()
                rows.append(
                    {
                        "codec": spec,
                        "setting": f"{key}={value}",
                        "bytes": total_bytes,
                        "frames": len(pictures),
                        "kbps": None,
                        "bpp": total_bytes * 8 / pixels,
                        "psnr": q["psnr"],
                        "psnr_y": q["psnr_y"],
                        "ms_ssim": q["ms_ssim"],
                        "encode_fps": len(pictures) / enc_s if enc_s else None,
                        "decode_fps": len(pictures) / dec_s if dec_s else None,
                        "encode_peak_mib": peak,
                    }
                )
    bar.close()
    return {"input": str(folder), "kind": "images", "images": len(pictures), "rows": rows}


def _bd_table(result: dict) -> list[tuple[str, float | None]]:
    rate_key = "kbps" if result["kind"] == "video" else "bpp"
    by_codec: dict[str, list[dict]] = {}
    for row in result["rows"]:
        by_codec.setdefault(row["codec"], []).append(row)
    names = list(by_codec)
    anchor = by_codec[names[0]]
    out = []
    for name in names[1:]:
        test = by_codec[name]
        try:
            bd = metrics.bd_rate(
                [r[rate_key] for r in anchor],
                [r["psnr"] for r in anchor],
                [r[rate_key] for r in test],
                [r["psnr"] for r in test],
            )
        except ValueError:
            bd = None
        out.append((name, bd))
    return out


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _fps(v) -> str:
    """Frames per second to 0.1, slower than one a second to two significant digits (not 0.0)."""
    return _fmt(v, ".1f" if v is None or v >= 1 else ".2g")


def markdown(result: dict, command: str) -> str:
    video = result["kind"] == "video"
    what = (
        f"{result['width']}x{result['height']}, {result['frames']} frames at {result['fps']:g} fps"
        if video
        else f"{result['images']} images"
    )
    lines = [
        f"Input: `{result['input']}` ({what}). Date: {result['date']}. Machine: {result['machine']}.",
        f"Reproduce: `{command}`",
        "",
        "| codec | setting | bytes | "
        + ("kbit/s" if video else "bpp")
        + " | PSNR dB | PSNR-Y dB | MS-SSIM | encode fps | decode fps | encode peak MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        rate = _fmt(r["kbps"], ".1f") if video else _fmt(r["bpp"], ".3f")
        lines.append(
            f"| {r['codec']} | {r['setting']} | {r['bytes']:,} | {rate} | {_fmt(r['psnr'], '.2f')} | "
            f"{_fmt(r['psnr_y'], '.2f')} | {_fmt(r['ms_ssim'], '.4f')} | {_fps(r['encode_fps'])} | "
            f"{_fps(r['decode_fps'])} | {_fmt(r['encode_peak_mib'], '.0f')} |"
        )
    bd = _bd_table(result)
    if bd:
        anchor = result["rows"][0]["codec"]
        lines += ["", f"BD-rate against {anchor} (PSNR, PCHIP; negative = fewer bits for the same quality):", ""]
        lines += ["| codec | BD-rate |", "|---|---:|"]
        lines += [f"| {name} | {_fmt(v, '+.1f')}% |" for name, v in bd]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    video = result["kind"] == "video"
    rate_key, rate_label = ("kbps", "kbit/s") if video else ("bpp", "bits per pixel")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    codecs = list(dict.fromkeys(r["codec"] for r in result["rows"]))
    for codec in codecs:
        rows = sorted((r for r in result["rows"] if r["codec"] == codec), key=lambda r: r[rate_key])
        axes[0].plot([r[rate_key] for r in rows], [r["psnr"] for r in rows], "o-", label=codec)
        if all(r["ms_ssim"] is not None for r in rows):
            axes[1].plot([r[rate_key] for r in rows], [r["ms_ssim"] for r in rows], "o-", label=codec)
    for ax, ylabel in zip(axes, ("PSNR (RGB) dB", "MS-SSIM")):
        ax.set_xlabel(rate_label)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{Path(result['input']).name}: rate-distortion")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(
    source: str | os.PathLike,
    codecs: list[str],
    *,
    points: int = 4,
    out_dir: str | os.PathLike = "bench-out",
    max_frames: int | None = None,
    progress: bool = False,
    command: str | None = None,
) -> str:
    """Benchmark ``codecs`` on a clip or an image folder; write results into ``out_dir``.
    Returns the markdown table."""
    src = Path(source)
    names = [codec_spec(c)[0] for c in codecs]  # malformed specs and unknown names fail before any work
    if points < 2:
        raise UsageError("--points must be at least 2 (BD-rate needs a curve)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        result = _bench_images(src, codecs, points, progress)
    else:
        if any(c in IMAGE_PEERS for c in names):
            raise UsageError(f"{', '.join(IMAGE_PEERS)} are image peers; benchmark them on a folder of images")
        result = _bench_clip(src, codecs, points, max_frames, progress)
    result["date"] = datetime.date.today().isoformat()
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPU threads"
    command = command or f"ncodec bench {source} --codecs {','.join(codecs)} --points {points}" + (
        f" --frames {max_frames}" if max_frames else ""
    )
    result["command"] = command
    table = markdown(result, command)
    save_results(out, result, table)
    plot(result, out / "rd.png")
    return table


def save_results(out_dir: str | os.PathLike, result: dict, table: str) -> None:
    """A benchmark's results.json (everything measured) and results.md (its table)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(table)
