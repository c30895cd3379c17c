"""Headless Chromium for the browser tests: Debian's `chromium` driven through its
`chromium-driver` (scripts/services.sh tools installs both; nothing is downloaded at run time).
The browser resolves no host but 127.0.0.1 and localhost: pages are tested as if offline.

`log_in` signs in through the admin's own form; `screenshot` keeps a picture of the page under
test-artifacts/ (gitignored) and prints where.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@contextmanager
def chromium(width: int = 1100, height: int = 640) -> Iterator[WebDriver]:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.fail("chromium or chromium-driver is missing: run `scripts/services.sh tools` (as root)")
    options = Options()
    options.binary_location = binary
    # --no-sandbox: the tests run as root on CI, where Chromium's sandbox refuses to start.
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        # Offline: every host but this machine's is unknown, so a page that needs the internet
        # (a CDN, say) fails here as it would on a machine without it.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    browser.implicitly_wait(5)
    try:
        yield browser
    finally:
        browser.quit()


def log_in(browser: WebDriver, base_url: str, username: str, password: str, next_path: str) -> None:
    browser.get(f"{base_url}/admin/login/?next={next_path}")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The click returns before the browser has left the form: wait for the page asked for.
    WebDriverWait(browser, 15).until(lambda browser: "/admin/login/" not in browser.current_url)


def screenshot(browser: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path
