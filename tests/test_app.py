"""The browser app: every API function through gradio_client against the app served on
127.0.0.1 in this test, and end-to-end runs in a real browser (Playwright driving
Debian's Chromium; CI installs it, elsewhere the browser tests skip when it is absent)."""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import SAMPLES, make_video

gradio_client = pytest.importorskip("gradio_client")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    from ncodec.app import web

    port = _free_port()
    demo = web.serve("127.0.0.1", port, concurrency=1, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server, verbose=False)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("app") / "photo.png"
    cv2.imwrite(str(path), cv2.imread(str(SAMPLES / "astronaut.png"))[96:224, 160:320])
    return path


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", width=96, height=64, frames=8)


def _path(value) -> Path:
    """gradio_client returns files as paths (or dicts holding one)."""
    if isinstance(value, dict):
        value = value.get("path") or value.get("video")
    return Path(value)


def test_upscale_image_and_video(client, photo, short_clip):
    (before, after), video, info, result = client.predict(gradio_client.handle_file(str(photo)), 2, api_name="/upscale")
    assert video is None and "→ 320x256" in info
    assert cv2.imread(str(_path(after))).shape == (256, 320, 3) == cv2.imread(str(_path(before))).shape
    _, video, info, result = client.predict(gradio_client.handle_file(str(short_clip)), 2, api_name="/upscale")
    from ncodec.video import probe

    out = probe(_path(video))
    assert (out.width, out.height, out.frame_count) == (192, 128, 8) and "→ 192x128" in info


