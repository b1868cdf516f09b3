"""The console's browser tests' helpers: the console under test and a headless Chromium
(Debian's) driven by Selenium through Debian's chromium-driver."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import console_city as sample
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
DESKTOP = (1366, 900)
PHONE = (390, 844)
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


@dataclass
class Console:
    url: str  # http://127.0.0.1:PORT
    ledger: Engine
    city: sample.City
    database: str  # sqlite or postgresql


class Browser:
    """A headless Chromium with a fresh profile; ``lang`` is its Accept-Language."""

    def __init__(self, paths: tuple[str, str], profile: Path, lang: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = paths[0]
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile / 'profile'}")
        options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
        options.add_argument(f"--lang={lang.split(',')[0]}")  # its own words: date fields
        options.add_experimental_option("prefs", {"intl.accept_languages": lang})
        self.overflow = 0
        self.downloads = profile / "downloads"
        self.downloads.mkdir(parents=True)
        self.driver = webdriver.Chrome(options=options, service=Service(paths[1]))
        self.driver.set_page_load_timeout(60)
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(self.downloads)})

    def go(self, url: str) -> None:
        self.driver.get(url)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, css: str = "main") -> str:
        return str(self.find(css).text)

    def sign_in(self, base: str, name: str, password: str = sample.PASSWORD) -> None:
        self.go(f"{base}/login")
        self.find("#username").send_keys(name)
        self.find("#password").send_keys(password)
        self.find(".login button[type=submit]").click()
        self.wait_for(lambda: "/login" not in self.driver.current_url)

    def wait_for(self, condition: Any, seconds: float = 20) -> Any:
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.wait import WebDriverWait

        # an element of the page being left, or of the next one not there yet: look again
        return WebDriverWait(self.driver, seconds, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException)).until(
                lambda _: condition())

    def screenshot(self, name: str, size: tuple[int, int]) -> Path:
        """The whole page at ``size`` (width, height of the window) as a PNG; how far the
        page is wider than the window at that size is left in ``overflow``."""
        width, height = size
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1,
            "mobile": width < 600})
        try:
            self.overflow = int(self.driver.execute_script(
                "return document.documentElement.scrollWidth")) - width
            metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
            content = metrics["cssContentSize"]
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": max(width, content["width"]),
                         "height": max(height, content["height"]), "scale": 1}})
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        self.driver.quit()
