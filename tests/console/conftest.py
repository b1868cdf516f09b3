"""The console as people use it: ``closedloop console serve`` on a ledger holding the test
city, and Debian's Chromium driven by Selenium through Debian's chromium-driver.

A developer without Chromium gets the browser tests skipped, with how to install it; under CI
(env ``CI`` non-empty) a missing browser fails them, like a missing service.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import console_city as sample
import pytest
from console_browser import Browser, Console

from closedloop.streams.ledger.engine import open_engine

SERVE_TIMEOUT_S = 60


@pytest.fixture
def console(ledger_url: str) -> Iterator[Console]:
    """``closedloop console serve`` on a fresh ledger holding the test city."""
    engine = open_engine(ledger_url)
    city = sample.fill(engine)
    env = {**os.environ, "CLOSEDLOOP_ACTIONS_VIA": "ledger"}
    server = subprocess.Popen(
        [sys.executable, "-m", "closedloop.streams.cli", "console", "serve", "--ledger",
         ledger_url, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, text=True)
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], SERVE_TIMEOUT_S)
        line = server.stdout.readline() if ready else ""
        assert "http://" in line, f"the console did not start: {line!r} " + (
            server.stderr.read() if server.poll() is not None and server.stderr else "")
        url = line.split("http://", 1)[1].split("/", 1)[0]
        assert url.startswith("127.0.0.1:")  # this machine only, unless told otherwise
        yield Console(f"http://{url}", engine, city,
                      "postgresql" if ledger_url.startswith("postgresql") else "sqlite")
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        engine.dispose()


def _browser_missing(what: str) -> None:
    message = (f"{what} is not installed: apt-get install -y chromium chromium-driver "
               "(`make test` does it when run as root)")
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of Debian's Chromium and its driver."""
    binary = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if binary is None:
        _browser_missing("chromium")
    if driver is None:
        _browser_missing("chromium-driver")
    assert binary is not None and driver is not None
    return binary, driver


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: Path) -> Iterator[Browser]:
    """A browser whose user prefers Chinese (a Chinese city's command centre)."""
    opened = Browser(chromium, tmp_path / "zh", "zh-CN,zh")
    yield opened
    opened.close()


@pytest.fixture
def english_browser(chromium: tuple[str, str], tmp_path: Path) -> Iterator[Browser]:
    opened = Browser(chromium, tmp_path / "en", "en-US,en")
    yield opened
    opened.close()
