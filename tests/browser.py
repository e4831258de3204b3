"""A real browser for tests: headless Chromium (Debian's chromium and chromium-driver) driven with selenium.

    from tests.browser import screenshot

    def test_a_page(browser, tmp_path):            # `browser` is a selenium WebDriver (fixture, in conftest)
        browser.get(f"{base}/some/page")           # base: a server_process on 127.0.0.1 (tests/_processes.py)
        assert "expected text" in browser.page_source
        png = screenshot(browser, tmp_path / "page.png")   # PNG bytes, checked and saved
        assert png_size(png) == viewport_size(browser)

The `browser` fixture starts a new Chromium with an empty profile for each test; `headless_chromium()` is the same as
a context manager, for a browser shared by a module (a module-scoped fixture of your own). When chromium or
chromedriver is missing the test skips with the reason (CI installs them: .ci/install-system-packages).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

# As root (CI) Chromium needs --no-sandbox. The machine's network is closed: without the background-networking,
# component-update and sync flags Chromium opens connections to Google's hosts at every start, which are refused
# and slow it down; --disable-dev-shm-usage because /dev/shm is small in containers and a full one crashes tabs.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WINDOW_SIZE = (1280, 900)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _find(candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        found = candidate if os.path.isabs(candidate) and os.access(candidate, os.X_OK) else shutil.which(candidate)
        if found:
            return found
    return None


def chromium_paths() -> tuple[str, str]:
    """(chromium, chromedriver), or skip the test saying which is missing."""
    chromium = _find(("/usr/bin/chromium", "chromium", "chromium-browser"))
    driver = _find(("/usr/bin/chromedriver", "chromedriver"))
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if path is None]
    if missing:
        pytest.skip(f"real-browser test needs {' and '.join(missing)} (Debian packages chromium, chromium-driver; "
                    f".ci/install-system-packages installs them)")
    return chromium, driver


@contextlib.contextmanager
def headless_chromium(window_size: tuple[int, int] = WINDOW_SIZE, page_load_timeout: float = 30.0) -> Iterator:
    """A selenium WebDriver for a new headless Chromium with an empty profile; quit and removed on exit."""
    chromium, driver_path = chromium_paths()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the test extras) is not installed")
    from selenium.common.exceptions import WebDriverException

    with tempfile.TemporaryDirectory(prefix="test-chromium-", ignore_cleanup_errors=True) as scratch:
        options = webdriver.ChromeOptions()
        # Given the binary and the driver, selenium never runs Selenium Manager (which would look for downloads).
        options.binary_location = chromium
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={Path(scratch) / 'profile'}")
        options.add_argument(f"--window-size={window_size[0]},{window_size[1]}")
        log = Path(scratch) / "chromedriver.log"
        service = webdriver.ChromeService(executable_path=driver_path, log_output=str(log))
        try:
            driver = webdriver.Chrome(options=options, service=service)
        except WebDriverException as error:
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"headless Chromium did not start: {error.msg}\n{detail}") from None
        try:
            driver.set_page_load_timeout(page_load_timeout)
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def browser():
    """A new headless Chromium (selenium WebDriver) for one test; skips when chromium or chromedriver is missing."""
    with headless_chromium() as driver:
        yield driver


def screenshot(driver, path: Path | None = None) -> bytes:
    """The visible page as PNG bytes (checked to be a PNG), also written to `path` when given."""
    png = driver.get_screenshot_as_png()
    if not png.startswith(PNG_SIGNATURE):
        raise AssertionError(f"the screenshot is not a PNG: {png[:16]!r}")
    if path is not None:
        Path(path).write_bytes(png)
    return png


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, which the PNG format puts first."""
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def viewport_size(driver) -> tuple[int, int]:
    """The page's viewport in device pixels: the size of what `screenshot` captures."""
    width, height, ratio = driver.execute_script(
        "return [window.innerWidth, window.innerHeight, window.devicePixelRatio]")
    return round(width * ratio), round(height * ratio)
