"""`ncodec app`: the browser front end (Gradio Blocks), four tabs over ncodec.video.

Every tab is one plain function (also reachable through Gradio's API under the
``api_name`` given below) that checks its upload, runs the file pipeline into a job
folder of the app's own temporary directory and returns file paths. Long jobs report
progress through the pipelines' tqdm bars (``gr.Progress(track_tqdm=True)``) and run in
Gradio's queue, one at a time by default: the two CPU cores are the limit.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import gradio as gr
import numpy as np

from ncodec.codec import registry
from ncodec.codec.errors import NcodecError
from ncodec.codec.options import Option
from ncodec.video.pipeline import DEFAULT_IMAGE_CODEC as IMAGE_CODEC
from ncodec.video.pipeline import DEFAULT_VIDEO_CODEC

MAX_UPLOAD = "300mb"
MAX_IMAGE_PIXELS = 7680 * 4320 * 2  # 8K photos and a little more
MAX_VIDEO_SECONDS = 20.0  # videos are CPU-heavy here: keep a web job within minutes
MAX_VIDEO_PIXELS = 1920 * 1080
MAX_DECODED_VIDEO_PIXELS = MAX_VIDEO_PIXELS * 60 * 60  # an uploaded .bin: a minute of 1080p60 at most
VIDEO_BUDGET, MAX_VIDEO_BUDGET = 30.0, 600.0  # seconds a neural video encode may train: a web job stays in minutes
# The before/after sliders show at most this many pixels a side: a 6000-px photo upscaled x4
# is 24000 px wide, more than a browser tab should decode twice. The download is always whole.
PREVIEW_SIDE = 2048

_ROOT: Path | None = None


def app_root() -> Path:
    """The app's own temporary folder: uploads (Gradio's cache) and job outputs live here only."""
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="ncodec-app-"))
        atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)  # nothing is left behind
    return _ROOT


def _job() -> Path:
    jobs = app_root() / "jobs"
    jobs.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(dir=jobs))


def video_codecs() -> list[str]:
    """The registry's video codecs, for the Video codec tab."""
    return [name for name in registry.names() if registry.get(name).media == "video"]


def app_options(codec: str) -> dict[str, Option]:
    """The options of ``codec`` that the app shows a widget for (``Option.in_app``)."""
    return {o.name: o for o in registry.get(codec).options if o.in_app}


def _shared_app_option(codecs: list[str], name: str) -> Option:
    """The one declaration of option ``name`` that the ``codecs`` offering it share."""
    found = {app_options(c)[name] for c in codecs if name in app_options(c)}
    if len(found) != 1:
        raise RuntimeError(f"the app needs one declaration of {name!r}, found {len(found)}")
    return found.pop()


def _number_widget(option: Option, label: str, **kwargs):
    """A slider (bounded numbers) for an option, from its declaration."""
    return gr.Slider(option.low, option.high, value=option.default, label=label, info=option.help, **kwargs)


def _without_server_paths(message: str, paths=()) -> str:
    """``message`` as the user may see it: each of ``paths`` (an upload, a job's files), and
    anything else under the app's folder or the system's temporary folder, becomes the
    file's own name (an upload keeps the name it was uploaded with)."""
    for path in sorted((str(p) for p in paths if p), key=len, reverse=True):
        message = message.replace(path, Path(path).name)
    for root in {str(app_root()), tempfile.gettempdir()}:
        message = re.sub(re.escape(root) + r"[^\s'\"()]*", lambda m: Path(m.group()).name, message)
    return message


def _fail(message: str, paths=()):
    raise gr.Error(_without_server_paths(message, paths), print_exception=False)


def _named_errors(image: gr.Image) -> gr.Image:
    """``image`` (an upload box) whose unreadable uploads fail with the name they were
    uploaded with: Gradio's own message for a picture it cannot open carries the server's path."""
    preprocess = image.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except Exception:
            name = getattr(payload, "orig_name", None) or Path(getattr(payload, "path", None) or "the upload").name
            _fail(f"{name} is not an image ncodec can read")

    image.preprocess = checked
    return image