def test_large_results_get_a_preview(client, photo, monkeypatch):
    """Past PREVIEW_SIDE the sliders show a window (upscale, at 100 %) or a scaled copy
    (restore), never the whole result, which stays whole in the download."""
    from ncodec.app import web

    monkeypatch.setattr(web, "PREVIEW_SIDE", 128)  # the server runs in this process
    (before, after), _, info, result = client.predict(gradio_client.handle_file(str(photo)), 2, api_name="/upscale")
    full, a, b = (cv2.imread(str(_path(p))) for p in (result, after, before))
    assert full.shape == (256, 320, 3) and a.shape == b.shape == (128, 128, 3) and "centre 128x128" in info
    assert np.array_equal(a, full[64:192, 96:224])  # the centre, on the x2 grid
    bicubic = cv2.resize(cv2.imread(str(photo)), (320, 256), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(b, bicubic[64:192, 96:224])  # the same window of the whole picture's bicubic
    (before, after), info, result = client.predict(
        gradio_client.handle_file(str(photo)), "classic", api_name="/restore"
    )
    assert cv2.imread(str(_path(result))).shape == (128, 160, 3) and "full size" in info
    assert cv2.imread(str(_path(after))).shape == (102, 128, 3) == cv2.imread(str(_path(before))).shape


@pytest.mark.parametrize("method", ["classic", "net"])
def test_restore(client, photo, method):
    (before, after), info, result = client.predict(gradio_client.handle_file(str(photo)), method, api_name="/restore")
    assert f"method {method}" in info and cv2.imread(str(_path(after))).shape == (128, 160, 3)


def test_compress_and_decode_image(client, photo):
    mlic, jpeg, webp, table, bits = client.predict(
        gradio_client.handle_file(str(photo)), 1.0, api_name="/compress_image"
    )
    rows = [line.split("|") for line in table.splitlines()[2:]]
    sizes = {r[1].strip(): int(r[2].replace(",", "")) for r in rows}
    assert set(sizes) == {"MLIC", "JPEG", "WEBP"}
    assert sizes["WEBP"] <= sizes["MLIC"] and Path(_path(bits)).stat().st_size == sizes["MLIC"]
    for p in (mlic, jpeg, webp):
        assert cv2.imread(str(_path(p))).shape == (128, 160, 3)
    picture, info = client.predict(gradio_client.handle_file(str(_path(bits))), api_name="/decode_image")
    assert np.array_equal(cv2.imread(str(_path(picture))), cv2.imread(str(_path(mlic)))) and "mlic" in info


def test_encode_and_decode_video(client, short_clip):
    summary, decoded, bits = client.predict(
        gradio_client.handle_file(str(short_clip)), "x264", 10, api_name="/encode_video"
    )
    assert "x264" in summary and "PSNR" in summary and _path(bits).stat().st_size > 0
    clip, info = client.predict(gradio_client.handle_file(str(_path(bits))), api_name="/decode_video")
    assert "8 frames 96x64" in info and _path(clip).exists()


def test_bad_uploads_get_clear_errors(client, tmp_path, photo):
    junk = tmp_path / "notes.png"
    junk.write_text("not a picture")
    with pytest.raises(Exception, match="not an image or video"):
        client.predict(gradio_client.handle_file(str(junk)), 2, api_name="/upscale")
    with pytest.raises(Exception, match="Invalid file type"):  # Gradio's own check of the extension
        client.predict(gradio_client.handle_file(str(photo)), api_name="/decode_image")
    fake = tmp_path / "fake.bin"
    fake.write_bytes(b"NCDC" + bytes(60))
    with pytest.raises(Exception, match="not an ncodec|corrupt|truncated|bitstream"):
        client.predict(gradio_client.handle_file(str(fake)), api_name="/decode_image")
    with pytest.raises(Exception, match="still image"):
        client.predict(gradio_client.handle_file(str(photo)), "x264", 10, api_name="/encode_video")


@pytest.mark.parametrize(
    "api, name, args",
    [
        ("/upscale", "holiday.png", (2,)),
        ("/restore", "holiday.png", ("network",)),
        ("/compress_image", "holiday.png", (1.0,)),
        ("/decode_image", "holiday.bin", ()),
        ("/encode_video", "holiday.mp4", ("x264", 10)),
        ("/decode_video", "holiday.bin", ()),
    ],
)
def test_a_corrupt_upload_is_named_as_uploaded_never_by_a_server_path(client, tmp_path, api, name, args):
    corrupt = tmp_path / name
    corrupt.write_bytes(b"NCDC" + bytes(60) if name.endswith(".bin") else b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(Exception) as raised:
        client.predict(gradio_client.handle_file(str(corrupt)), *args, api_name=api)
    message = str(raised.value)
    assert name in message, message
    assert "/" not in message.replace("kbit/s", ""), message  # no path of the server's (or of the test's)


def test_outputs_stay_in_the_apps_folder(client, photo):
    from ncodec.app import web

    _, _, result = client.predict(gradio_client.handle_file(str(photo)), "classic", api_name="/restore")
    root = web.app_root()
    assert any(root.rglob(Path(_path(result)).name))  # written under the app's own temporary folder


# -- under load ---------------------------------------------------------------------------


def _peak_rss_mb(pid: int) -> float:
    """The process's high-water resident memory (Linux VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


LOAD_CALLS = 10
LOAD_PEAK_MB = 3000  # torch + gradio take ~1 GB idle; queued jobs must not add one picture each


def test_ten_concurrent_calls_complete_with_bounded_memory(tmp_path, photo):
    """The app in its own process (`ncodec app`), ten API calls at once from ten threads:
    every call completes (the queue runs them one at a time), memory stays bounded, an
    oversized upload is refused and the server keeps serving."""
    import subprocess
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ncodec", "app", "--port", str(port), "--max-upload-mb", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url, client = f"http://127.0.0.1:{port}/", None
        deadline = time.monotonic() + 120
        while client is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                client = gradio_client.Client(url, verbose=False)
            except Exception:
                time.sleep(0.5)
        assert client is not None, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no answer"

        def call(i: int):
            if i % 2:
                return client.predict(gradio_client.handle_file(str(photo)), "classic", api_name="/restore")
            return client.predict(gradio_client.handle_file(str(photo)), 2, api_name="/upscale")

        start = time.monotonic()
        with ThreadPoolExecutor(LOAD_CALLS) as pool:
            results = list(pool.map(call, range(LOAD_CALLS)))
        seconds = time.monotonic() - start
        assert len(results) == LOAD_CALLS and all("→" in r[-2] or "classic" in r[-2] for r in results)
        peak = _peak_rss_mb(proc.pid)
        print(f"\n{LOAD_CALLS} concurrent calls in {seconds:.1f} s; server peak RSS {peak:.0f} MB")
        assert peak < LOAD_PEAK_MB

        big = tmp_path / "big.png"  # about 3 MB of noise: over the 1 MB limit
        cv2.imwrite(str(big), np.random.default_rng(0).integers(0, 255, (1000, 1000, 3), dtype=np.uint8))
        with pytest.raises(Exception, match="(?i)too large|size|exceed"):
            client.predict(gradio_client.handle_file(str(big)), 2, api_name="/upscale")
        assert proc.poll() is None
        assert "→" in call(0)[-2]  # still serving
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- a real browser ---------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(server):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium for the browser tests (.ci/run does)")
        pytest.skip("no chromium on this machine (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        page.wait_for_selector("text=ncodec")
        yield page
        browser.close()


def test_browser_upscale(page, photo):
    page.get_by_role("tab", name="Upscale").click()
    page.locator("#upscale-input input[type=file]").set_input_files(str(photo))
    page.locator("#upscale-run").click()
    page.wait_for_selector("#upscale-info :text('320x256')", timeout=120_000)
    assert page.locator("#upscale-slider img").count() >= 1


def test_browser_restore(page, photo):
    page.get_by_role("tab", name="Restore").click()
    page.locator("#restore-input input[type=file]").set_input_files(str(photo))
    page.get_by_label("net").check()  # the trained network (models/weights/rrformer.safetensors)
    page.locator("#restore-run").click()
    page.wait_for_selector("#restore-info :text('method net')", timeout=120_000)
    assert page.locator("#restore-slider img").count() >= 1


def test_browser_compress_image(page, photo):
    page.get_by_role("tab", name="Compress image").click()
    page.locator("#compress-input input[type=file]").set_input_files(str(photo))
    page.locator("#compress-run").click()
    page.wait_for_selector("#compress-table :text('WebP')", timeout=180_000)
    assert "JPEG" in page.locator("#compress-table").inner_text()


def test_browser_video_codec_shows_the_base_layer_beside_the_default_codec(page, short_clip):
    """The default video codec (STDO) with a short budget: the summary names the base
    layer's own size and PSNR next to the codec's."""
    page.get_by_role("tab", name="Video codec").click()
    page.locator("#video-input input[type=file]").set_input_files(str(short_clip))
    page.get_by_label("Time budget of the neural codecs (s)").fill("2")
    page.locator("#video-run").click()
    page.wait_for_selector("#video-info :text('base layer alone')", timeout=300_000)
    text = page.locator("#video-info").inner_text()
    assert text.startswith("stdo:") and re.search(
        r"its av1 (\(reduced-size segments upscaled bilinearly\) )?base layer alone", text
    )
