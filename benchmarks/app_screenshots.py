"""Screenshots of the web app's four tabs for the README, each after a real run.

python benchmarks/app_screenshots.py --out docs
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
from pathlib import Path

import cv2

from ncodec.app import web

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = web.serve("127.0.0.1", port, block=False)
    tmp = Path(tempfile.mkdtemp())
    photo = tmp / "astronaut.png"
    cv2.imwrite(str(photo), cv2.imread(str(SAMPLES / "astronaut.png"))[64:320, 96:416])
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("text=ncodec")
        page.locator("#upscale-input input[type=file]").set_input_files(str(photo))
        page.locator("#upscale-run").click()
        page.wait_for_selector("#upscale-info :text('→')", timeout=300_000)
        page.screenshot(path=f"{args.out}/app_upscale.jpg", full_page=True, type="jpeg", quality=80)
        page.get_by_role("tab", name="Restore").click()
        page.locator("#restore-input input[type=file]").set_input_files(str(photo))
        page.locator("#restore-run").click()
        page.wait_for_selector("#restore-info :text('method')", timeout=300_000)
        page.screenshot(path=f"{args.out}/app_restore.jpg", full_page=True, type="jpeg", quality=80)
        page.get_by_role("tab", name="Compress image").click()
        page.locator("#compress-input input[type=file]").set_input_files(str(photo))
        page.locator("#compress-run").click()
        page.wait_for_selector("#compress-table :text('WEBP')", timeout=300_000)
        page.screenshot(path=f"{args.out}/app_compress.jpg", full_page=True, type="jpeg", quality=80)
        page.get_by_role("tab", name="Video codec").click()
        page.screenshot(path=f"{args.out}/app_video.jpg", full_page=True, type="jpeg", quality=80)
        browser.close()
    demo.close()


if __name__ == "__main__":
    main()