def _read_upload(path: str | None, read, missing: str, what: str):
    """``read(path)`` of an upload, failing with ``missing`` when there is none and naming the
    upload (never its server path) when ``read`` cannot make sense of it."""
    if not path:
        _fail(missing)
    try:
        return read(path)
    except NcodecError as e:
        _fail(f"{Path(path).name} is not {what} ncodec can read ({e})", [path])


def _media(path: str | None, kind: str | None = None):
    """MediaInfo of an upload, refusing what is missing, not media, of the wrong kind or too large."""
    from ncodec.video import probe

    info = _read_upload(path, probe, "upload a file first", "an image or video")
    if kind == "image" and not info.is_image:
        _fail(f"{Path(path).name} is a video; this tab takes a photo")
    if kind == "video" and info.is_image:
        _fail(f"{Path(path).name} is a still image; this tab takes a video")
    if info.is_image and info.width * info.height > MAX_IMAGE_PIXELS:
        _fail(f"{info.width}x{info.height} is over the app's limit of {MAX_IMAGE_PIXELS:,} pixels")
    if not info.is_image:
        if info.width * info.height > MAX_VIDEO_PIXELS:
            _fail(f"{info.width}x{info.height} video is over the app's limit of 1920x1080")
        if (info.duration or 0) > MAX_VIDEO_SECONDS:
            _fail(f"the video lasts {info.duration:.0f} s; the app takes at most {MAX_VIDEO_SECONDS:.0f} s")
    return info


def _bitstream(path: str | None) -> dict:
    """What ``describe`` says of an uploaded .bin, refusing what is missing or not an ncodec bitstream."""
    from ncodec.video import describe

    info = _read_upload(path, describe, "upload a .bin file first", "an ncodec bitstream")
    if info.get("kind") != "ncodec bitstream":
        _fail(f"{Path(path).name} is not an ncodec bitstream")
    return info


def _run(fn, *args, **kwargs):
    """Call a pipeline on an upload (the first argument); its one-line errors become the
    page's error message, which names the upload and every file by its own name."""
    try:
        return fn(*args, **kwargs)
    except NcodecError as e:
        name, message = Path(args[0]).name, str(e)
        _fail(
            message if name in message else f"{name}: {message}",
            [a for a in (*args, *kwargs.values()) if isinstance(a, (str, Path))],
        )


def upscale(path: str, scale: int, progress=gr.Progress(track_tqdm=True)):
    """Upscale an image or a video. Returns (before/after pair for images or None, the
    video for videos or None, a summary, the result file)."""
    from ncodec.video.upscale import upscale_file

    info = _media(path)
    scale = int(scale)
    suffix = ".png" if info.is_image else ".mp4"
    out = _job() / f"{Path(path).stem}_x{scale}{suffix}"
    result = _run(upscale_file, path, out, scale, progress=True)
    summary = f"{info.width}x{info.height} → {result.width}x{result.height} in {result.seconds:.1f} s"
    if not info.is_image:
        return None, str(out), summary, str(out)
    before, after, window = _upscale_preview(path, out, scale, result.width, result.height)
    note = " (left: bicubic, right: ESPCN"
    if window:
        note += f"; the slider shows the centre {window} at 100 %, the download is the whole picture"
    return (str(before), str(after)), None, summary + note + ")", str(out)


