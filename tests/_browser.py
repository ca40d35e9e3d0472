"""Headless Chromium for the report tests, driven by selenium with Debian's chromium-driver.

Nothing is downloaded: the driver is ``/usr/bin/chromedriver`` (or ``$CHROMEDRIVER``), the browser
``chromium`` on PATH (or ``$CHROMIUM``), and selenium's own driver manager is bypassed by naming
both. Without them a test skips on a developer's machine and fails under CI (``$CI`` set), where
``.ci/run`` installs them.

Also a tool: ``python tests/_browser.py PAGE.html OUT.png [WIDTH HEIGHT]`` screenshots a page
(the README's images: ``docs/img/report_batch.png``, ``docs/img/report_run.png``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) executables, or None when either is missing."""
    chromium = shutil.which(os.environ.get("CHROMIUM") or "chromium") or shutil.which("chromium-browser")
    driver = shutil.which(os.environ.get("CHROMEDRIVER") or "chromedriver") or shutil.which("/usr/bin/chromedriver")
    return (chromium, driver) if chromium and driver else None


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver with a throwaway profile; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError("chromium and chromedriver are needed: apt-get install -y chromium chromium-driver")
    binary, driver_path = found
    with tempfile.TemporaryDirectory(prefix="pathgan-chromium-") as profile:
        opts = webdriver.ChromeOptions()
        for flag in FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={profile}")
        opts.add_argument(f"--window-size={width},{height}")
        opts.binary_location = binary
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
        try:
            yield driver
        finally:
            driver.quit()


def screenshot(driver: Any, out: Path, *, full_height: int | None = None, colours: int = 0) -> Path:
    """Save the viewport (or the page up to ``full_height`` px tall) as PNG; with ``colours`` the
    PNG is palette-quantised (a small file for the README)."""
    if full_height:
        page_h = int(driver.execute_script("return document.documentElement.scrollHeight"))
        size = driver.get_window_size()
        driver.set_window_size(size["width"], min(page_h + 140, full_height))
    driver.save_screenshot(str(out))
    if colours:
        from PIL import Image

        with Image.open(out) as img:
            img.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                out, optimize=True)
    return out


if __name__ == "__main__":
    page, png = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    w, h = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (1400, 900)
    with chromium(w, h) as d:
        d.get(page.as_uri())
        screenshot(d, png, colours=256)
    print(png, png.stat().st_size)
