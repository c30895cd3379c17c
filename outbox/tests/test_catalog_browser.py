"""The event catalog in a real browser: headless Chromium (Debian's chromium and chromium-driver,
see backbone/testing/browser.py) opens the admin page as a staff member and finds every event
type the shop declares, then follows one type's story link to its picture.

The screenshot goes to test-artifacts/ (gitignored); the path is printed.
"""

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from backbone.catalog import event_types
from backbone.testing.browser import chromium, log_in, screenshot
from outbox.tests.conftest import RelayStarter, wait_for_published
from outbox.tests.test_catalog import rejections

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

PASSWORD = "staff-test-password"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium(width=1200, height=900) as browser:
        yield browser


def test_a_staff_member_sees_every_event_type_and_reaches_its_stories(
    kafka_topics: list[str], start_relay: RelayStarter, live_server, browser: WebDriver
) -> None:
    start_relay()
    correlation_id, order_ids = rejections(1)
    wait_for_published({str(order_ids[0])})

    get_user_model().objects.create_user("catalog-staff", password=PASSWORD, is_staff=True)
    log_in(browser, live_server.url, "catalog-staff", PASSWORD, "/admin/event-catalog/")
    browser.find_element(By.CSS_SELECTOR, "#event-catalog")
    screenshot(browser, "event-catalog.png")

    sections = browser.find_elements(By.CSS_SELECTOR, "section.event-type")
    assert [s.get_attribute("data-type") for s in sections] == [f.type_name for f in event_types()]
    for section, facts in zip(sections, event_types(), strict=True):
        assert section.find_element(By.CSS_SELECTOR, "h2").text == facts.type_name
        assert section.find_element(By.CSS_SELECTOR, ".owner").text == facts.contract.context
        assert section.find_element(By.CSS_SELECTOR, ".topic").text == facts.contract.topic
        # The folded schema opens on a click and lists the contract's fields.
        schema = section.find_element(By.CSS_SELECTOR, "details.schema")
        schema.find_element(By.CSS_SELECTOR, "summary").click()
        for field in facts.contract.model_fields:
            assert f'"{field}"' in schema.find_element(By.CSS_SELECTOR, "pre").text

    rejected = browser.find_element(By.ID, "orders.OrderRejected")
    assert rejected.find_element(By.CSS_SELECTOR, ".last-hour").text == "1 published"
    rejected.find_element(By.CSS_SELECTOR, "a.story").click()
    browser.find_element(By.CSS_SELECTOR, ".story svg")
    assert browser.current_url.endswith(f"/admin/story/{correlation_id}/")
    assert [
        box.find_element(By.CSS_SELECTOR, ".type").text
        for box in browser.find_elements(By.CSS_SELECTOR, "g.event")
    ] == ["1. OrderRejected"]
