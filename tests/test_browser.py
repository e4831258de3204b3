"""The service as a person's browser sees it: `calcinosis-cds serve` on loopback, loaded in headless Chromium."""

import json
import os
import sys
from pathlib import Path

import pytest

from cds_service.service.discovery import services

from ._processes import free_port, server_process
from .browser import png_size, screenshot, viewport_size


@pytest.fixture(scope="module")
def service_url(tmp_path_factory):
    """`calcinosis-cds serve` with its development defaults (no CDS_* settings from the caller's environment)."""
    installed = Path(sys.executable).with_name("calcinosis-cds")
    command = [str(installed)] if installed.exists() else [sys.executable, "-m", "cds_service.service.cli"]
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("CDS_")}
    env["CDS_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))  # not ./data of the working tree
    base = f"http://127.0.0.1:{port}"
    with server_process([*command, "serve", "--host", "127.0.0.1", "--port", str(port)], f"{base}/healthz",
                        name="calcinosis-cds serve", env=env):
        yield base


@pytest.mark.slow
def test_the_discovery_page_in_a_real_browser(browser, service_url, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{service_url}/cds-services")
    source = browser.page_source
    for service_id in services():
        assert service_id in source
    # Chromium shows a JSON answer as text in a <pre>: it is the discovery document, whole.
    shown = json.loads(browser.find_element(By.TAG_NAME, "pre").text)
    assert [s["id"] for s in shown["services"]] == list(services())

    png = screenshot(browser, tmp_path / "cds-services.png")
    assert (tmp_path / "cds-services.png").read_bytes() == png
    assert png_size(png) == viewport_size(browser)
    assert len(png) > 1000
