"""/api/docs/ in a real browser, offline: headless Chromium (which resolves no host but this
machine's, see backbone/testing/browser.py) opens Swagger UI as `make run` serves it:
collectstatic into a STATIC_ROOT, then gunicorn with uvicorn workers, ServeStatic serving the
collected drf-spectacular-sidecar files. Loaded from a CDN, the page stays blank.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from backbone.testing import python_argv
from backbone.testing.browser import chromium, screenshot
from orders.tests.test_long_polls import Web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    static_root = tmp_path / "static"
    collect = subprocess.run(
        python_argv("manage.py", "collectstatic", "--noinput", "--verbosity", "0"),
        cwd=settings.BASE_DIR,
        env={**os.environ, "STATIC_ROOT": str(static_root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collect.returncode == 0, collect.stderr
    server = Web(tmp_path / "web.log", workers=1, STATIC_ROOT=str(static_root))
    yield server
    server.stop()


def test_the_api_docs_list_the_operations_without_the_internet(web: Web) -> None:
    with chromium(width=1400, height=1000) as browser:
        browser.get(f"{web.url}/api/docs/")
        WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock"))
        screenshot(browser, "api-docs.png")
        operations = {
            (
                block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
                block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
            )
            for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
        }

    assert ("POST", "/api/orders/") in operations
    assert ("GET", "/api/orders/{order_id}/") in operations
    assert ("POST", "/api/auth/token/") in operations
