"""Headless Chromium for the web console's browser tests: Debian's chromium and chromedriver, driven by Selenium.

Nothing is downloaded: the driver's path is handed to Selenium in its Service, and with a path there Selenium
skips Selenium Manager (selenium.webdriver.common.driver_finder: "Skipping Selenium Manager; path to ... driver
specified in Service class"), the tool that would otherwise look for, and fetch, a browser and a driver.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from selenium.webdriver import Chrome, ChromeOptions, ChromeService


def _system_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} not found: run `bash scripts/setup` (as root, it installs Debian's chromium and chromium-driver)"
        )
    return path


def start_chromium(width: int, height: int) -> Chrome:
    """A headless Chromium with a `width` x `height` window, fit for root in a container; the caller quits it.
    The page's viewport is shorter than the window: headless keeps room for the browser's bars (143 px)."""
    options = ChromeOptions()
    options.binary_location = _system_binary("chromium")
    for argument in (
        "--headless=new",
        f"--window-size={width},{height}",
        "--no-sandbox",  # root: Chromium's sandbox refuses to run as root
        "--disable-dev-shm-usage",  # a container's /dev/shm may be small: shared memory in /tmp
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(argument)
    # The console's messages (console.* calls, uncaught errors, CSP violations), for console_errors.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return Chrome(options=options, service=ChromeService(executable_path=_system_binary("chromedriver")))


def chromium_session(width: int = 1280, height: int = 800) -> Iterator[Chrome]:
    """start_chromium as a fixture's body (`yield from chromium_session()`): quit however the tests end."""
    driver = start_chromium(width, height)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Chrome) -> list[str]:
    """The messages of the console's SEVERE entries (uncaught errors, failed loads, Content-Security-Policy
    violations) logged since the previous read: chromedriver hands each entry, of any level, out once."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def save_screenshot(driver: Chrome, path: Path) -> None:
    """The viewport as it is now (not the whole page), as a PNG at `path`."""
    path.write_bytes(driver.get_screenshot_as_png())
