"""The rule pages in a real browser: headless Chromium on a real `calcinosis-cds serve`, at a desktop's size and a
phone's, with screenshots (saved in the test's tmp_path)."""

from __future__ import annotations

import pytest

import cards

from .browser import png_size, screenshot, viewport_size
from .test_browser import service_url  # noqa: F401  (the real server process, module-scoped)

RULE = "R05"
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}  # CSS pixels of a common phone


def _check_screenshot(browser, path):
    png = screenshot(browser, path)
    assert path.read_bytes() == png
    assert png_size(png) == viewport_size(browser)
    assert len(png) > 5000  # a rendered page, not a blank one
    return png


@pytest.mark.slow
def test_the_catalogue_and_a_rule_page_in_a_real_browser_and_on_a_phone(browser, service_url, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    title = cards.knowledge().rules[RULE].title
    browser.get(f"{service_url}/rules")
    assert browser.find_element(By.TAG_NAME, "h1").is_displayed()
    link = browser.find_element(By.CSS_SELECTOR, f'a[href="/rules/{RULE}"]')
    assert title in link.text
    _check_screenshot(browser, tmp_path / "rules.png")

    link.click()  # as a clinician would, from the catalogue
    heading = browser.find_element(By.TAG_NAME, "h1")
    assert browser.current_url == f"{service_url}/rules/{RULE}"
    assert heading.is_displayed() and title in heading.text
    assert browser.title.startswith(f"{RULE} {title}")
    assert browser.execute_script("return document.scripts.length") == 0
    font_px = float(browser.execute_script("return getComputedStyle(document.body).fontSize").removesuffix("px"))
    assert font_px >= 16
    _check_screenshot(browser, tmp_path / f"rule-{RULE}.png")

    # The code tables open without JavaScript (<details>): closed at first, shown on a click on their summary.
    group = browser.find_element(By.ID, "value-set-renal-insufficiency")
    table = group.find_element(By.TAG_NAME, "table")
    assert not table.is_displayed()
    group.find_element(By.TAG_NAME, "summary").click()
    assert table.is_displayed() and "N18.4" in table.text

    back = browser.find_element(By.LINK_TEXT, "← All rules")
    back.click()
    assert browser.current_url == f"{service_url}/rules"

    # The same page on a phone (the same browser: one Chromium start is most of this test's time).
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    browser.get(f"{service_url}/rules/{RULE}")
    browser.execute_script("for (const d of document.querySelectorAll('details')) d.open = true;")
    width, scroll_width = browser.execute_script(
        "return [document.documentElement.clientWidth, document.documentElement.scrollWidth]")
    assert width == PHONE["width"]
    assert scroll_width <= width, "the page scrolls sideways on a phone"
    heading = browser.find_element(By.TAG_NAME, "h1")
    assert heading.is_displayed() and cards.knowledge().rules[RULE].title in heading.text
    _check_screenshot(browser, tmp_path / f"rule-{RULE}-phone.png")
