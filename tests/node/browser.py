"""A headless Chromium for the dashboard's browser tests (selenium with Debian's `chromium` and `chromium-driver`).

Where the browser cannot run here (no `chromium`, no `chromedriver`, no selenium) a test that needs it is
skipped with the reason and what to install; with UOC_REQUIRE_BROWSER=1 (set by .ci/run, which installs
both) it fails instead, so CI always runs it.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_BROWSER = "UOC_REQUIRE_BROWSER"
CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"


def find_browser() -> tuple[str | None, str | None, str | None]:
    """(chromium's path, chromedriver's path, why they cannot be used here or None)."""
    chromium = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = shutil.which(DRIVER)
    missing = [what for what, found in (("chromium", chromium), ("chromium-driver", driver)) if not found]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        return chromium, driver, f"missing {', '.join(missing)} (apt-get install chromium chromium-driver)"
    return chromium, driver, None


def open_browser(width: int = 1400, height: int = 1000):
    """A headless Chromium driven by selenium (`--no-sandbox` as root); skip (or fail with UOC_REQUIRE_BROWSER=1)
    when it cannot run here."""
    chromium, driver, refusal = find_browser()
    if refusal is not None:
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{REQUIRE_BROWSER}=1 but the browser cannot run: {refusal}", pytrace=False)
        pytest.skip(f"no headless browser: {refusal}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium or ""
    for argument in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver or DRIVER), options=options)


__all__ = ["REQUIRE_BROWSER", "find_browser", "open_browser"]
