"""Screenshots of the built site as a reader sees it, in headless Chromium.

Run after ``mkdocs build`` (``python docs/screenshots.py [--site site] [--out docs/img/site]``):
serves the built site on a loopback port, opens each page in Debian's ``chromium`` through
its ``chromedriver`` (selenium), and writes one PNG per view: the home page, a how-to page,
an API page and the CLI reference at 1280 px, and the home page at a phone's 390 px.
``--full`` captures whole pages instead of the first screen (for checking, not for keeping).
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import shutil
import threading
from pathlib import Path

#: (file name, page path, window width, window height)
VIEWS = (
    ("home.png", "", 1280, 900),
    ("howto-audit-nnunet.png", "how-to/audit-nnunet/", 1280, 900),
    ("api-corrupt.png", "reference/api/corrupt/", 1280, 900),
    ("cli-reference.png", "reference/cli/", 1280, 900),
    ("home-narrow.png", "", 390, 844),
    ("results-raters.png", "results/raters/", 1280, 900),
)


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """The built site on 127.0.0.1 (a free port), in a daemon thread."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def browser(width: int, height: int):  # noqa: ANN201 - selenium's driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    return webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))


def shoot(driver, url: str, path: Path, full: bool) -> None:  # noqa: ANN001
    driver.get(url)
    driver.execute_script("return document.fonts && document.fonts.ready")
    if full:
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics["cssContentSize"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": size["width"],
                                                    "height": min(size["height"], 12000), "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
    else:
        driver.save_screenshot(str(path))
    _shrink(path)


def _shrink(path: Path) -> None:
    """A 128-colour palette PNG: a third of the bytes, the text as legible."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--site", type=Path, default=Path("site"))
    ap.add_argument("--out", type=Path, default=Path("docs/img/site"))
    ap.add_argument("--full", action="store_true", help="whole pages, not the first screen")
    ap.add_argument("--only", nargs="*", help="page paths to shoot instead of the default views")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    server, base = serve(args.site)
    views = VIEWS if not args.only else [
        ((p.strip("/").replace("/", "-") or "home") + ".png", p, 1280, 900) for p in args.only]
    try:
        for name, page, width, height in views:
            driver = browser(max(width, 500), height)
            if width < 500:  # a desktop window is at least 500 px wide: emulate a phone's screen
                driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                    "width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
            try:
                shoot(driver, base + page, args.out / name, args.full)
            finally:
                driver.quit()
            print(args.out / name)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