def _upscale_preview(src: str, result: Path, scale: int, width: int, height: int) -> tuple[Path, Path, str]:
    """Bicubic and ESPCN pictures for the slider: the whole result when it fits PREVIEW_SIDE,
    else its centre window at full size (so the detail SR adds stays visible), cut on the
    scale's grid; the bicubic side is made from just that part of the input. Returns
    (before, after, the window as WxH or "" for the whole picture)."""
    rgb = cv2.imread(src, cv2.IMREAD_COLOR)
    before = result.with_name(f"{result.stem}_bicubic.png")
    w, h = min(width, PREVIEW_SIDE) // scale, min(height, PREVIEW_SIDE) // scale  # input pixels
    if (w * scale, h * scale) == (width, height):
        cv2.imwrite(str(before), cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC))
        return before, result, ""
    x0, y0, m = (rgb.shape[1] - w) // 2, (rgb.shape[0] - h) // 2, 4  # m: bicubic support, cut off below
    xa, ya = max(x0 - m, 0), max(y0 - m, 0)
    part = rgb[ya : y0 + h + m, xa : x0 + w + m]
    big = cv2.resize(part, (part.shape[1] * scale, part.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
    top, left = (y0 - ya) * scale, (x0 - xa) * scale
    cv2.imwrite(str(before), big[top : top + h * scale, left : left + w * scale])
    after = result.with_name(f"{result.stem}_preview.png")
    full = cv2.imread(str(result), cv2.IMREAD_COLOR)
    cv2.imwrite(str(after), full[y0 * scale : (y0 + h) * scale, x0 * scale : (x0 + w) * scale])
    return before, after, f"{w * scale}x{h * scale}"


def restore(path: str, method: str, progress=gr.Progress(track_tqdm=True)):
    """Remove reflections from a photo. Returns (before/after pair, summary, result file)."""
    from ncodec.video.dereflect import dereflect_file

    _media(path, "image")
    out = _job() / f"{Path(path).stem}_restored.png"
    result = _run(dereflect_file, path, out, method=method, progress=True)
    info = f"{result.width}x{result.height}, method {result.method}, {result.seconds:.1f} s"
    if max(result.width, result.height) <= PREVIEW_SIDE:
        return (path, str(out)), info, str(out)
    # a reflection is a whole-picture matter: the slider shows both pictures scaled down
    pair = [
        _scaled_preview(p, out.with_name(f"{out.stem}_{side}.jpg")) for p, side in ((path, "before"), (out, "after"))
    ]
    return tuple(pair), info + f" (the slider shows it at {PREVIEW_SIDE} px, the download is full size)", str(out)


def _scaled_preview(src: str | Path, dst: Path) -> str:
    """``src`` shrunk to fit PREVIEW_SIDE, as a JPEG (quick to send and to decode)."""
    rgb = cv2.imread(str(src), cv2.IMREAD_COLOR)
    f = PREVIEW_SIDE / max(rgb.shape[:2])
    size = (max(1, round(rgb.shape[1] * f)), max(1, round(rgb.shape[0] * f)))
    cv2.imwrite(str(dst), cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return str(dst)


def _same_size_peer(rgb: np.ndarray, codec: str, budget: int) -> tuple[bytes, np.ndarray, int]:
    """The classical peer at the highest quality whose file is at most ``budget`` bytes
    (its smallest, q=1, when none is)."""
    from ncodec.video.bench import IMAGE_PEERS

    lo, hi, best = 1, 100, None
    while lo <= hi:  # file size grows with the quality setting
        q = (lo + hi) // 2
        data, out = IMAGE_PEERS[codec](rgb, q)
        if len(data) <= budget:
            best, lo = (data, out, q), q + 1
        else:
            hi = q - 1
    return best or (*IMAGE_PEERS[codec](rgb, 1), 1)


def compress_image(path: str, level: float, progress=gr.Progress(track_tqdm=True)):
    """MLIC at ``level`` next to JPEG and WebP at the same byte size. Returns (MLIC image,
    JPEG image, WebP image, a table, the .bin)."""
    from ncodec.video import decode_file, encode_file, metrics

    info = _media(path, "image")
    job = _job()
    bits = job / f"{Path(path).stem}.bin"
    mlic_png = job / "mlic.png"
    start = time.perf_counter()
    enc = _run(encode_file, path, bits, IMAGE_CODEC, options={"level": level}, progress=True)
    _run(decode_file, bits, mlic_png)
    seconds = time.perf_counter() - start
    rgb = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    pixels = info.width * info.height
    rows = [
        (
            "MLIC",
            enc.bytes,
            metrics.psnr(rgb, cv2.cvtColor(cv2.imread(str(mlic_png)), cv2.COLOR_BGR2RGB)),
            f"level {float(level):g}, {seconds:.1f} s",
        )
    ]
    paths = [str(mlic_png)]
    for codec in ("jpeg", "webp"):
        data, out, q = _same_size_peer(rgb, codec, enc.bytes)
        peer_png = job / f"{codec}.png"
        cv2.imwrite(str(peer_png), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        rows.append((codec.upper(), len(data), metrics.psnr(rgb, out), f"quality {q}"))
        paths.append(str(peer_png))
    table = "| codec | bytes | bpp | PSNR dB | setting |\n|---|---:|---:|---:|---|\n" + "\n".join(
        f"| {name} | {size:,} | {size * 8 / pixels:.3f} | {psnr:.2f} | {setting} |"
        for name, size, psnr, setting in rows
    )
    return *paths, table, str(bits)


def decode_image(path: str, progress=gr.Progress(track_tqdm=True)):
    """Decode an uploaded ncodec image bitstream. Returns (the picture, a summary)."""
    from ncodec.video import decode_file

    info = _bitstream(path)
    if info.get("frame_count") != 1:
        _fail(f"{Path(path).name} is not an ncodec image bitstream")
    out = _job() / f"{Path(path).stem}.png"
    result = _run(decode_file, path, out, max_pixels=MAX_IMAGE_PIXELS)
    return str(out), f"{info['width']}x{info['height']} ({info['codec']}), decoded in {result.seconds:.1f} s"


def encode_video(path: str, codec: str, budget: float, progress=gr.Progress(track_tqdm=True)):
    """Encode a short clip. Returns (a summary, the decoded clip, the .bin)."""
    from ncodec.video import decode_file, encode_file

    _media(path, "video")
    if codec not in video_codecs():
        _fail(f"codec must be one of {', '.join(video_codecs())}")
    job = _job()
    bits, back = job / f"{Path(path).stem}.bin", job / "decoded.mp4"
    options = {"time_budget": budget} if "time_budget" in app_options(codec) else {}
    enc = _run(encode_file, path, bits, codec, options=options, progress=True)
    dec = _run(decode_file, bits, back, reference=path, crf=16)
    q = dec.quality or {}
    summary = (
        f"{codec}: {enc.bytes:,} bytes, {enc.kbps:.0f} kbit/s, PSNR {q.get('psnr', float('nan')):.2f} dB, "
        f"MS-SSIM {q.get('ms_ssim', float('nan')):.4f}; encoded in {enc.seconds:.1f} s"
    )
    if dec.base:  # a layered codec: what its classical base layer alone gives at nearly the same size
        b = dec.base
        summary += (
            f"\n\nits {b['codec']} base layer alone: {b['bytes']:,} bytes, PSNR {b['psnr']:.2f} dB, "
            f"MS-SSIM {b['ms_ssim']:.4f}"
        )
    return summary, str(back), str(bits)


def decode_video(path: str, progress=gr.Progress(track_tqdm=True)):
    """Decode an uploaded ncodec video bitstream. Returns (the clip, a summary)."""
    from ncodec.video import decode_file

    info = _bitstream(path)
    out = _job() / f"{Path(path).stem}.mp4"
    result = _run(decode_file, path, out, crf=16, max_pixels=MAX_DECODED_VIDEO_PIXELS)
    return str(
        out
    ), f"{info['frame_count']} frames {info['width']}x{info['height']} ({info['codec']}) in {result.seconds:.1f} s"


def build():
    """The Blocks app (not launched)."""
    with gr.Blocks(title="ncodec") as demo:
        gr.Markdown("# ncodec\nNeural upscaling, reflection removal and compression, on this machine.")
        with gr.Tab("Upscale"):
            with gr.Row():
                up_in = gr.File(label="Image or video", file_types=["image", "video"], elem_id="upscale-input")
                up_scale = gr.Radio([2, 3, 4], value=2, label="Scale")
            up_go = gr.Button("Upscale", variant="primary", elem_id="upscale-run")
            up_slider = gr.ImageSlider(label="Before / after", elem_id="upscale-slider")
            up_video = gr.Video(label="Upscaled video")
            up_info = gr.Markdown(elem_id="upscale-info")
            up_file = gr.File(label="Download")
            up_go.click(upscale, [up_in, up_scale], [up_slider, up_video, up_info, up_file], api_name="upscale")
        with gr.Tab("Restore"):
            with gr.Row():
                re_in = _named_errors(gr.Image(label="Photo through glass", type="filepath", elem_id="restore-input"))
                re_method = gr.Radio(["auto", "net", "classic"], value="auto", label="Method")
            re_go = gr.Button("Remove reflections", variant="primary", elem_id="restore-run")
            re_slider = gr.ImageSlider(label="Before / after", elem_id="restore-slider")
            re_info = gr.Markdown(elem_id="restore-info")
            re_file = gr.File(label="Download")
            re_go.click(restore, [re_in, re_method], [re_slider, re_info, re_file], api_name="restore")
        with gr.Tab("Compress image"):
            with gr.Row():
                ci_in = _named_errors(gr.Image(label="Photo", type="filepath", elem_id="compress-input"))
                ci_level = _number_widget(app_options(IMAGE_CODEC)["level"], "MLIC rate level", step=0.25)
            ci_go = gr.Button("Compress", variant="primary", elem_id="compress-run")
            with gr.Row():
                ci_mlic, ci_jpeg, ci_webp = (gr.Image(label=n, type="filepath") for n in ("MLIC", "JPEG", "WebP"))
            ci_table = gr.Markdown(elem_id="compress-table")
            ci_bits = gr.File(label="MLIC bitstream (.bin)")
            ci_go.click(
                compress_image,
                [ci_in, ci_level],
                [ci_mlic, ci_jpeg, ci_webp, ci_table, ci_bits],
                api_name="compress_image",
            )
            gr.Markdown("### Decode an image bitstream")
            di_in = gr.File(label=".bin", file_types=[".bin"])
            di_go = gr.Button("Decode")
            di_out, di_info = gr.Image(label="Decoded", type="filepath"), gr.Markdown()
            di_go.click(decode_image, [di_in], [di_out, di_info], api_name="decode_image")
        with gr.Tab("Video codec"):
            with gr.Row():
                vc_in = gr.Video(label=f"Clip (at most {MAX_VIDEO_SECONDS:.0f} s, 1080p)", elem_id="video-input")
                with gr.Column():
                    vc_codec = gr.Dropdown(video_codecs(), value=DEFAULT_VIDEO_CODEC, label="Codec")
                    budget = _shared_app_option(video_codecs(), "time_budget")
                    vc_budget = gr.Number(
                        value=VIDEO_BUDGET,
                        label="Time budget of the neural codecs (s)",
                        info=budget.help,
                        minimum=budget.low,
                        maximum=MAX_VIDEO_BUDGET,
                    )
            vc_go = gr.Button("Encode", variant="primary", elem_id="video-run")
            vc_info = gr.Markdown(elem_id="video-info")
            vc_out, vc_bits = gr.Video(label="Decoded"), gr.File(label="Bitstream (.bin)")
            vc_go.click(encode_video, [vc_in, vc_codec, vc_budget], [vc_info, vc_out, vc_bits], api_name="encode_video")
            gr.Markdown("### Decode a video bitstream")
            dv_in = gr.File(label=".bin", file_types=[".bin"])
            dv_go = gr.Button("Decode")
            dv_out, dv_info = gr.Video(label="Decoded"), gr.Markdown()
            dv_go.click(decode_video, [dv_in], [dv_out, dv_info], api_name="decode_video")
    return demo


def serve(
    host: str = "127.0.0.1", port: int = 7860, concurrency: int = 1, block: bool = True, max_upload: str = MAX_UPLOAD
):
    """Build and launch the app; uploads and results stay in the app's temporary folder.
    Jobs beyond ``concurrency`` wait in the queue (at most 32 waiting; more are refused)."""
    root = app_root()
    os.environ["GRADIO_TEMP_DIR"] = str(root / "uploads")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build()
    demo.queue(default_concurrency_limit=concurrency, max_size=32)
    demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=max_upload,
        allowed_paths=[str(root)],
        prevent_thread_lock=not block,
        quiet=True,
        show_error=True,
    )
    return demo
